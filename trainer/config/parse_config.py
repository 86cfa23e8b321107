"""The run's config: validated against the components, then their builder.

This is the pytorch-template's parse_config.py, with everything a user can
get wrong checked up front, before any data is loaded or any folder created,
and reported as one ConfigError line that names the file and the key path
(docs/errors.md). Components raise ValueError or TypeError with the reason;
the builders here add the config key. The three ways to start a run:
  -c FILE            a new run
  -r CHECKPOINT      resume exactly, config taken from the checkpoint
  -c FILE -r CKPT    fine-tune: the file's config, the checkpoint's weights
A config read back from a file (-r without -c, test.py, api.py) is data: its
dotted types pick only classes of the expected kind (utils/registry.py Trust).
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from base.base_metric import BaseMetric, FunctionMetric, TorchmetricsMetric
from data_loader import DATA_LOADERS
from logger.mlflow_reach import stored_uri_warnings, without_stored_uri
from model import LOSSES, METRICS, MODELS
from trainer.callbacks.registry import validate_callbacks
from trainer.config.class_weights import criterion_args, resolved_loss
from trainer.config.component_checks import (
    PARAM_GROUPS,
    uses_param_groups,
    validate_data_loader,
    validate_metrics,
    validate_optimization,
)
from trainer.config.config_checks import build_sized_model
from trainer.config.loader_options import LOADER_OPTIONS, apply_loader_options, loader_options
from trainer.config.option_checks import resolve_options, resolve_ref
from trainer.config.schedulers import build_scheduler, resolved_section
from utils.checkpoint import load_checkpoint, seed_everything
from utils.checkpoint_arg import resolve_checkpoint_arg
from utils.config_io import apply_overrides, command_overrides, load_config_file
from utils.config_limits import check_config_limits
from utils.config_trust import stored_trust
from utils.errors import ArgError, ConfigError, did_you_mean
from utils.options import TOP_LEVEL, TRAINER, check_value, value_of
from utils.registry import TRUSTED, Trust, UntrustedType
from utils.run_config import edited_config_json
from utils.schema import check_args, component_spec, section, torch_class

PRETRAINED = "trainer.config.pretrained"  # arch.pretrained: loaded when a config sets it

# ---------------------------------------------------------------- validation

def _validate_top_level(config: dict, resolved: dict) -> list[str]:
    for key, option in TOP_LEVEL.items():
        if option.required and key not in config:
            raise ConfigError(f"{key}: required section is missing")
    warnings = [f"unknown top-level key '{key}' ignored{did_you_mean(key, TOP_LEVEL)}"
                for key in config if key not in TOP_LEVEL]
    for key, option in TOP_LEVEL.items():
        if not option.section:
            resolved[key] = check_value(option, value_of(TOP_LEVEL, config, key), key)
    return warnings


def validate_config(config: dict, trust: Trust = TRUSTED) -> tuple[dict, list[str]]:
    """Check every section; return the resolved config and a list of warnings. `trust`:
    whether the config is the user's or data read back from a file."""
    check_config_limits(config)  # before anything recursive (deepcopy) touches it
    resolved = copy.deepcopy(config)
    warnings = _validate_top_level(config, resolved)
    mtype, margs = section(config, "arch", ("pretrained",))
    check_args(MODELS.get(mtype, "arch.type", trust), margs, "arch.args")
    if "pretrained" in config["arch"]:
        resolved["arch"]["pretrained"] = resolve_ref(f"{PRETRAINED}.validate_pretrained")(
            config["arch"]["pretrained"])
    validate_data_loader(config, trust)
    validate_optimization(config, resolved, trust)
    resolved["metrics"] = validate_metrics(config, trust)
    resolved["trainer"] = resolve_options(TRAINER, config["trainer"], "trainer", config, trust)
    resolved["callbacks"] = validate_callbacks(config.get("callbacks"), trust)  # None: []
    return resolved, warnings


# ---------------------------------------------------------------- the parsed config

def _args_of(sec: dict) -> dict:
    return dict(sec.get("args") or {})


