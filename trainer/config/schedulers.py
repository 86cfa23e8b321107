"""The `lr_scheduler` section: validation, `auto` values, and building (nested) schedulers.

    lr_scheduler:
      type: SequentialLR
      interval: step                 # step: after every optimizer step; epoch (default)
      args:
        schedulers:                  # SequentialLR and ChainedScheduler take children
          - {type: LinearLR, args: {start_factor: 0.01, total_iters: 50}}
          - {type: CosineAnnealingLR, args: {T_max: auto}}
        milestones: [50]

`auto` (OneCycleLR total_steps, CosineAnnealingLR T_max) is the number of
scheduler steps that scheduler runs: the run's total (epochs, or optimizer
steps with interval step) for a top-level or chained one, the span between its
milestones for a SequentialLR child. It is resolved once, when the run is
built, and the numbers are what config.json and the checkpoints hold.
A `type` with a dot is imported (a scheduler class from another package); `trust`
(utils/registry.py) says whether the section is the user's or data read back from a file.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch.optim import lr_scheduler

from base.base_data_loader import EpochBatchSampler
from utils import dist
from utils.errors import ConfigError, check_keys
from utils.options import LR_SCHEDULER, check_value, value_of
from utils.registry import TRUSTED, Trust
from utils.schema import check_args, expect, is_int, section, torch_class

SCHEDULER_BASES = (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)
NESTED = (lr_scheduler.SequentialLR, lr_scheduler.ChainedScheduler)  # take child schedulers
AUTO = "auto"
AUTO_ARGS = {lr_scheduler.OneCycleLR: "total_steps", lr_scheduler.CosineAnnealingLR: "T_max"}


def scheduler_class(name: str, key: str, trust: Trust) -> type:
    """A torch.optim.lr_scheduler class by name, or any scheduler class by import path."""
    return torch_class(lr_scheduler, name, SCHEDULER_BASES, key, "lr_scheduler", trust)


def interval(config: dict) -> str:
    """'step' or 'epoch' (the default) for a validated config."""
    return value_of(LR_SCHEDULER, config["lr_scheduler"] or {}, "interval")


# ---------------------------------------------------------------- validation

def validate_scheduler(spec: Any, trust: Trust = TRUSTED) -> None:
    """Check the whole `lr_scheduler` section (children included) before anything is built."""
    if not isinstance(spec, dict):
        raise ConfigError(f"lr_scheduler: expected a mapping with 'type' and 'args', got {spec!r}")
    check_keys(spec, ("type", "interval", "args"), "lr_scheduler")
    every = check_value(LR_SCHEDULER["interval"], value_of(LR_SCHEDULER, spec, "interval"),
                        "lr_scheduler.interval")
    _validate_one({k: v for k, v in spec.items() if k != "interval"}, "lr_scheduler", trust)
    plateau = issubclass(scheduler_class(spec["type"], "lr_scheduler.type", trust),
                         lr_scheduler.ReduceLROnPlateau)
    if every == "step" and plateau:
        raise ConfigError("lr_scheduler.interval: ReduceLROnPlateau steps on a validation "
                          "metric, once per epoch; use interval: epoch")


def _validate_one(spec: Any, key: str, trust: Trust, nested: bool = False) -> None:
    stype, args = section({key: spec}, key)
    cls = scheduler_class(stype, f"{key}.type", trust)
    if nested and issubclass(cls, lr_scheduler.ReduceLROnPlateau):
        raise ConfigError(f"{key}.type: ReduceLROnPlateau cannot be nested in another scheduler")
    checked = dict(args)
    for arg, value in args.items():
        if value == AUTO:
            if AUTO_ARGS.get(cls) != arg:
                allowed = ", ".join(f"{t.__name__}.{a}" for t, a in AUTO_ARGS.items())
                raise ConfigError(f"{key}.args.{arg}: 'auto' is understood only for {allowed}")
            checked[arg] = 1  # a stand-in of the right type; resolved when the run is built
    if cls in NESTED:
        _validate_children(cls, checked, key, trust)
    if cls is lr_scheduler.ChainedScheduler:  # ChainedScheduler(schedulers, optimizer=None)
        check_args(cls, checked, f"{key}.args", injected=("optimizer",))
    else:
        check_args(cls, checked, f"{key}.args", skip=1)


def _validate_children(cls: type, args: dict, key: str, trust: Trust) -> None:
    children = args.get("schedulers")
    if not isinstance(children, list) or not children:
        raise ConfigError(f"{key}.args.schedulers: expected a list of {{type, args}} "
                          f"schedulers, got {children!r}")
    for i, child in enumerate(children):
        _validate_one(child, f"{key}.args.schedulers[{i}]", trust, nested=True)
    if cls is not lr_scheduler.SequentialLR:
        return
    milestones = args.get("milestones")
    ok = (isinstance(milestones, list) and len(milestones) == len(children) - 1
          and all(is_int(m) and m >= 1 for m in milestones)
          and all(a < b for a, b in zip(milestones, milestones[1:])))
    expect(ok, f"{key}.args.milestones", f"{len(children) - 1} increasing positive integers "
           f"(one per scheduler after the first)", milestones)


# ---------------------------------------------------------------- auto values

def steps_per_epoch(loader: Any, accumulate_steps: int, len_epoch: int | None = None) -> int | None:
    """Optimizer steps in one epoch of `loader` on this rank (a short last group is a step);
    None when the loader has no length."""
    batches = len_epoch
    if batches is None:
        sampler = copy.copy(getattr(loader, "batch_sampler", None))
        if isinstance(sampler, EpochBatchSampler):  # as sharded under torchrun
            sampler.rank, sampler.world_size = dist.get_rank(), dist.get_world_size()
            batches = len(sampler)
        else:
            try:
                batches = len(loader)
            except TypeError:
                return None
    return math.ceil(batches / accumulate_steps)


def run_length(config: dict, loader: Any) -> int | None:
    """The scheduler steps of the whole run: epochs, or optimizer steps with interval step."""
    trainer = config["trainer"]
    if interval(config) == "epoch":
        return trainer["epochs"]
    per_epoch = steps_per_epoch(loader, trainer["accumulate_steps"], trainer["len_epoch"])
    return None if per_epoch is None else trainer["epochs"] * per_epoch


def resolve_auto(spec: dict, total: int | None, key: str = "lr_scheduler",
                 why: str = "", trust: Trust = TRUSTED) -> dict:
    """A copy of the scheduler `spec` with every `auto` replaced by the steps (or epochs)
    that scheduler runs; `total` is the span of `spec` (None: unknown, an error if needed)."""
    spec = copy.deepcopy(spec)
    args = spec.get("args") or {}
    cls = scheduler_class(spec["type"], f"{key}.type", trust)
    name = AUTO_ARGS.get(cls)
    if name is not None and args.get(name) == AUTO:
        if total is None:
            raise ConfigError(f"{key}.args.{name}: auto needs the run's length, which is "
                              f"unknown: {why}; give a number")
        if total < 1:
            raise ConfigError(f"{key}.args.{name}: auto gives {total} steps for this scheduler "
                              f"(check the milestones against the run's length)")
        args[name] = total
    if cls in NESTED:
        milestones = [0, *args.get("milestones", [])] if cls is lr_scheduler.SequentialLR \
            else []
        for i, child in enumerate(args["schedulers"]):
            span = total
            if milestones and total is not None:
                end = milestones[i + 1] if i + 1 < len(milestones) else total
                span = end - milestones[i]
            args["schedulers"][i] = resolve_auto(child, span, f"{key}.args.schedulers[{i}]", why,
                                                 trust)
    return spec


def resolved_section(config: dict, loader: Any, trust: Trust = TRUSTED) -> dict | None:
    """config['lr_scheduler'] with its `auto` values computed for this run's loader."""
    spec = config.get("lr_scheduler")
    if not spec:
        return spec
    total = run_length(config, loader)
    why = f"the training loader ({type(loader).__name__}) has no length"
    return resolve_auto(spec, total, why=why, trust=trust)


# ---------------------------------------------------------------- building

def build_scheduler(spec: dict | None, optimizer: torch.optim.Optimizer,
                    trust: Trust = TRUSTED) -> Any:
    """The scheduler of a validated, resolved `lr_scheduler` section (None: no scheduler)."""
    if not spec:
        return None
    return _build(spec, optimizer, "lr_scheduler", trust)


def _build(spec: dict, optimizer: torch.optim.Optimizer, key: str, trust: Trust) -> Any:
    cls = scheduler_class(spec["type"], f"{key}.type", trust)
    args = dict(spec.get("args") or {})
    if any(v == AUTO for v in args.values()):
        raise ConfigError(f"{key}.args: 'auto' was not resolved (build the run with build_all)")
    try:
        if cls not in NESTED:
            return cls(optimizer, **args)
        children = [_build(child, optimizer, f"{key}.args.schedulers[{i}]", trust)
                    for i, child in enumerate(args.pop("schedulers"))]
        if cls is lr_scheduler.ChainedScheduler:
            return cls(children, optimizer=optimizer, **args)
        return cls(optimizer, schedulers=children, **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}.args: {e}") from None
