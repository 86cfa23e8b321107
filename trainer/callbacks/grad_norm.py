"""GradNorm: the total gradient norm, logged per epoch as `grad_norm`.

    callbacks: [GradNorm]                     # or {type: GradNorm, args: {norm_type: 2.0}}

After each optimizer step it takes the norm of all the model's gradients together (after
trainer.clip_grad_norm clipped them, and unscaled under fp16); at the end of the epoch
the mean over the epoch's steps goes into the epoch's row as `grad_norm`: metrics.csv, the
console line, TensorBoard and MLflow show it. The running sum and count are its state, so
a run stopped mid-epoch and resumed logs what the unbroken run logs.

This is the one-file example of docs/callbacks.md: a class in trainer/callbacks/ is found
by its name, nothing else changes.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from base.base_callback import Callback
from utils.errors import ArgError


class GradNorm(Callback):
    """The mean total gradient norm of the epoch's optimizer steps, as `grad_norm`."""

    def __init__(self, norm_type: float = 2.0, key: str = "grad_norm"):
        if not norm_type > 0:
            raise ArgError("norm_type", f"expected a positive number (2.0 = L2), got {norm_type}")
        self.norm_type, self.key = float(norm_type), key
        # float64 sum and count on the device: no host sync per step
        self.total: float | torch.Tensor = 0.0
        self.steps: int | torch.Tensor = 0

    def on_step_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        grads = [p.grad for p in trainer.plain_model.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads, self.norm_type).double()
            finite = torch.isfinite(norm)  # an fp16 step skipped for inf/NaN is left out
            self.total = self.total + torch.where(finite, norm, 0.0)
            self.steps = self.steps + finite

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        steps = int(self.steps)
        log[self.key] = float(self.total) / steps if steps else math.nan
        self.total, self.steps = 0.0, 0  # the next epoch starts afresh

    def state_dict(self) -> dict:
        return {"total": float(self.total), "steps": int(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.steps = float(state["total"]), int(state["steps"])
