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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from base.base_metric import BaseMetric, FunctionMetric, TorchmetricsMetric
from data_loader import DATA_LOADERS
from logger.mlflow_reach import stored_uri_warnings, without_stored_uri
from logger.writer import validate_loggers
from model import LOSSES, METRICS, MODELS
from trainer.callbacks.averaging import validate_ema
from trainer.callbacks.swa import validate_swa
from trainer.config.class_weights import criterion_args, resolved_loss
from trainer.config.component_checks import (
    INT64,
    has_validation,
    validate_data_loader,
    validate_metrics,
    validate_optimization,
)
from trainer.config.config_checks import build_sized_model, check_name, check_save_dir
from trainer.config.loader_options import LOADER_OPTIONS, apply_loader_options
from trainer.config.pretrained import load_pretrained, validate_pretrained
from trainer.config.schedulers import build_scheduler, resolved_section
from trainer.run.compiling import validate_compile
from utils.checkpoint import load_checkpoint, seed_everything
from utils.checkpoint_arg import resolve_checkpoint_arg
from utils.config_io import apply_overrides, command_overrides, load_config_file
from utils.config_limits import check_config_limits
from utils.config_trust import stored_trust
from utils.errors import ArgError, ConfigError, check_keys, did_you_mean
from utils.param_groups import build_param_groups
from utils.registry import TRUSTED, Trust, UntrustedType
from utils.run_config import edited_config_json
from utils.schema import (
    AMP_MODES,
    REQUIRED,
    TOP_LEVEL,
    TRAINER_DEFAULTS,
    check_args,
    component_spec,
    expect,
    is_int,
    is_number,
    metric_names,
    parse_monitor,
    section,
    torch_class,
)

# ---------------------------------------------------------------- validation

def _validate_trainer(trainer: Any, config: dict, trust: Trust) -> dict:
    if not isinstance(trainer, dict):
        raise ConfigError(f"trainer: expected a mapping, got {trainer!r}")
    check_keys(trainer, TRAINER_DEFAULTS, "trainer")
    resolved = {k: trainer.get(k, v) for k, v in TRAINER_DEFAULTS.items()}
    if "epochs" not in trainer:
        raise ConfigError("trainer.epochs: required key is missing")
    expect(is_int(resolved["epochs"]) and resolved["epochs"] >= 1, "trainer.epochs",
           "a positive integer", resolved["epochs"])
    expect(is_int(resolved["save_period"]) and resolved["save_period"] >= 1,
           "trainer.save_period", "a positive integer", resolved["save_period"])
    expect(resolved["verbosity"] in (0, 1, 2) and not isinstance(resolved["verbosity"], bool),
           "trainer.verbosity", "0, 1 or 2", resolved["verbosity"])
    expect(is_number(resolved["heartbeat_s"]) and resolved["heartbeat_s"] >= 0,
           "trainer.heartbeat_s", "a number of seconds >= 0 (0 = off)", resolved["heartbeat_s"])
    expect(is_int(resolved["early_stop"]) and resolved["early_stop"] >= 0,
           "trainer.early_stop", "an integer >= 0 (0 = off)", resolved["early_stop"])
    expect(is_int(resolved["keep_last"]) and resolved["keep_last"] >= 0,
           "trainer.keep_last", "an integer >= 0 (0 = keep all)", resolved["keep_last"])
    expect(isinstance(resolved["tensorboard"], bool), "trainer.tensorboard", "true or false",
           resolved["tensorboard"])
    expect(is_int(resolved["histogram_period"]) and resolved["histogram_period"] >= 0,
           "trainer.histogram_period", "an integer >= 0 (0 = no histograms)",
           resolved["histogram_period"])
    expect(isinstance(resolved["save_dir"], str) and resolved["save_dir"].strip(),
           "trainer.save_dir", "a folder path (not blank)", resolved["save_dir"])
    check_save_dir(resolved["save_dir"])
    check_name(config["name"], resolved["save_dir"])
    for key in ("amp", "monitor"):
        if resolved[key] is False:  # YAML reads a bare `off` as false
            resolved[key] = "off"
    expect(resolved["amp"] in AMP_MODES, "trainer.amp", "off, bf16 or fp16", resolved["amp"])
    expect(is_int(resolved["accumulate_steps"]) and resolved["accumulate_steps"] >= 1,
           "trainer.accumulate_steps", "a positive integer", resolved["accumulate_steps"])
    clip = resolved["clip_grad_norm"]
    expect(clip is None or (is_number(clip) and clip >= 0), "trainer.clip_grad_norm",
           "a number >= 0 (0 or null = off)", clip)
    resolved["ema"] = validate_ema(resolved["ema"])
    resolved["loggers"], resolved["mlflow"] = validate_loggers(resolved["loggers"],
                                                               resolved["mlflow"])
    resolved["compile"] = validate_compile(resolved["compile"])
    resolved["swa"] = validate_swa(resolved["swa"], resolved["epochs"])
    for key in ("len_epoch", "max_steps"):
        expect(resolved[key] is None or (is_int(resolved[key]) and resolved[key] >= 1),
               f"trainer.{key}", "a positive integer or null (off)", resolved[key])
    monitor = resolved["monitor"]
    expect(isinstance(monitor, str), "trainer.monitor", "'min <metric>', 'max <metric>' or 'off'",
           monitor)
    mode, metric = parse_monitor(monitor)
    if mode != "off":
        expect(mode in ("min", "max") and bool(metric), "trainer.monitor",
               "'min <metric>', 'max <metric>' or 'off'", monitor)
        logged = ["loss", *metric_names(config)]
        if has_validation(config, trust):
            logged += [f"val_{m}" for m in logged]
        if metric not in logged:
            raise ConfigError(f"trainer.monitor: '{metric}' is not logged by this run"
                              f"{did_you_mean(metric, logged)} (logged: {', '.join(logged)})")
    return resolved


