"""The config's own sections checked and resolved from their single definition
(utils/options.py): unknown keys, required keys, defaults, each value's schema, and the
custom checks that the definitions name by dotted path (those of the trainer section live
in trainer/config/trainer_checks.py)."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from utils.errors import ConfigError, check_keys
from utils.options import Context, Option, check_value


@functools.cache
def resolve_ref(ref: Any) -> Any:
    """An Option's `check` (or `schema`): itself, or what its dotted path names."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.rpartition(".")
    return getattr(importlib.import_module(module), name)


def resolve_options(table: dict[str, Option], values: Any, where: str, config: dict,
                    trust: Any = None, prefix: str | None = None) -> dict:
    """`values` (the mapping at `where`) with every key of `table` checked, in the table's
    order, and its default filled in; `prefix`: the key path before each key."""
    prefix = f"{where}." if prefix is None else prefix
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    check_keys(values, table, where)
    ctx = Context(config, {}, trust)
    for key, option in table.items():
        if option.section:
            continue
        if key not in values:
            if option.required:
                raise ConfigError(f"{prefix}{key}: required key is missing")
            ctx.resolved[key] = option.default_value()
        else:
            ctx.resolved[key] = values[key]
        value = check_value(option, ctx.resolved[key], f"{prefix}{key}")
        if option.check is not None:
            value = resolve_ref(option.check)(value, ctx)
        ctx.resolved[key] = value
    return ctx.resolved
