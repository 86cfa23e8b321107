"""The concrete Trainer: one training epoch and one evaluation pass, top to bottom."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext

import torch

from base import BaseTrainer
from base.base_trainer import StopTraining
from trainer.callbacks.averaging import averaging_callbacks
from trainer.callbacks.loggers import logger_callbacks
from trainer.callbacks.progress import progress_callbacks
from trainer.callbacks.registry import build_callbacks
from trainer.loop.epoch_stats import EpochStats
from trainer.loop.iteration import epoch_batches, epoch_length
from utils import dist
from utils.errors import ConfigError
from utils.run_limits import max_steps_reached, stop_check_interval

NAN_CHECK_EVERY = 100  # batches between (cheap, host-syncing) NaN checks
AUTOCAST_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def to_device(batch, device: torch.device):
    """Move a batch (inputs..., target) to `device`; CPU tensors stay as they are."""
    if device.type == "cpu":
        return batch
    return [t.to(device, non_blocking=True) for t in batch]


def check_amp(amp: str, device: torch.device) -> None:
    """fp16 needs CUDA (and its GradScaler); bf16 autocast works on CPU and CUDA."""
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.amp: fp16 needs a CUDA device and this run is on the "
                          f"{device.type}; use bf16 (CPU autocast) or off")


def autocast(amp: str, device: torch.device):
    """torch.autocast for trainer.amp bf16/fp16; a no-op context when amp is off."""
    dtype = AUTOCAST_DTYPES[amp]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def is_sum_reduction(criterion) -> bool:
    keywords = getattr(criterion, "keywords", None) or {}
    return getattr(criterion, "reduction", keywords.get("reduction", "mean")) == "sum"


def eval_batches(model, loader, device: torch.device, amp: str = "off",
                 criterion=None) -> Iterator[tuple]:
    """(output, target, loss) of every batch of `loader`, model in eval mode, without
    gradients; loss is None without a criterion. The one evaluation loop of the project
    (validation, test.py's metrics, report and predictions)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    model.eval()
    for batch in loader:
        *inputs, target = to_device(batch, device)
        with torch.no_grad(), autocast(amp, device):
            output = model(*inputs)
            loss = criterion(output, target) if criterion is not None else None
        yield output, target, loss


def loss_and_metrics(model, loader, criterion, metrics: dict, device, amp: str = "off",
                     stop: Callable[[int], bool] | None = None) -> dict[str, float] | None:
    """Loss and metrics of `model` over every batch of `loader`.

    With a loader sharded across ranks (torch.distributed), the ranks' sums are
    merged, so each rank returns the single-process result. None when `stop` said so.
    """
    stats = evaluation_stats(model, loader, criterion, metrics, device, amp, stop)
    return None if stats is None else stats.result()


def evaluation_stats(model, loader, criterion, metrics: dict, device, amp: str = "off",
                     stop: Callable[[int], bool] | None = None) -> EpochStats | None:
    """loss_and_metrics()'s one pass, returning the merged state (test.py reads its confusion
    counts).

    `stop(i)` is asked after batch i (1, 2, ...): True ends the pass at once, returning None
    (a stop signal during validation or a test pass)."""
    stats = EpochStats(metrics, is_sum_reduction(criterion), device)
    batches = eval_batches(model, loader, device, amp, criterion)
    for i, (output, target, loss) in enumerate(batches, start=1):
        stats.update(loss, output, target)
        if stop is not None and stop(i):
            return None
    if dist.is_sharded(loader):
        stats.merged()
    return stats


def batches_on_every_rank(loader) -> int:
    """Evaluation batches that every rank reaches (ranks' shards of an evaluation loader
    differ by at most one batch): where a collective stop check is safe."""
    if not dist.is_sharded(loader):
        return len(loader)
    sampler = loader.batch_sampler
    n = sampler.samples()
    n = n // sampler.batch_size if sampler.drop_last else -(-n // sampler.batch_size)
    return n // sampler.world_size


class PassStop:
    """Stop signals during an evaluation pass outside training (test.py): `handler` records
    the signal, and the pass, asking `stop(i)` after each batch, ends within a batch of it
    (under DDP at batches every rank reaches, all ranks agreeing)."""

    def __init__(self, loader, device: torch.device):
        self.signum: int | None = None
        self.device = device
        self.every = stop_check_interval(dist.is_distributed())
        self.safe = batches_on_every_rank(loader)

    def handler(self, signum: int, _frame) -> None:
        self.signum = signum

    def __call__(self, i: int) -> bool:
        if not dist.is_distributed():
            return self.signum is not None
        if i % self.every or i > self.safe:
            return False
        self.signum = dist.max_int(self.signum or 0, self.device) or None
        return self.signum is not None


class Trainer(BaseTrainer):
    """Trains on `data_loader`, validates on `valid_data_loader` after every epoch.

    A batch is a tuple (inputs..., target); the model is called as model(*inputs).
    `callbacks`: the config's `callbacks:` built ((type, instance) pairs:
    trainer/callbacks/registry.py build_callbacks; None builds them here). The built-in
    ones the trainer.* options turn on come first (EMA, SWA) and last (the loggers, after
    the configured ones added their keys to the epoch's row; the progress lines).
    """

    def __init__(self, *args, callbacks: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config["trainer"]
        self.sum_reduction = is_sum_reduction(self.criterion)
        self.accumulate_steps = cfg["accumulate_steps"]
        self.heartbeat_s = cfg["heartbeat_s"]  # resolved: utils/options.py's default when unset
        self.clip_grad_norm = cfg["clip_grad_norm"] or 0
        self.len_epoch = cfg["len_epoch"]
        self.max_steps = cfg["max_steps"]
        self.autocast = autocast(self.amp, self.device)
        self.configured = build_callbacks(self.config.config.get("callbacks"),
                                          self.config.trust) \
            if callbacks is None else list(callbacks)
        self.callbacks = [*averaging_callbacks(cfg, self.plain_model, self.optimizer),
                          *(cb for _, cb in self.configured), *logger_callbacks(self),
                          *progress_callbacks(self)]

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        start_batch, self.start_batch = self.start_batch, 0
        # resumed from a stop during this epoch's validation: its training is done
        validating, self.validating = self.validating, False
        stats = EpochStats(self.metrics, self.sum_reduction, self.device)
        if (start_batch or validating) and self.partial_stats is not None:
            stats.load_state_dict(self.partial_stats)
            self.partial_stats = None
        n_batches = epoch_length(self.data_loader, self.len_epoch)
        batches = () if validating else \
            epoch_batches(self.data_loader, epoch, start_batch, self.len_epoch)
        batch_idx = start_batch
        for batch_idx, batch in enumerate(batches, start=start_batch + 1):
            *inputs, target = to_device(batch, self.device)
            output, loss = self._train_step(inputs, target, batch_idx, n_batches)
            stats.update(loss, output, target)
            if max_steps_reached(self.max_steps, self.global_step):  # the run ends with this batch
                break
            if batch_idx % NAN_CHECK_EVERY == 0:
                stats.check_finite(epoch)
            if (self.stop_signal is not None or self.distributed) \
                    and batch_idx % self.stop_check_every == 0 and self._agree_stop():
                stats.check_finite(epoch)
                raise StopTraining(epoch, batch_idx, stats)
        stats.check_finite(epoch)

        result = stats.merged().result()
        if self.valid_data_loader is not None:
            result.update(self._validate(epoch, batch_idx, stats))
        return result

    def _validate(self, epoch: int, batches_done: int, stats: EpochStats) -> dict[str, float]:
        """The epoch's val_<metric> values; StopTraining within a batch of a stop signal (the
        checkpoint then holds the trained epoch, and its resume re-runs the validation)."""
        dist.sync_buffers(self.plain_model)
        model = self.model if self.validation_model is None else self.validation_model
        val = loss_and_metrics(model, self.valid_data_loader, self.criterion, self.metrics,
                               self.device, self.amp, self._validation_stop())
        if val is None:
            raise StopTraining(epoch, batches_done, stats, validating=True)
        val = {f"val_{k}": v for k, v in val.items()}
        self._call("on_validation_end", epoch, val)
        return val

    def _validation_stop(self) -> Callable[[int], bool]:
        """stop(i) for the validation pass: whether a stop was requested (after every batch in
        one process; under DDP every few batches that all ranks reach, all agreeing)."""
        every = stop_check_interval(self.distributed)
        safe = batches_on_every_rank(self.valid_data_loader)

        def stop(i: int) -> bool:
            return (self.stop_signal is not None or self.distributed) and i % every == 0 \
                and i <= safe and self._agree_stop()
        return stop

    def _train_step(self, inputs, target, batch_idx: int, n_batches: int):
        """One batch: forward under autocast, backward (loss-scaled for fp16), and, on the
        last batch of an accumulation group, clipping and the optimizer step.

        Each feature is a no-op when off (nanoGPT's pattern), so the plain case
        is zero_grad, forward, backward, step. Batches are grouped by
        `accumulate_steps` from the epoch's first batch (the last group may be
        shorter); a mean loss is divided by the group's size, so a group of k
        batches of b equals one batch of k*b; under DDP the gradients are
        all-reduced only on a group's last batch (no_sync on the others).
        """
        before = (batch_idx - 1) % self.accumulate_steps  # batches of this group already done
        group = min(self.accumulate_steps, n_batches - (batch_idx - 1 - before))
        last = before + 1 == group
        if before == 0:
            self.optimizer.zero_grad(set_to_none=True)
        sync = self.model.no_sync() if self.distributed and not last else nullcontext()
        with sync:
            with self.autocast:
                output = self.model(*inputs)
                loss = self.criterion(output, target)
            scaled = loss / group if group > 1 and not self.sum_reduction else loss
            self.scaler.scale(scaled).backward()
        if last:
            if self.clip_grad_norm:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.global_step += 1
            if self.hooks["on_step_end"]:  # EMA, GradNorm, the progress lines, ...
                self.batch_idx = batch_idx
                for hook in self.hooks["on_step_end"]:
                    hook(self, self.global_step, loss)
            self._scheduler_step_done()
        return output, loss
