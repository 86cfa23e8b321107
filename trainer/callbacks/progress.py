"""Progress within an epoch, a built-in callback (trainer.verbosity >= 1, rank 0): a tqdm bar
on a terminal; elsewhere (logs, CI, pipes) a heartbeat line every trainer.heartbeat_s seconds
(logger/console.py Heartbeat; 0 = none)."""

from __future__ import annotations

import sys
from typing import Any

import torch
from tqdm import tqdm

from base.base_callback import BuiltinCallback
from logger.console import Heartbeat
from trainer.loop.iteration import epoch_length


def progress_bar(total: int, desc: str, heartbeat_s: float):
    """A tqdm bar on a terminal, else a Heartbeat (None when heartbeat_s is 0)."""
    if not sys.stderr.isatty():
        return Heartbeat(total, desc, heartbeat_s) if heartbeat_s > 0 else None
    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, dynamic_ncols=True)


class Progress(BuiltinCallback):
    """The epoch's training batches done so far, updated after each optimizer step."""

    option = "trainer.verbosity and trainer.heartbeat_s"

    def __init__(self, heartbeat_s: float):
        self.heartbeat_s = heartbeat_s
        self.bar: Any = None
        self.first = self.shown = 0  # the batch this process started the epoch at; shown

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.first = self.shown = trainer.start_batch
        total = 0 if trainer.validating else \
            epoch_length(trainer.data_loader, trainer.len_epoch) - self.first
        self.bar = progress_bar(total, f"epoch {epoch}", self.heartbeat_s)

    def on_step_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.update(trainer.batch_idx - self.shown)
            self.shown = trainer.batch_idx

    def on_validation_end(self, trainer: Any, epoch: int, metrics: dict) -> None:
        self.on_fit_end(trainer)

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        self.on_fit_end(trainer)

    def on_fit_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_callbacks(trainer: Any) -> list[BuiltinCallback]:
    """[Progress] where something shows it: verbosity >= 1 on a terminal or with a heartbeat."""
    if trainer.verbosity < 1 or not (trainer.heartbeat_s > 0 or sys.stderr.isatty()):
        return []
    return [Progress(trainer.heartbeat_s)]
