"""trainer.swa: stochastic weight averaging, torch.optim.swa_utils' recipe per epoch.

    trainer:
      swa: {start_epoch: 20, swa_lr: 0.01, anneal_epochs: 10, anneal_strategy: cos}

After each epoch e >= start_epoch the weights join an equal-weight average
(AveragedModel; the first update copies them), and the learning rate is taken
over by SWALR: it anneals from the lr of that moment to swa_lr over
anneal_epochs epochs, then stays there; the configured lr_scheduler no longer
steps (per epoch or per step). When the run ends (last epoch, early stop or
trainer.max_steps) the average's BatchNorm statistics are recomputed with one
pass over the training loader (update_bn), the random generators put back as
they were, so a run trained further later stays the run trained straight.

A built-in callback like trainer/callbacks/averaging.py's EMA: it averages in
on_epoch_end (and pauses the trainer's scheduler: trainer.lr_scheduler_paused),
`state()` goes into every checkpoint (on_checkpoint: `swa_state_dict` once
averaging has started, `swa_steps`, and `swa_scheduler_state_dict`, SWALR's plain
state), `load(ckpt)` restores it exactly (restore), so a resume (mid-epoch
included) continues the same average and lr.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from base.base_callback import BuiltinCallback
from utils.errors import ConfigError
from utils.schema import expect, is_int, is_number, option_mapping

SWA_DEFAULTS = {"start_epoch": None, "swa_lr": None, "anneal_epochs": 10,
                "anneal_strategy": "cos"}
ANNEAL_STRATEGIES = ("cos", "linear")


def validate_swa(value: Any, epochs: Any) -> dict | None:
    """trainer.swa resolved: None (off) or {start_epoch, swa_lr, anneal_epochs,
    anneal_strategy}; start_epoch must fall within trainer.epochs."""
    value = option_mapping(value, "trainer.swa", SWA_DEFAULTS, "null (off) or a mapping such "
                           "as {start_epoch: 20, swa_lr: 0.01}", true_is_empty=False)
    if value is None:
        return None
    for key in ("start_epoch", "swa_lr"):
        if key not in value:
            raise ConfigError(f"trainer.swa.{key}: required key is missing")
    resolved = {**SWA_DEFAULTS, **value}
    start = resolved["start_epoch"]
    expect(is_int(start) and 1 <= start <= epochs, "trainer.swa.start_epoch",
           f"an epoch in 1..trainer.epochs ({epochs})", start)
    expect(is_number(resolved["swa_lr"]) and resolved["swa_lr"] > 0, "trainer.swa.swa_lr",
           "a positive number", resolved["swa_lr"])
    expect(is_int(resolved["anneal_epochs"]) and resolved["anneal_epochs"] >= 0,
           "trainer.swa.anneal_epochs", "an integer >= 0", resolved["anneal_epochs"])
    expect(resolved["anneal_strategy"] in ANNEAL_STRATEGIES, "trainer.swa.anneal_strategy",
           "cos or linear", resolved["anneal_strategy"])
    return resolved


class _Inputs(torch.nn.Module):
    """update_bn calls model(batch[0]): the batch's inputs travel as one tuple."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, inputs: tuple) -> Any:
        return self.module(*inputs)


class AveragedWeights(BuiltinCallback):
    """What SWA and EMA (averaging.py) share: the average goes into every checkpoint under
    its own keys (`<prefix>_state_dict`, ...) and comes back on an exact resume."""

    prefix = ""

    def state(self) -> dict:
        raise NotImplementedError

    def load(self, ckpt: dict) -> bool:
        raise NotImplementedError

    def on_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        checkpoint.update(self.state())

    def restore(self, trainer: Any, checkpoint: dict) -> None:
        if not self.load(checkpoint):
            trainer.logger.warning(f"warning: the checkpoint holds no {self.prefix} weights; "
                                   f"the {self.prefix} average starts afresh")


class SWA(AveragedWeights):
    """The equal-weight average of the weights at the end of epochs start_epoch.., and its lr."""

    option = "trainer.swa"
    prefix = "swa"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 start_epoch: int, swa_lr: float, anneal_epochs: int = 10,
                 anneal_strategy: str = "cos"):
        self.averaged = AveragedModel(model)
        self.averaged.eval()
        self.optimizer = optimizer
        self.start_epoch = start_epoch
        self.swalr_args = {"swa_lr": swa_lr, "anneal_epochs": anneal_epochs,
                           "anneal_strategy": anneal_strategy}
        self.scheduler: SWALR | None = None  # made when averaging starts

    @property
    def module(self) -> torch.nn.Module:
        return self.averaged.module

    @property
    def owns_lr(self) -> bool:
        """Whether SWALR sets the lr now (the configured scheduler then does not step)."""
        return self.scheduler is not None

    def _start_scheduler(self) -> None:
        # a new SWALR leaves the lr as it is; its steps anneal it to swa_lr
        self.scheduler = SWALR(self.optimizer, **self.swalr_args)

    def on_fit_start(self, trainer: Any) -> None:
        trainer.lr_scheduler_paused = self.owns_lr  # a resume after averaging started

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        """The epoch's update (SWALR then owns the lr); at the run's end, update_bn."""
        if self.after_epoch(epoch, trainer.plain_model):
            trainer.lr_scheduler_paused = True
        if trainer.final_epoch:  # before the last checkpoint is written
            self.finish(trainer.data_loader, trainer.device, epoch)

    def after_epoch(self, epoch: int, model: torch.nn.Module) -> bool:
        """From start_epoch on: average the weights, step SWALR; True when it set the lr."""
        if epoch < self.start_epoch:
            return False
        self.averaged.update_parameters(model)
        if self.scheduler is None:
            self._start_scheduler()
        self.scheduler.step()
        return True

    def finish(self, loader: Any, device: torch.device, epoch: int) -> None:
        """The average's BatchNorm statistics from one pass over `loader` (the RNGs untouched)."""
        if int(self.averaged.n_averaged) == 0:
            return
        devices = [device.index or 0] if device.type == "cuda" else []
        loader.set_epoch(epoch, 0)
        batches = ([tuple(t.to(device) for t in batch[:-1])] for batch in loader)
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            update_bn(batches, _Inputs(self.module))
        self.averaged.eval()

    def state(self) -> dict:
        n = int(self.averaged.n_averaged)
        state = {"swa_steps": {"n_averaged": n},
                 "swa_scheduler_state_dict": (self.scheduler.state_dict()
                                              if self.scheduler is not None else None)}
        if n:  # test.py --weights swa needs an average to pick
            state["swa_state_dict"] = self.module.state_dict()
        return state

    def load(self, ckpt: dict) -> bool:
        """Restore from a checkpoint; False when it holds no SWA state (it starts afresh)."""
        steps = ckpt.get("swa_steps")
        if steps is None:
            return False
        if ckpt.get("swa_state_dict") is not None:
            self.module.load_state_dict(ckpt["swa_state_dict"])
        self.averaged.n_averaged.fill_(int(steps["n_averaged"]))
        if ckpt.get("swa_scheduler_state_dict") is not None:
            self._start_scheduler()
            self.scheduler.load_state_dict(ckpt["swa_scheduler_state_dict"])
        return True
