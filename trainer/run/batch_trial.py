"""The loss and the metrics tried on one batch of model output before anything is written.

The model is already run on the first batch for its summary (trainer/run/summary.py); a loss
that cannot take that output and target (MarginRankingLoss wants three tensors, CTCLoss four,
mse_loss floats of the output's shape) would otherwise fail inside the first training step,
with a traceback and a run folder left behind. Here it is one ConfigError naming the key
and the shapes. Eval mode, no gradients, random generator states restored afterwards.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from trainer.run.summary import describe_shape
from utils.checkpoint import capture_rng_state, restore_rng_state
from utils.errors import ConfigError, RunError
from utils.schema import component_spec

FAILURES = (RuntimeError, ValueError, TypeError, IndexError, KeyError, UserWarning, RunError)


def _described(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return describe_shape(value)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def trial_batch(model: torch.nn.Module, loader: Any, criterion: Any, metrics: dict,
                config: dict) -> None:
    """ConfigError when the configured loss or a metric fails on the first batch's output."""
    batch = next(iter(loader))
    *inputs, target = batch
    classes = getattr(loader, "class_names", None) or \
        list(range(getattr(loader, "n_classes", None) or 0))
    rng = capture_rng_state()
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            # torch warns, then broadcasts, when a loss gets a target of another shape
            warnings.filterwarnings("error", message=".*target size.*", category=UserWarning)
            output = model(*inputs)
            shapes = f"output {_described(output)}, target {_described(target)}"
            check_classes(output, classes, config)
            _try_loss(criterion, output, target, config["loss"], shapes)
            for i, (name, metric) in enumerate(metrics.items()):
                _try_metric(metric, output, target, f"metrics[{i}]", name, shapes)
    finally:
        model.train(was_training)
        restore_rng_state(rng)


def check_classes(output: Any, classes: list, config: dict) -> None:
    """ConfigError when the labels name more classes than the model has outputs."""
    if isinstance(output, torch.Tensor) and output.dim() == 2 and \
            len(classes) > output.shape[1]:
        shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
        key = "arch.args.out_features" if "out_features" in \
            ((config.get("arch") or {}).get("args") or {}) else "arch"
        raise ConfigError(f"{key}: the model gives {output.shape[1]} output(s) per example, "
                          f"but the labels have {len(classes)} classes ({shown}); set "
                          f"{key if key != 'arch' else 'the output size'} to {len(classes)}")


def _try_loss(criterion: Any, output: Any, target: Any, spec: Any, shapes: str) -> None:
    name, _ = component_spec(spec, "loss")
    key = "loss" if isinstance(spec, str) else "loss.type"
    try:
        loss = criterion(output, target)
    except FAILURES as e:
        raise ConfigError(f"{key}: {name} cannot take this model's output and target "
                          f"({shapes}): {_first_line(e)}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"{key}: {name} returns {_described(loss)}, not one number to "
                          f"minimize ({shapes})")


def _try_metric(metric: Any, output: Any, target: Any, key: str, name: str,
                shapes: str) -> None:
    try:
        trial = metric.fresh(torch.device("cpu"))
        trial.update(output, target)
        trial.compute()
    except FAILURES as e:
        raise ConfigError(f"{key}: the metric {name} cannot take this model's output and "
                          f"target ({shapes}): {_first_line(e)}") from None
