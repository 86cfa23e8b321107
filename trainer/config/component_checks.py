"""Validation of the components a config names: data loader, optimizer, lr_scheduler, loss
and metrics (trainer/config/parse_config.py validates the rest and builds them all).

Every `type` is resolved through its registry or utils/schema.torch_class with the
config's `trust` (utils/registry.py): a config read back from a file picks only
classes of the kind each key needs.
"""

from __future__ import annotations

import inspect

import torch

from data_loader import DATA_LOADERS
from model import LOSSES, METRICS
from trainer.config.class_weights import validate_weight
from trainer.config.config_checks import check_tuple_args
from trainer.config.loader_options import LOADER_OPTIONS, loader_options
from trainer.config.option_checks import resolve_ref
from trainer.config.schedulers import validate_scheduler
from utils.errors import ConfigError
from utils.registry import TRUSTED, Trust
from utils.schema import (
    INJECTED_LOADER_ARGS,
    check_args,
    component_spec,
    expect,
    is_int,
    is_number,
    section,
    torch_class,
)

INT64 = 2**63  # seeds and sizes go into torch's int64
GROUP_OPTIONS = ("param_groups", "no_decay")  # the optimizer section's keys besides type, args
PARAM_GROUPS = "utils.param_groups"  # their checks and groups: loaded when a config sets them


def has_validation(config: dict, trust: Trust = TRUSTED) -> bool:
    """Whether the config's data loader holds out a validation split."""
    dtype, args = section(config, "data_loader")
    if loader_options(args)["folds"] is not None:  # k-fold: one fold validates
        return True
    if "validation_split" in args:
        split = args["validation_split"]
    else:
        loader = DATA_LOADERS.get(dtype, "data_loader.type", trust)
        param = inspect.signature(loader).parameters.get("validation_split")
        split = param.default if param is not None and param.default is not param.empty else 0
    return is_number(split) and split > 0


def validate_data_loader(config: dict, trust: Trust) -> None:
    dtype, dargs = section(config, "data_loader")
    loader_options(dargs, config)
    dargs = {k: v for k, v in dargs.items() if k not in LOADER_OPTIONS}
    check_args(DATA_LOADERS.get(dtype, "data_loader.type", trust), dargs, "data_loader.args",
               injected=INJECTED_LOADER_ARGS)
    if "batch_size" in dargs:
        expect(is_int(dargs["batch_size"]) and 1 <= dargs["batch_size"] < INT64,
               "data_loader.args.batch_size", "a positive integer below 2**63",
               dargs["batch_size"])
    if "num_workers" in dargs:
        expect(is_int(dargs["num_workers"]) and dargs["num_workers"] >= 0,
               "data_loader.args.num_workers", "an integer >= 0", dargs["num_workers"])
    for split in ("validation_split", "test_split"):
        if split in dargs:
            v = dargs[split]
            expect((is_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v < 1.0),
                   f"data_loader.args.{split}", "a fraction in [0, 1) or a sample count", v)


def uses_param_groups(optimizer_section: dict) -> bool:
    """Whether the optimizer section sets parameter groups (only then is utils/param_groups.py
    loaded: a plain run does without it, tests/test_imports.py)."""
    return any(optimizer_section.get(key) is not None for key in GROUP_OPTIONS)


def validate_optimization(config: dict, resolved: dict, trust: Trust) -> None:
    """optimizer, lr_scheduler and loss."""
    otype, oargs = section(config, "optimizer", GROUP_OPTIONS)
    optimizer = torch_class(torch.optim, otype, torch.optim.Optimizer, "optimizer.type",
                            "optimizer", trust)
    check_args(optimizer, oargs, "optimizer.args", skip=1)
    check_tuple_args(optimizer, oargs, "optimizer.args")
    if uses_param_groups(config["optimizer"]):
        resolve_ref(f"{PARAM_GROUPS}.validate_param_groups")(config["optimizer"], optimizer)
    for i, group in enumerate(config["optimizer"].get("param_groups") or []):
        check_tuple_args(optimizer, group, f"optimizer.param_groups[{i}]")
    if config.get("lr_scheduler") is not None:
        validate_scheduler(config["lr_scheduler"], trust)
    else:
        resolved["lr_scheduler"] = None
    ltype, largs = component_spec(config["loss"], "loss")
    loss = LOSSES.get(ltype, "loss" if isinstance(config["loss"], str) else "loss.type", trust)
    check_args(loss, largs, "loss.args", skip=0 if isinstance(loss, type) else 2)
    validate_weight(largs)
    if "reduction" in largs and largs["reduction"] not in ("mean", "sum"):
        raise ConfigError("loss.args.reduction: expected 'mean' or 'sum', got "
                          f"{largs['reduction']!r}")


def validate_metrics(config: dict, trust: Trust) -> list:
    metrics = config.get("metrics") or []
    if not isinstance(metrics, list):
        raise ConfigError(f"metrics: expected a list of metric names, got {metrics!r}")
    seen = set()
    for i, spec in enumerate(metrics):
        mname, margs = component_spec(spec, f"metrics[{i}]")
        metric = METRICS.get(mname, f"metrics[{i}]", trust)
        check_args(metric, margs, f"metrics[{i}].args", skip=0 if isinstance(metric, type) else 2)
        if mname in seen:
            raise ConfigError(f"metrics[{i}]: '{mname}' is listed twice")
        seen.add(mname)
    return metrics

