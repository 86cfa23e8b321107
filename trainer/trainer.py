"""The concrete Trainer: one training epoch and one evaluation pass, top to bottom."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from base import BaseTrainer
from base.base_trainer import StopTraining
from trainer.epoch_stats import EpochStats

NAN_CHECK_EVERY = 100  # batches between (cheap, host-syncing) NaN checks


def to_device(batch, device: torch.device):
    """Move a batch (inputs..., target) to `device`; CPU tensors stay as they are."""
    if device.type == "cpu":
        return batch
    return [t.to(device, non_blocking=True) for t in batch]


def is_sum_reduction(criterion) -> bool:
    keywords = getattr(criterion, "keywords", None) or {}
    return getattr(criterion, "reduction", keywords.get("reduction", "mean")) == "sum"


def progress_bar(total: int, desc: str, verbosity: int):
    """A tqdm bar on a terminal at verbosity >= 1; None in logs and pipes."""
    if verbosity < 1 or not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, dynamic_ncols=True)


@torch.no_grad()
def evaluate(model, loader, criterion, metric_fns: dict, device) -> dict[str, float]:
    """Loss and metrics of `model` over every batch of `loader` (model.eval, no_grad)."""
    model.eval()
    stats = EpochStats(is_sum_reduction(criterion))
    for batch in loader:
        *inputs, target = to_device(batch, device)
        output = model(*inputs)
        stats.update(criterion(output, target), output, target)
    return stats.result(metric_fns)


class Trainer(BaseTrainer):
    """Trains on `data_loader`, validates on `valid_data_loader` after every epoch.

    A batch is a tuple (inputs..., target); the model is called as model(*inputs).
    """

    def __init__(self, model, criterion, metric_fns, optimizer, config, device, data_loader,
                 valid_data_loader=None, lr_scheduler=None):
        super().__init__(model, criterion, metric_fns, optimizer, config, device, lr_scheduler)
        self.data_loader = data_loader
        self.valid_data_loader = valid_data_loader
        self.sum_reduction = is_sum_reduction(criterion)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        start_batch, self.start_batch = self.start_batch, 0
        stats = EpochStats(self.sum_reduction)
        if start_batch and self.partial_stats is not None:
            stats.load_state_dict(self.partial_stats, self.device)
            self.partial_stats = None
        self.data_loader.set_epoch(epoch, start_batch)
        bar = progress_bar(len(self.data_loader) - start_batch, f"epoch {epoch}", self.verbosity)

        for batch_idx, batch in enumerate(self.data_loader, start=start_batch + 1):
            *inputs, target = to_device(batch, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            output = self.model(*inputs)
            loss = self.criterion(output, target)
            loss.backward()
            self.optimizer.step()
            stats.update(loss, output, target)
            if bar is not None:
                bar.update()
            if batch_idx % NAN_CHECK_EVERY == 0:
                stats.check_finite(epoch)
            if self.stop_signal is not None:
                stats.check_finite(epoch)
                raise StopTraining(epoch, batch_idx, stats)
        if bar is not None:
            bar.close()
        stats.check_finite(epoch)

        result = stats.result(self.metric_fns)
        if self.valid_data_loader is not None:
            val = evaluate(self.model, self.valid_data_loader, self.criterion, self.metric_fns,
                           self.device)
            result.update({f"val_{k}": v for k, v in val.items()})
        return result
