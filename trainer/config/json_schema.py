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
from trainer.callbacks.registry import CALLBACKS
from trainer.config.option_checks import resolve_ref
from trainer.config.pretrained import SCHEMA as PRETRAINED
from trainer.config.schedulers import AUTO, AUTO_ARGS, NESTED, SCHEDULER_BASES
from utils.options import (
    ABSENT,
    DATA_LOADER,
    LR_SCHEDULER,
    POSITIVE,
    REQUIRED,
    SWEEP,
    TOP_LEVEL,
    TRAINER,
    Option,
)
from utils.param_groups import SCHEMA as GROUPS
from utils.schema import INJECTED_LOADER_ARGS, config_params, torch_classes, value_kind

DRAFT = "https://json-schema.org/draft/2020-12/schema"
IMPORT_PATH = {"type": "string", "pattern": r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$",
               "description": "an import path, package.module.Name (a type with a dot is "
                              "imported)"}
INTERPOLATION = {"$ref": "#/$defs/interpolation"}
DELETE = {"type": "boolean", "description": "_delete_: true replaces the base's mapping "
                                            "instead of merging into it"}
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

def option_schema(option: Option) -> dict:
    """One key of a utils/options.py table: its schema (false for a bare YAML `off` too),
    its description and its default."""
    schema = resolve_ref(option.schema) if isinstance(option.schema, str) else option.schema
    if option.off:
        schema = {"enum": [*schema["enum"], False]} if "enum" in schema else \
            {"anyOf": [schema, {"const": False}]}
    default = NO_DEFAULT if option.default is REQUIRED or option.default is ABSENT else \
        option.default
    return or_interpolation(schema, option.doc, default)


def table_schema(table: dict[str, Option]) -> dict:
    """A section made of one table's keys; unknown keys are refused."""
    props = {key: option_schema(option) for key, option in table.items()}
    props["_delete_"] = DELETE
    return {"type": "object", "properties": props, "additionalProperties": False}


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
    callback = component("callback", "callback", _registry_items(CALLBACKS), defs)
    props = {
        "$schema": {"type": "string", "description": "the schema's location (ignored)"},
        "_base_": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                   "description": "config files merged under this one (paths relative to it)"},
        **{key: option_schema(o) for key, o in TOP_LEVEL.items() if not o.section},
        "arch": component("arch", "model", _registry_items(MODELS), defs,
                          extra={"pretrained": PRETRAINED}),
        "data_loader": component("data_loader", "data loader", _registry_items(
            DATA_LOADERS, injected=INJECTED_LOADER_ARGS,
            extra=table_schema(DATA_LOADER)["properties"]), defs),
        "optimizer": component("optimizer", "torch.optim optimizer", {
            name: _described(cls, name, args_schema(cls, name, skip=1))
            for name, cls in optimizers.items()}, defs, extra=GROUPS),
        "loss": _named_or_component(loss),
        "metrics": {"type": ["array", "null"], "items": _named_or_component(metric),
                    "default": [], "description": "metrics logged per epoch (names or "
                                                  "{type, args})"},
        "lr_scheduler": {**component("scheduler", "torch.optim.lr_scheduler class",
                                     schedulers, defs,
                                     extra=table_schema(LR_SCHEDULER)["properties"]),
                         "type": ["object", "null"], "default": None},
        "trainer": table_schema(TRAINER),
        "callbacks": {"type": ["array", "null"], "items": _named_or_component(callback),
                      "default": [], "description": TOP_LEVEL["callbacks"].doc},
        "sweep": {**table_schema(SWEEP), "description": TOP_LEVEL["sweep"].doc},
    }
    return {"$schema": DRAFT, "title": "pytorch-template config",
            "description": "A training config (docs/config.md). Unknown top-level keys are "
                           "a warning; unknown keys elsewhere are errors.",
            "type": "object", "properties": props,
            "if": {"required": ["_base_"]},
            "else": {"required": [k for k, o in TOP_LEVEL.items() if o.required]},
            "$defs": dict(sorted(defs.items()))}


def schema_text() -> str:
    """The schema as train.py --print-schema prints it (and docs/config.schema.json holds)."""
    return json.dumps(build_schema(), indent=2) + "\n"