def _validate_top_level(config: dict, resolved: dict) -> list[str]:
    for key in REQUIRED:
        if key not in config:
            raise ConfigError(f"{key}: required section is missing")
    warnings = [f"unknown top-level key '{key}' ignored{did_you_mean(key, TOP_LEVEL)}"
                for key in config if key not in TOP_LEVEL]
    name = config["name"]
    expect(isinstance(name, str) and name.strip() != "" and "/" not in name and name not in
           (".", ".."), "name", "a non-empty name without '/'", name)
    resolved.setdefault("seed", 0)
    expect(is_int(resolved["seed"]) and 0 <= resolved["seed"] < INT64, "seed",
           "an integer >= 0 and below 2**63", resolved["seed"])
    resolved.setdefault("n_gpu", 0)
    expect(is_int(resolved["n_gpu"]) and resolved["n_gpu"] >= 0, "n_gpu", "an integer >= 0",
           resolved["n_gpu"])
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
        resolved["arch"]["pretrained"] = validate_pretrained(config["arch"]["pretrained"])
    validate_data_loader(config, trust)
    validate_optimization(config, resolved, trust)
    resolved["metrics"] = validate_metrics(config, trust)
    resolved["trainer"] = _validate_trainer(config["trainer"], config, trust)
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


class ConfigParser:
    """A validated config (read-only after parsing) and the builders of its components."""

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
        self.notes: list[str] = []  # logged while building, before info.log exists

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
        parser.warnings += stored_uri_warnings(parser.config, stored_uri)
        return parser

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
        options = {k: args.pop(k) for k in LOADER_OPTIONS if k in args}
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
            groups = build_param_groups(params, sec)
            params = [p for p in params.parameters() if p.requires_grad] if groups is None \
                else groups
        return _build("optimizer.args", cls, params, **_args_of(sec))

    def build_scheduler(self, optimizer):
        return build_scheduler(self.config.get("lr_scheduler"), optimizer, self.trust)

    def build_all(self, training: bool = True) -> Components:
        """Seed, then data loaders, model (standardized on the training split), loss,
        metrics, optimizer and scheduler. ConfigErrors name the config file."""
        try:
            seed_everything(self.config["seed"])
            data_loader = self.build_data_loader(training=training)
            valid_data_loader = data_loader.split_validation()
            # `auto` scheduler arguments follow from the loader; config.json keeps the numbers
            self.config["lr_scheduler"] = resolved_section(self.config, data_loader, self.trust)
            self.config["loss"] = resolved_loss(self.config["loss"], data_loader)
            model = self.build_model()
            stats = data_loader.feature_stats()
            if stats is not None and hasattr(model, "set_standardization"):  # a BaseModel
                _build("arch.args", model.set_standardization, *stats)
            pretrained = self.config["arch"].get("pretrained")
            if pretrained and self.checkpoint is None:  # a new run (-r: the checkpoint's)
                self.notes += load_pretrained(model, pretrained, self.config["arch"]["type"])
            criterion = self.build_criterion()
            metrics = self.build_metrics()
            optimizer = self.build_optimizer(model)
            lr_scheduler = self.build_scheduler(optimizer)
        except ConfigError as e:
            raise ConfigError(f"{self.source}: {e}") from None
        return Components(data_loader, valid_data_loader, model, criterion, metrics, optimizer,
                          lr_scheduler)
