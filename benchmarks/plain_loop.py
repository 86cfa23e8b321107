"""The training epoch a user would write by hand, shared by the benchmarks: randperm batches,
zero_grad / forward / cross-entropy / backward / step, the running loss and accuracy kept on
the device and read once."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def plain_train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                      y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """One epoch over (x, y); its mean loss and accuracy."""
    model.train()
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    perm = torch.randperm(len(x))
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        xb, yb = x[idx], y[idx]
        optimizer.zero_grad(set_to_none=True)
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(yb)
        correct += (out.argmax(1) == yb).sum()
    return loss_sum.item() / len(x), correct.item() / len(x)


class EpochRunner:
    """A hand-written loop's runner: `epoch()` trains and validates once; `run(n)` n times."""

    def epoch(self) -> object:
        raise NotImplementedError

    def run(self, epochs: int) -> None:
        for _ in range(epochs):
            self.epoch()


def alternating_seconds(trainer, plain, reps: int, epochs: int) -> dict[str, list[float]]:
    """Seconds per epoch of `reps` blocks of `epochs` epochs each, the two runners taking turns
    (which goes first alternates), so drift and noise fall on both alike."""
    times: dict[str, list[float]] = {"plain": [], "trainer": []}
    for rep in range(reps):
        order = (("plain", plain), ("trainer", trainer))
        for name, runner in order if rep % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            runner.run(epochs)
            times[name].append((time.perf_counter() - start) / epochs)
    return times
