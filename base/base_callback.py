"""Callback: what runs at the training loop's hooks (docs/callbacks.md).

A callback overrides the hooks it needs; the trainer calls only the callbacks
whose class overrides a hook (`overriding`, worked out once when a fit
starts), so a hook no callback overrides costs nothing. The config's
`callbacks:` list names them (trainer/callbacks/registry.py); the built-in
ones (EMA, SWA, the loggers, the progress lines) are `BuiltinCallback`s that
the trainer.* options turn on. A callback's `state_dict()` goes into every
checkpoint (`callbacks_state`) and `load_state_dict` restores it on an exact
resume, mid-epoch included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class Callback:
    """Hooks into the training loop; each does nothing unless a subclass overrides it.

    `trainer` is the running Trainer (base/base_trainer.py): its model, optimizer,
    global_step, history, config, logger and so on (docs/callbacks.md lists what a
    callback may read).
    """

    def on_fit_start(self, trainer: Any) -> None:
        """Before the first epoch of `trainer.train()` (after a resume restored the state)."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Before the epoch's first batch (a mid-epoch resume: before its next batch)."""

    def on_step_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        """After each optimizer step (`step`: the run's optimizer steps so far, 1, 2, ...),
        before a per-step lr scheduler steps; `loss`: the step's last batch's loss (a tensor
        on the device: `.item()` waits for it). The gradients are still in `.grad`."""

    def on_validation_end(self, trainer: Any, epoch: int, metrics: dict) -> None:
        """After the epoch's validation pass; `metrics`: {'val_loss': ..., 'val_<metric>': ...}."""

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        """After the epoch (and its validation); keys added to `log` go into the epoch's row:
        metrics.csv, the console line, TensorBoard, MLflow and the checkpoint's history."""

    def on_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        """Before `checkpoint` (a dict) is written; keys added to it are saved with it."""

    def on_fit_end(self, trainer: Any) -> None:
        """When `trainer.train()` ends, also by a stop signal or an error
        (`trainer.outcome`: 'finished', 'stopped' or 'failed')."""

    def state_dict(self) -> dict:
        """Plain data (numbers, strings, lists, dicts, tensors) that a resume needs."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict()` returned (an exact resume)."""


class BuiltinCallback(Callback):
    """A callback the trainer.* options turn on (EMA, SWA, the loggers, the progress lines),
    never named in `callbacks:`. It keeps the top-level checkpoint keys of its own (DESIGN
    section 9: ema_state_dict, swa_state_dict, mlflow_run_id, ...): written by `on_checkpoint`,
    read back by `restore` on an exact resume."""

    option = ""  # the trainer key that turns it on ('trainer.ema')

    def restore(self, trainer: Any, checkpoint: dict) -> None:
        """Read this callback's keys back from `checkpoint` (an exact resume, not a fine-tune)."""


HOOKS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_validation_end", "on_epoch_end",
         "on_checkpoint", "on_fit_end")


def overriding(callbacks: list[Callback], hook: str) -> list[Callable]:
    """The bound `hook` methods of those `callbacks` whose class overrides it, in order."""
    base = getattr(Callback, hook)
    return [getattr(cb, hook) for cb in callbacks if getattr(type(cb), hook, base) is not base]


def restore_callbacks(trainer: Any, checkpoint: dict) -> None:
    """An exact resume: the built-in callbacks' own keys, then each configured callback's
    state, entry i of callbacks_state when it has the same type (else it starts afresh)."""
    for cb in trainer.callbacks:
        if isinstance(cb, BuiltinCallback):
            cb.restore(trainer, checkpoint)
    stored = checkpoint.get("callbacks_state") or []
    for i, (name, cb) in enumerate(trainer.configured):
        entry = stored[i] if i < len(stored) else None
        if isinstance(entry, dict) and entry.get("type") == name:
            cb.load_state_dict(entry["state"])
        elif cb.state_dict():
            trainer.logger.warning(f"warning: the checkpoint holds no state of callbacks[{i}] "
                                   f"({name}); it starts afresh")


def fit_end(trainer: Any) -> None:
    """The on_fit_end hooks; after a failure or a stop an error of theirs is a warning (the
    run's own error goes on)."""
    for method in trainer.hooks["on_fit_end"]:
        try:
            method(trainer)
        except Exception as e:
            if trainer.outcome == "finished":
                raise
            trainer.logger.warning(f"warning: on_fit_end of {type(method.__self__).__name__}: "
                                   f"{e}")
