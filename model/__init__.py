"""Models, losses and metrics, each found by name through the registries below.

A model is any concrete BaseModel subclass in a module of this folder; a loss
any public function of model/loss.py or any torch.nn loss class; a metric any
BaseMetric subclass of model/metric.py with a `name` (or any public function
there: a plain function metric). A loss function called `x_loss` is also found
as `x` (`mse_loss` answers to `loss: mse`). A `type` with a dot is imported
instead (`torch.nn.HuberLoss`, `mypkg.models.Net`); a model from outside
BaseModel gets no input standardization. Where the config is data (read from a
checkpoint), a dotted type picks only a class of the kind below (utils/registry.py).
"""

from __future__ import annotations

import inspect

import torch.nn as nn

from base import BaseModel
from base.base_metric import BaseMetric
from utils.registry import Kind, Registry, functions_in, subclasses_in


def _models(module) -> dict:
    return subclasses_in(module, BaseModel)


def _losses(module) -> dict:
    found = functions_in(module)
    short = {name[:-len("_loss")]: fn for name, fn in found.items() if name.endswith("_loss")}
    return {**short, **found}


def _metrics(module) -> dict:
    """Metric classes by their config name (those without one are building blocks), and
    plain function metrics by their function name."""
    classes = {cls.name: cls for cls in subclasses_in(module, BaseMetric).values() if cls.name}
    classes.update({cls.name: cls for cls in vars(module).values()  # torchmetrics subclasses
                    if inspect.isclass(cls) and cls.__module__ == module.__name__
                    and isinstance(getattr(cls, "name", None), str) and cls.name
                    and hasattr(cls, "sync") and hasattr(cls, "compute")})
    return {**functions_in(module), **classes}


def _torch_losses() -> dict:
    return {
        name: cls
        for name, cls in vars(nn).items()
        if inspect.isclass(cls) and issubclass(cls, nn.modules.loss._Loss)
    }


MODULE = Kind("a subclass of torch.nn.Module", (nn.Module,))
# a BaseMetric, or a torchmetrics Metric (matched by name: torchmetrics stays an optional extra)
METRIC = Kind("a metric class (a subclass of base.base_metric.BaseMetric or "
              "torchmetrics.Metric)", (BaseMetric,), ("torchmetrics.metric.Metric",))
MODELS = Registry("model", "model", _models, MODULE)
LOSSES = Registry("loss", "model.loss", _losses, MODULE, extra=_torch_losses)
METRICS = Registry("metric", "model.metric", _metrics, METRIC)