def _build(key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a configured constructor; a bad value the constructor rejects names its key."""
    try:
        return fn(*args, **kwargs)
    except ArgError as e:
        raise ConfigError(f"{key}.{e.arg}: {e}") from None
    except (TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"{key}: {e}") from None


@dataclass
class Components:
    """Everything a config builds, in the order it is built."""
    data_loader: Any
    valid_data_loader: Any
    model: torch.nn.Module
    criterion: Any
    metrics: dict
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    notes: list[str] = field(default_factory=list)  # for info.log: what arch.pretrained loaded


class ConfigParser:
    """A validated config and the builders of its components.

    Read-only after parsing: its attributes cannot be set (AttributeError). The two later
    changes are explicit: `resolve_auto(data_loader)` (build_all calls it) writes the values
    a config leaves `auto` (scheduler lengths, class weights) into `config`, the one mutator;
    `with_checkpoint(path, ckpt)` returns a new parser that resumes `path` exactly
    (--resume auto's choice)."""

    def __init__(self, config: dict, source: str, resume: Path | None = None,
                 checkpoint: dict | None = None, finetune: bool = False,
                 warnings: list[str] | None = None, allow_changed: bool = False,
                 trust: Trust = TRUSTED):
        self.config = config
        self.trust = trust  # which of its dotted types may name any callable
        self.source = source
        self.resume = resume
        self.checkpoint = checkpoint
        self.finetune = finetune
        self.warnings = warnings or []
        self.allow_changed = allow_changed  # --allow-changed: resume with a changed config
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"ConfigParser is read-only after parsing (set {name}): "
                                 f"use with_checkpoint() or resolve_auto()")
        object.__setattr__(self, name, value)

    def _replace(self, **changes: Any) -> ConfigParser:
        """A copy with some attributes changed (this parser stays as it is)."""
        new = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(new, name, value)
        return new

    def with_checkpoint(self, path: Path, checkpoint: dict) -> ConfigParser:
        """A new parser, the same config, that resumes `checkpoint` (read from `path`)
        exactly (not a fine-tune): --resume auto's choice (trainer/run/auto_resume.py)."""
        return self._replace(resume=path, checkpoint=checkpoint, finetune=False)

    @classmethod
    def from_args(cls, args: Any) -> ConfigParser:
        """Read -c/-r/overrides, validate, and return the parser (nothing is written)."""
        overrides = command_overrides(args)
        checkpoint = stored_uri = None
        resume = resolve_checkpoint_arg(args.resume) if getattr(args, "resume", None) else None
        if resume is not None:
            checkpoint = load_checkpoint(resume)
        trust = TRUSTED
        if getattr(args, "config", None):
            source = str(args.config)
            raw = load_config_file(args.config)
        elif checkpoint is not None:
            source, raw, origin = str(resume), checkpoint["config"], "a checkpoint"
            if getattr(args, "allow_changed", False):  # the run's edited config.json
                edited = edited_config_json(resume, raw)
                raw, origin = (edited, "a run folder's config.json") if edited else (raw, origin)
            raw, stored_uri = without_stored_uri(raw)  # data: only this command line picks hosts
            if not getattr(args, "trust_config", False):  # data, but what the overrides set
                trust = stored_trust(raw, overrides, origin)
        else:
            raise ConfigError("no config given: use -c CONFIG_FILE, or -r CHECKPOINT to resume")
        parser = cls.from_dict(raw, source, overrides, resume, checkpoint,
                               finetune=bool(args.config and resume),
                               allow_changed=bool(getattr(args, "allow_changed", False)),
                               trust=trust)
        return parser._replace(
            warnings=parser.warnings + stored_uri_warnings(parser.config, stored_uri))

    @classmethod
    def from_dict(cls, raw: dict, source: str, overrides: list[str] | None = None,
                  resume: Path | None = None, checkpoint: dict | None = None,
                  finetune: bool = False, allow_changed: bool = False,
                  trust: Trust = TRUSTED) -> ConfigParser:
        """`raw` with the overrides applied, validated (ConfigErrors name `source`)."""
        try:
            check_config_limits(raw)  # before apply_overrides copies it
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        raw = apply_overrides(raw, list(overrides or []))
        try:
            config, warnings = validate_config(raw, trust)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        return cls(config, source, resume, checkpoint, finetune=finetune, warnings=warnings,
                   allow_changed=allow_changed, trust=trust)

    @classmethod
    def from_checkpoint(cls, path: Path, trust_config: bool = False,
                        flag: str = "--trust-config") -> ConfigParser:
        """The config stored in a checkpoint, validated here (test.py, predictions): data,
        unless `trust_config` (`flag` is how the user says so, for the error message)."""
        ckpt = load_checkpoint(path)
        return cls.from_stored(ckpt["config"], path, trust_config, flag, checkpoint=ckpt)

    @classmethod
    def from_stored(cls, raw: Any, path: Path, trust_config: bool = False,
                    flag: str = "--trust-config", origin: str = "a checkpoint",
                    checkpoint: dict | None = None) -> ConfigParser:
        """The parser of the config `raw` read from `path` (a checkpoint, or an export's
        metadata: `origin`)."""
        trust = TRUSTED if trust_config else Trust.data(origin, flag)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the stored config is not a mapping but a "
                              f"{type(raw).__name__}")
        try:
            resolved, _ = validate_config(raw, trust)
        except UntrustedType as e:
            raise ConfigError(f"{path}: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"{path}: the stored config is invalid here: {e}") from None
        return cls(resolved, str(path), path, checkpoint, trust=trust)

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    @property
    def trainer(self) -> dict:
        return self.config["trainer"]

    # ------------------------------------------------------------ builders

    def build_data_loader(self, training: bool = True):
        sec = self.config["data_loader"]
        cls = DATA_LOADERS.get(sec["type"], "data_loader.type", self.trust)
        args = _args_of(sec)
        options = loader_options(args)
        args = {k: v for k, v in args.items() if k not in LOADER_OPTIONS}
        if "trust" in inspect.signature(cls).parameters:  # it resolves dotted types itself
            args["trust"] = self.trust
        loader = _build("data_loader.args", cls, **args, training=training,
                        seed=self.config["seed"])
        apply_loader_options(loader, sec["type"], options, training)
        return loader

    def build_model(self) -> torch.nn.Module:
        sec = self.config["arch"]
        model = _build("arch.args", build_sized_model,
                       MODELS.get(sec["type"], "arch.type", self.trust), _args_of(sec),
                       sec["type"])
        if not isinstance(model, torch.nn.Module):  # an imported function may return anything
            raise ConfigError(f"arch.type: {sec['type']} gave a {type(model).__name__}, not a "
                              "torch.nn.Module")
        return model

    def build_criterion(self):
        name, args = component_spec(self.config["loss"], "loss")
        args = criterion_args(args)
        loss = LOSSES.get(name, "loss", self.trust)
        if isinstance(loss, type):
            return _build("loss.args", loss, **args)
        return functools.partial(loss, **args) if args else loss

    def build_metrics(self) -> dict[str, BaseMetric]:
        """{name: metric} in config order; a plain function metric is wrapped (it keeps the
        epoch's outputs: base/base_metric.py FunctionMetric)."""
        metrics = {}
        for i, spec in enumerate(self.config["metrics"]):
            name, args = component_spec(spec, f"metrics[{i}]")
            found = METRICS.get(name, f"metrics[{i}]", self.trust)
            if isinstance(found, type):
                metric = _build(f"metrics[{i}].args", found, **args)
                metrics[name] = metric if isinstance(metric, BaseMetric) else \
                    TorchmetricsMetric(metric, name)  # a torchmetrics Metric class
            else:
                metrics[name] = FunctionMetric(functools.partial(found, **args) if args else found,
                                               name)
        return metrics

    def build_optimizer(self, params) -> torch.optim.Optimizer:
        """`params`: a list of parameters, or the model (its parameters that train, in the
        groups of optimizer.param_groups and no_decay: utils/param_groups.py)."""
        sec = self.config["optimizer"]
        cls = torch_class(torch.optim, sec["type"], torch.optim.Optimizer, "optimizer.type",
                          "optimizer", self.trust)
        if isinstance(params, torch.nn.Module):
            model, params = params, [p for p in params.parameters() if p.requires_grad]
            if uses_param_groups(sec):
                params = resolve_ref(f"{PARAM_GROUPS}.build_param_groups")(model, sec)
        return _build("optimizer.args", cls, params, **_args_of(sec))

    def build_scheduler(self, optimizer):
        return build_scheduler(self.config.get("lr_scheduler"), optimizer, self.trust)

    def resolve_auto(self, data_loader: Any) -> None:
        """The one change to `config` after parsing: the `auto` values of lr_scheduler (the
        run's steps or epochs) and loss (class weights) become the numbers that follow from
        the training split, so config.json and the checkpoint keep the numbers."""
        self.config["lr_scheduler"] = resolved_section(self.config, data_loader, self.trust)
        self.config["loss"] = resolved_loss(self.config["loss"], data_loader)

    def build_all(self, training: bool = True) -> Components:
        """Seed, then data loaders, model (standardized on the training split), loss,
        metrics, optimizer and scheduler. ConfigErrors name the config file."""
        try:
            seed_everything(self.config["seed"])
            data_loader = self.build_data_loader(training=training)
            valid_data_loader = data_loader.split_validation()
            self.resolve_auto(data_loader)
            model = self.build_model()
            stats = data_loader.feature_stats()
            if stats is not None and hasattr(model, "set_standardization"):  # a BaseModel
                _build("arch.args", model.set_standardization, *stats)
            notes, pretrained = [], self.config["arch"].get("pretrained")
            if pretrained and self.checkpoint is None:  # a new run (-r: the checkpoint's)
                notes = resolve_ref(f"{PRETRAINED}.load_pretrained")(
                    model, pretrained, self.config["arch"]["type"])
            criterion = self.build_criterion()
            metrics = self.build_metrics()
            optimizer = self.build_optimizer(model)
            lr_scheduler = self.build_scheduler(optimizer)
        except ConfigError as e:
            raise ConfigError(f"{self.source}: {e}") from None
        return Components(data_loader, valid_data_loader, model, criterion, metrics, optimizer,
                          lr_scheduler, notes)
