"""A JSON Schema (draft 2020-12) of the config, built from the registries and signatures.

`python train.py --print-schema` prints it; docs/config.schema.json is its committed copy,
which config/*.yaml name on their first line so that editors with a YAML language server
complete keys, registered names and arguments (docs/config.md, Editor support).

The schema follows the config check (trainer/config/parse_config.py) and is never stricter than
it: argument types come from utils.schema.value_kind, which the check uses too. It checks
names, types and values; required keys it leaves to train.py only where `_base_` may
supply them (a file with `_base_` need not be complete on its own).
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import typing
from typing import Any

import torch
from torch.optim import lr_scheduler

from data_loader import DATA_LOADERS
from model import LOSSES, METRICS, MODELS
from trainer.callbacks.averaging import EMA_DEFAULTS
from trainer.config.loader_options import LOADER_OPTIONS
from trainer.config.pretrained import SCHEMA as PRETRAINED
from trainer.config.schedulers import AUTO, AUTO_ARGS, INTERVALS, NESTED, SCHEDULER_BASES
from utils.param_groups import SCHEMA as GROUPS
from utils.schema import (
    AMP_MODES,
    INJECTED_LOADER_ARGS,
    REQUIRED,
    TRAINER_DEFAULTS,
    config_params,
    torch_classes,
    value_kind,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
IMPORT_PATH = {"type": "string", "pattern": r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$",
               "description": "an import path, package.module.Name (a type with a dot is "
                              "imported)"}
INTERPOLATION = {"$ref": "#/$defs/interpolation"}
DELETE = {"type": "boolean", "description": "_delete_: true replaces the base's mapping "
                                            "instead of merging into it"}
POSITIVE = {"type": "integer", "minimum": 1}
NON_NEGATIVE = {"type": "integer", "minimum": 0}
TRAINER = {  # trainer keys with more to say than their default; the rest follow the default
    "epochs": (POSITIVE, "epochs to train (required)"),
    "save_dir": ({"type": "string", "minLength": 1}, "root of models/ and log/"),
    "save_period": (POSITIVE, "checkpoint every N epochs (and after the last)"),
    "verbosity": ({"enum": [0, 1, 2]}, "0 warnings only, 1 a line per epoch, 2 also the model"),
    "heartbeat_s": ({"type": "number", "minimum": 0}, "progress line every N s without a "
                                                      "terminal; 0 = off"),
    "monitor": ({"anyOf": [{"type": "string", "pattern": r"^(off|(min|max) \S+)$"},
                           {"const": False}]}, "'min <metric>', 'max <metric>' or 'off'"),
    "early_stop": (NON_NEGATIVE, "epochs without improvement before stopping; 0 = off"),
    "tensorboard": ({"type": "boolean"}, "write TensorBoard logs"),
    "keep_last": (NON_NEGATIVE, "keep the newest N periodic checkpoints; 0 = all"),
    "histogram_period": (NON_NEGATIVE, "TensorBoard histograms every N epochs; 0 = none"),
    "amp": ({"enum": [*AMP_MODES, False]}, "mixed precision: off, bf16 or fp16"),
    "accumulate_steps": (POSITIVE, "optimizer step every N batches"),
    "clip_grad_norm": ({"type": ["number", "null"], "minimum": 0}, "max gradient norm; 0 = off"),
    "ema": ({"anyOf": [{"type": ["null", "boolean"]}, {
        "type": "object", "additionalProperties": False, "properties": {
            "decay": {"type": "number", "minimum": 0, "maximum": 1,
                      "default": EMA_DEFAULTS["decay"]},
            "every": {**POSITIVE, "default": EMA_DEFAULTS["every"]},
            "validate": {"type": "boolean", "default": EMA_DEFAULTS["validate"]}}}]},
        "weight averaging {decay, every, validate}; null = off"),
    "len_epoch": ({"type": ["integer", "null"], "minimum": 1}, "batches per epoch; null = the "
                                                               "loader's length"),
    "max_steps": ({"type": ["integer", "null"], "minimum": 1}, "stop after N optimizer steps"),
}


# ---------------------------------------------------------------- one argument

def _plain(value: Any) -> bool:
    """Whether `value` can be written as JSON (a default worth showing)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return False


