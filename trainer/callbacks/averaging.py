"""Averaged weights: an exponential moving average (trainer.ema) of the model; the
average of trainer.swa is in trainer/callbacks/swa.py, with the same interface.

The average is torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn and
use_buffers=True, as AveragedModel documents for models with BatchNorm: the
buffers (running statistics) are averaged with the weights. Its first update
copies the model (W_0^EMA = W_0); after that, every `every` optimizer steps,
W^EMA <- decay * W^EMA + (1 - decay) * W.

A built-in callback (base/base_callback.py): it updates after each optimizer step
(on_step_end), validation uses the average when `validate` (on_fit_start), its
`state()` entries go into every checkpoint (on_checkpoint; plain data: the
averaged module's state_dict and step counters) and `load(ckpt)` restores them
exactly (restore), so a resumed run, mid-epoch included, continues the same average.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from base.base_callback import BuiltinCallback
from trainer.callbacks.swa import SWA, AveragedWeights
from utils.errors import ConfigError
from utils.options import TRAINER, value_of
from utils.schema import expect, is_int, is_number, option_mapping

EMA_DEFAULTS = {"decay": 0.999, "every": 1, "validate": True}
EMA_SCHEMA = {"anyOf": [{"type": ["null", "boolean"]}, {  # trainer.ema in the JSON Schema
    "type": "object", "additionalProperties": False, "properties": {
        "decay": {"type": "number", "minimum": 0, "maximum": 1, "default": EMA_DEFAULTS["decay"]},
        "every": {"type": "integer", "minimum": 1, "default": EMA_DEFAULTS["every"]},
        "validate": {"type": "boolean", "default": EMA_DEFAULTS["validate"]}}}]}
WEIGHT_KEYS = {"raw": "model_state_dict", "ema": "ema_state_dict", "swa": "swa_state_dict"}


def validate_ema(value: Any) -> dict | None:
    """trainer.ema resolved: None (off) or {decay, every, validate}."""
    value = option_mapping(value, "trainer.ema", EMA_DEFAULTS,
                           "null (off) or a mapping such as {decay: 0.999, every: 1}")
    if value is None:
        return None
    resolved = {**EMA_DEFAULTS, **value}
    decay = resolved["decay"]
    expect(is_number(decay) and 0.0 <= decay <= 1.0, "trainer.ema.decay",
           "a number in [0, 1] (e.g. 0.999)", decay)
    expect(is_int(resolved["every"]) and resolved["every"] >= 1, "trainer.ema.every",
           "a positive integer (optimizer steps between updates)", resolved["every"])
    expect(isinstance(resolved["validate"], bool), "trainer.ema.validate", "true or false",
           resolved["validate"])
    return resolved


class EMA(AveragedWeights):
    """The moving average of a model's weights and buffers, updated after optimizer steps."""

    option = "trainer.ema"
    prefix = "ema"

    def __init__(self, model: torch.nn.Module, decay: float, every: int = 1,
                 validate: bool = True):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                      use_buffers=True)
        self.averaged.eval()
        self.every, self.validate = every, validate
        self.steps = 0  # optimizer steps seen (updates happen every `every` of them)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model, the same class as the trained one."""
        return self.averaged.module

    def after_step(self, model: torch.nn.Module) -> None:
        """Called after each optimizer step with the plain (unwrapped) model."""
        self.steps += 1
        if self.steps % self.every == 0:
            self.averaged.update_parameters(model)

    def on_fit_start(self, trainer: Any) -> None:
        if self.validate:  # validation and monitoring use the average
            trainer.validation_model = self.module

    def on_step_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        self.after_step(trainer.plain_model)

    def state(self) -> dict:
        """Checkpoint entries: `ema_state_dict` (loads into the plain model class) and
        `ema_steps` (optimizer steps seen, updates made)."""
        return {f"{self.prefix}_state_dict": self.module.state_dict(),
                f"{self.prefix}_steps": {"optimizer_steps": self.steps,
                                         "n_averaged": int(self.averaged.n_averaged)}}

    def load(self, ckpt: dict) -> bool:
        """Restore from a checkpoint; False when it holds no such average (it starts afresh)."""
        weights = ckpt.get(f"{self.prefix}_state_dict")
        steps = ckpt.get(f"{self.prefix}_steps")
        if weights is None or steps is None:
            return False
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(int(steps["n_averaged"]))
        self.steps = int(steps["optimizer_steps"])
        return True


def averaging_callbacks(trainer_cfg: dict, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> list[BuiltinCallback]:
    """The averages trainer_cfg asks for (EMA, SWA), around the plain `model` (on its
    device); SWA's SWALR sets the lr of `optimizer` once it starts."""
    found: list[BuiltinCallback] = []
    if trainer_cfg["ema"]:
        found.append(EMA(model, **trainer_cfg["ema"]))
    if trainer_cfg["swa"]:
        found.append(SWA(model, optimizer, **trainer_cfg["swa"]))
    return found


def monitored_weights(config: dict) -> str:
    """Which weights a run validated and monitored: 'ema' or 'raw' (test.py's default)."""
    ema = validate_ema(value_of(TRAINER, config["trainer"], "ema"))  # an older run's config too
    return "ema" if ema and ema["validate"] else "raw"


def pick_weights(ckpt: dict, which: str | None, path: Any) -> tuple[str, dict]:
    """(name, state_dict) of the checkpoint's raw, ema or swa weights (None: the monitored)."""
    which = which or monitored_weights(ckpt["config"])
    state = ckpt.get(WEIGHT_KEYS[which])
    if state is None:
        when = " or had not reached trainer.swa.start_epoch" if which == "swa" else ""
        raise ConfigError(f"{path}: --weights {which}: the checkpoint holds no {which} weights "
                          f"(the run had trainer.{which} off{when})")
    return which, state
