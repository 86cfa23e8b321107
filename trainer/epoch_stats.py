"""Running sums of one epoch, kept on the device and read once at its end."""

from __future__ import annotations

import torch

from utils import dist
from utils.errors import RunError


class EpochStats:
    """Loss and outputs of an epoch's batches, without a host sync per batch.

    Metrics are computed once, on the concatenated outputs and targets, so
    they are exact over the epoch (the last, smaller batch weighs by its
    size). The loss is reported as the per-sample mean whatever the loss's
    reduction ('mean' batches are weighted by their size, 'sum' ones added).
    Memory is one epoch's outputs; it is freed when the epoch ends.
    """

    def __init__(self, sum_reduction: bool = False, capacity: int = 0):
        self.sum_reduction = sum_reduction
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.outputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.capacity = capacity  # samples expected in the epoch (0: unknown)
        self._buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._filled = 0

    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        loss, output = loss.detach(), output.detach()
        if self.capacity:
            loss, output, target = self._into_buffers(loss, output, target)
        self.losses.append(loss)
        self.sizes.append(len(target))
        self.outputs.append(output)
        self.targets.append(target)

    def _into_buffers(self, loss, output, target):
        """Views of the batch's values copied into buffers allocated once per epoch.

        Keeping each batch's small tensors alive among the freed activations
        fragments the heap: on the 200k-row benchmark that cost over 100 MB
        of peak memory. A batch that does not fit is kept as it is.
        """
        if self._buffers is None:
            self._buffers = (loss.new_empty(self.capacity),
                             output.new_empty((self.capacity, *output.shape[1:])),
                             target.new_empty((self.capacity, *target.shape[1:])))
        losses, outputs, targets = self._buffers
        start, end = self._filled, self._filled + len(target)
        if end > self.capacity or output.shape[1:] != outputs.shape[1:] \
                or target.shape[1:] != targets.shape[1:]:
            return loss, output, target
        self._filled = end
        return (losses[len(self.losses)].copy_(loss), outputs[start:end].copy_(output),
                targets[start:end].copy_(target))

    @property
    def batches(self) -> int:
        return len(self.losses)

    def check_finite(self, epoch: int) -> None:
        """RunError naming the epoch and the first batch whose loss is NaN or inf."""
        if not self.losses:
            return
        finite = torch.isfinite(torch.stack(self.losses))
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0]) + 1
            raise RunError(f"non-finite loss (NaN or inf) at epoch {epoch}, batch {bad}; "
                           "lower the learning rate or check the data")

    def loss_sum(self) -> torch.Tensor:
        losses = torch.stack(self.losses).double()
        if not self.sum_reduction:
            losses = losses * torch.tensor(self.sizes, dtype=torch.float64, device=losses.device)
        return losses.sum()

    def result(self, metric_fns: dict) -> dict[str, float]:
        n = sum(self.sizes)
        if n == 0:
            return {"loss": float("nan"), **{name: float("nan") for name in metric_fns}}
        out = {"loss": self.loss_sum().item() / n}
        if metric_fns:
            output, target = torch.cat(self.outputs), torch.cat(self.targets)
            for name, fn in metric_fns.items():
                out[name] = float(fn(output, target))
        return out

    def gathered(self, device: torch.device) -> EpochStats:
        """Every rank's batches merged (torch.distributed); `self` in a single process."""
        if not dist.is_distributed():
            return self
        merged = EpochStats(self.sum_reduction)
        merged.losses, merged.sizes, merged.outputs, merged.targets = dist.gather_batches(
            self.losses, self.sizes, self.outputs, self.targets, device)
        return merged

    def state_dict(self) -> dict:
        """Plain tensors, for a mid-epoch checkpoint."""
        return {
            "losses": torch.stack(self.losses).cpu() if self.losses else torch.zeros(0),
            "sizes": list(self.sizes),
            "outputs": torch.cat(self.outputs).cpu() if self.outputs else None,
            "targets": torch.cat(self.targets).cpu() if self.targets else None,
        }

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        """Restore the running sums; batch boundaries of outputs follow `sizes`."""
        self.losses = list(state["losses"].to(device).unbind()) if len(state["losses"]) else []
        self.sizes = list(state["sizes"])
        if state["outputs"] is not None:
            self.outputs = list(state["outputs"].to(device).split(self.sizes))
            self.targets = list(state["targets"].to(device).split(self.sizes))