def _literal(annotation: Any) -> list | None:
    """The choices of a Literal[...] annotation (also one written as a string)."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    if isinstance(annotation, str) and annotation.startswith("Literal[") \
            and annotation.endswith("]"):
        try:
            choices = ast.literal_eval(f"[{annotation[len('Literal['):-1]}]")
        except (ValueError, SyntaxError):
            return None
        return choices if all(_plain(c) for c in choices) else None
    return None


NO_DEFAULT = inspect.Parameter.empty


def or_interpolation(schema: dict, description: str = "", default: Any = NO_DEFAULT) -> dict:
    """A leaf value's schema that also admits a ${path.to.key} string (resolved later)."""
    out = {"anyOf": [schema, INTERPOLATION]} if schema else {}
    if description:
        out["description"] = description
    if default is not NO_DEFAULT and _plain(default):
        out["default"] = list(default) if isinstance(default, tuple) else default
    return out


def arg_schema(param: inspect.Parameter, owner: str, auto: bool = False) -> dict:
    kind = value_kind(param)
    choices = _literal(param.annotation)
    schema: dict = {"enum": choices} if choices else {"type": kind} if kind else {}
    if auto:
        schema = {"anyOf": [schema or {}, {"const": AUTO}]}
    required = param.default is param.empty
    text = f"{owner} argument" + (" (required)" if required else "")
    return or_interpolation(schema, text, param.default)


def args_schema(fn: Any, owner: str, skip: int = 0, injected: tuple = (),
                extra: dict | None = None, auto: str | None = None) -> dict:
    """The `args` mapping of `fn`: its parameters, after `skip` the code supplies."""
    found = config_params(fn, skip)
    if found is None:
        return {"type": ["object", "null"]}
    by_name, open_kwargs = found
    props = {n: arg_schema(p, owner, n == auto) for n, p in by_name.items() if n not in injected}
    props.update(extra or {})
    props["_delete_"] = DELETE
    return {"type": ["object", "null"], "properties": props,
            "additionalProperties": open_kwargs}


# ---------------------------------------------------------------- {type, args} sections

def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def type_schema(names: list[str], what: str) -> dict:
    return {"anyOf": [{"enum": names}, IMPORT_PATH],
            "description": f"a {what}: {', '.join(names)}; or an import path "
                           f"(package.module.Name)"}


def component(key: str, what: str, items: dict[str, dict], defs: dict,
              extra: dict | None = None) -> dict:
    """{type, args} where `args` follows the type; `items`: {name: args schema}."""
    branches = []
    for name, schema in items.items():
        ref = f"{key}.{name}"
        defs[ref] = schema
        branches.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                         "then": {"properties": {"args": {"$ref": f"#/$defs/{ref}"}}}})
    props = {"type": type_schema(list(items), what),
             "args": {"type": ["object", "null"], "description": f"arguments of the {what}"},
             **(extra or {}), "_delete_": DELETE}
    return {"type": "object", "properties": props, "additionalProperties": False,
            "allOf": branches}


def _skip(found: Any) -> int:
    """Leading parameters the code passes: none for a class, (output, target) for a function."""
    return 0 if isinstance(found, type) else 2


def _named_or_component(schema: dict) -> dict:
    """A loss or metric: a registered name, an import path, or {type, args}."""
    return {"anyOf": [schema["properties"]["type"], schema]}


def _described(found: Any, owner: str, schema: dict) -> dict:
    summary = _summary(found)
    return {**schema, "description": f"{owner}: {summary}" if summary else owner}


def _registry_items(registry: Any, skip_of: Any = lambda f: 0, injected: tuple = (),
                    extra: dict | None = None) -> dict:
    return {name: _described(found, name, args_schema(found, name, skip_of(found), injected,
                                                      extra))
            for name, found in sorted(registry.items().items())}


def _scheduler_items() -> dict:
    items = {}
    child = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/scheduler"},
             "description": "the child schedulers, each {type, args}"}
    milestones = {"type": "array", "items": POSITIVE, "description": "the step (or epoch) each "
                  "child after the first starts at"}
    for name, cls in torch_classes(lr_scheduler, SCHEDULER_BASES).items():
        chained = cls is lr_scheduler.ChainedScheduler
        extra = {"schedulers": child} if cls in NESTED else {}
        if cls is lr_scheduler.SequentialLR:
            extra["milestones"] = milestones
        items[name] = _described(cls, name, args_schema(
            cls, name, skip=0 if chained else 1, injected=("optimizer",) if chained else (),
            extra=extra, auto=AUTO_ARGS.get(cls)))
    return items


