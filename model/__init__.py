"""Models, losses and metrics, each found by name through the registries below.

A model is any concrete BaseModel subclass in a module of this folder; a loss
any public function of model/loss.py or any torch.nn loss class; a metric any
public function of model/metric.py. A loss function called `x_loss` is also
found as `x` (`mse_loss` answers to `loss: mse`).
"""

from __future__ import annotations

import inspect

import torch.nn as nn

from base import BaseModel
from utils.registry import Registry, functions_in, subclasses_in


def _models(module) -> dict:
    return subclasses_in(module, BaseModel)


def _losses(module) -> dict:
    found = functions_in(module)
    short = {name[:-len("_loss")]: fn for name, fn in found.items() if name.endswith("_loss")}
    return {**short, **found}


def _torch_losses() -> dict:
    return {
        name: cls
        for name, cls in vars(nn).items()
        if inspect.isclass(cls) and issubclass(cls, nn.modules.loss._Loss)
    }


MODELS = Registry("model", "model", _models)
LOSSES = Registry("loss", "model.loss", _losses, extra=_torch_losses)
METRICS = Registry("metric", "model.metric", functions_in)
