"""Running sums of one epoch, kept on the device and read once at its end."""

from __future__ import annotations

import torch

from base.base_metric import BaseMetric
from utils import dist
from utils.errors import RunError


class EpochStats:
    """The epoch's loss and metrics as fixed-size state, without a host sync per batch.

    The loss is reported as the per-sample mean whatever the loss's reduction
    ('mean' batches are weighted by their size, 'sum' ones added), from a
    float64 running sum. Each metric (base/base_metric.py) keeps its own state;
    nothing grows with the number of samples unless a plain function metric
    keeps the outputs. The losses since the last NaN check are kept (at most a
    check period's worth) so that a non-finite loss is named by its batch.
    """

    def __init__(self, metrics: dict[str, BaseMetric] | None = None,
                 sum_reduction: bool = False, device: torch.device | None = None):
        self.sum_reduction = sum_reduction
        self.device = device or torch.device("cpu")
        self.metrics = {name: m.fresh(self.device) for name, m in (metrics or {}).items()}
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.n = 0  # samples
        self.batches = 0
        self.unchecked: list[torch.Tensor] = []  # losses since the last check_finite

    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        loss, output = loss.detach(), output.detach()
        size = len(target)
        self.loss_sum.add_(loss, alpha=1 if self.sum_reduction else size)  # in float64
        self.unchecked.append(loss)
        self.n += size
        self.batches += 1
        for m in self.metrics.values():
            m.update(output, target)

    def check_finite(self, epoch: int) -> None:
        """RunError naming the epoch and the first batch whose loss is NaN or inf."""
        if not self.unchecked:
            return
        finite = torch.isfinite(torch.stack(self.unchecked))
        if not bool(finite.all()):
            first = self.batches - len(self.unchecked) + 1
            bad = int((~finite).nonzero()[0, 0]) + first
            raise RunError(f"non-finite loss (NaN or inf) at epoch {epoch}, batch {bad}; "
                           "lower the learning rate or check the data")
        self.unchecked = []

    def result(self) -> dict[str, float]:
        if self.n == 0:
            return {"loss": float("nan"), **{name: float("nan") for name in self.metrics}}
        out = {"loss": self.loss_sum.item() / self.n}
        for name, m in self.metrics.items():
            out[name] = float(m.compute())
        return out

    def merged(self) -> EpochStats:
        """Every rank's sums added up (torch.distributed); `self` in a single process.

        One all_reduce of a fixed size carries the loss, the counts and every
        metric's state (utils/dist.py); only plain function metrics gather outputs.
        """
        if not dist.is_distributed():
            return self
        streaming = {k: m for k, m in self.metrics.items()
                     if not (m.keeps_outputs or m.syncs_itself)}
        tensors = {"loss_sum": self.loss_sum,
                   "n": torch.tensor(self.n, dtype=torch.int64, device=self.device),
                   **{f"{k}.{s}": v for k, m in streaming.items() for s, v in m.state.items()}}
        summed = dist.all_reduce_sum(tensors, self.device)
        self.loss_sum, self.n = summed.pop("loss_sum"), int(summed.pop("n"))
        for k, m in streaming.items():
            m.state = {s: summed[f"{k}.{s}"] for s in m.state}
        for m in self.metrics.values():
            if m.keeps_outputs:
                m.outputs, m.targets = dist.gather_outputs(m.outputs, m.targets, self.device)
        return self

    def state_dict(self) -> dict:
        """Plain tensors and numbers, for a mid-epoch checkpoint."""
        return {"loss_sum": self.loss_sum.cpu(), "n": self.n, "batches": self.batches,
                "metrics": {k: m.state_dict() for k, m in self.metrics.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum = state["loss_sum"].to(self.device)
        self.n, self.batches = int(state["n"]), int(state["batches"])
        for k, m in self.metrics.items():
            m.load_state_dict(state["metrics"][k], self.device)