# ---------------------------------------------------------------- the whole config

def _trainer_schema() -> dict:
    props: dict = {}
    for key, default in TRAINER_DEFAULTS.items():
        schema, text = TRAINER.get(key, ({}, ""))
        props[key] = or_interpolation(schema, text or f"trainer.{key}",
                                      NO_DEFAULT if key == "epochs" else default)
    props["_delete_"] = DELETE
    return {"type": "object", "properties": props, "additionalProperties": False}


def _loader_options() -> dict:
    options = {
        "sampler": or_interpolation({"enum": [None, "balanced"]}, "balanced: class-balanced "
                                    "draws; null = the loader's own order", None),
        "folds": or_interpolation({"type": ["integer", "null"], "minimum": 2},
                                  "k-fold cross-validation over the training part", None),
        "fold": or_interpolation({"type": ["integer", "null"], "minimum": 0},
                                 "the fold this run validates on (0..folds-1)", None),
    }
    return {k: options.get(k, {}) for k in LOADER_OPTIONS}


def build_schema() -> dict:
    """The JSON Schema of a config file (one run's config, with or without a sweep section)."""
    defs: dict = {"interpolation": {"type": "string", "pattern": r"\$\{[^}]+\}",
                                    "description": "${path.to.key}, resolved after merging"}}
    optimizers = torch_classes(torch.optim, torch.optim.Optimizer)
    schedulers = _scheduler_items()
    defs["scheduler"] = component("scheduler", "torch.optim.lr_scheduler class", schedulers,
                                  defs)
    loss = component("loss", "loss", _registry_items(LOSSES, _skip), defs)
    metric = component("metric", "metric", _registry_items(METRICS, _skip), defs)
    interval = {"enum": list(INTERVALS), "default": "epoch",
                "description": "step: after every optimizer step; epoch: after every epoch"}
    props = {
        "$schema": {"type": "string", "description": "the schema's location (ignored)"},
        "_base_": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                   "description": "config files merged under this one (paths relative to it)"},
        "name": {"type": "string", "pattern": r"^(?!\.{1,2}$)[^/]*\S[^/]*$",
                 "description": "the experiment's name, used in output paths"},
        "seed": or_interpolation({"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                                 "one seed for python, numpy, torch and the data order", 0),
        "n_gpu": or_interpolation(NON_NEGATIVE, "GPUs to use; 0 = CPU", 0),
        "arch": component("arch", "model", _registry_items(MODELS), defs,
                          extra={"pretrained": PRETRAINED}),
        "data_loader": component("data_loader", "data loader", _registry_items(
            DATA_LOADERS, injected=INJECTED_LOADER_ARGS, extra=_loader_options()), defs),
        "optimizer": component("optimizer", "torch.optim optimizer", {
            name: _described(cls, name, args_schema(cls, name, skip=1))
            for name, cls in optimizers.items()}, defs, extra=GROUPS),
        "loss": _named_or_component(loss),
        "metrics": {"type": ["array", "null"], "items": _named_or_component(metric),
                    "default": [], "description": "metrics logged per epoch (names or "
                                                  "{type, args})"},
        "lr_scheduler": {**component("scheduler", "torch.optim.lr_scheduler class",
                                     schedulers, defs, extra={"interval": interval}),
                         "type": ["object", "null"], "default": None},
        "trainer": _trainer_schema(),
        "sweep": {"type": "object", "description": "a sweep over this config (docs/sweeps.md)"},
    }
    return {"$schema": DRAFT, "title": "pytorch-template config",
            "description": "A training config (docs/config.md). Unknown top-level keys are "
                           "a warning; unknown keys elsewhere are errors.",
            "type": "object", "properties": props,
            "if": {"required": ["_base_"]}, "else": {"required": list(REQUIRED)},
            "$defs": dict(sorted(defs.items()))}


def schema_text() -> str:
    """The schema as train.py --print-schema prints it (and docs/config.schema.json holds)."""
    return json.dumps(build_schema(), indent=2) + "\n"
