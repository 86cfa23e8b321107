"""The config schema's constants and the generic checks that validation is made of.

Everything here is plain data and plain Python: the component-aware
validation that uses it lives in trainer/config/parse_config.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from utils.errors import ConfigError, check_keys, did_you_mean, unknown_name
from utils.registry import Kind, Trust, is_import_path, resolve_type

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")

# data loader arguments the training code passes itself
INJECTED_LOADER_ARGS = ("training", "seed", "trust")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def expect(cond: bool, key: str, expected: str, value: Any) -> None:
    """ConfigError '<key>: expected <expected>, got <value>' unless `cond`."""
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def option_mapping(value: Any, key: str, allowed: Iterable[str], expected: str,
                   true_is_empty: bool = True) -> dict | None:
    """A trainer option that is off or a mapping (trainer.ema, .swa, .compile): None for
    null or false, {} for true (where `true_is_empty`), else the mapping after its keys are
    checked against `allowed`; anything else is '<key>: expected <expected>, got ...'."""
    if value is None or value is False:
        return None
    if value is True and true_is_empty:
        return {}
    expect(isinstance(value, dict), key, expected, value)
    check_keys(value, allowed, key)
    return value


def parse_monitor(monitor: str) -> tuple[str, str | None]:
    """'min val_loss' -> ('min', 'val_loss'); 'off' -> ('off', None)."""
    if monitor == "off":
        return "off", None
    mode, _, metric = monitor.partition(" ")
    return mode, metric.strip()


_KINDS = {int: "integer", float: "number", bool: "boolean", str: "string"}
_EXPECTED = {"integer": "an integer", "number": "a number", "boolean": "true or false",
             "string": "a string"}


def value_kind(param: inspect.Parameter) -> str | None:
    """The JSON type an argument must have ('integer', 'number', 'boolean', 'string'), from
    its annotation or else its default; None when neither says (anything goes). The config
    check and the JSON Schema (trainer/config/json_schema.py) both follow it."""
    ann, default = param.annotation, param.default
    for kind, name in _KINDS.items():
        if ann in (kind, kind.__name__):
            return name
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int | float):
        return "number"
    return "string" if isinstance(default, str) else None


def _check_value_against(param: inspect.Parameter, value: Any, key: str) -> None:
    """Type check of one argument, from its annotation or its default."""
    kind = value_kind(param)
    ok = {None: True, "integer": is_int(value), "number": is_number(value),
          "boolean": isinstance(value, bool), "string": isinstance(value, str)}[kind]
    if kind is not None:
        expect(ok, key, _EXPECTED[kind], value)


def config_params(fn: Any, skip: int = 0) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """The parameters a config's `args` go to ({name: parameter}, and whether **kwargs takes
    any other), after `skip` leading ones the code supplies; None without a signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())[skip:]
    if any(p.kind is p.VAR_POSITIONAL for p in params[:1]):
        params = params[1:]
    by_name = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return by_name, any(p.kind is p.VAR_KEYWORD for p in params)


def check_args(fn: Any, args: Any, key: str, skip: int = 0, injected: tuple = ()) -> None:
    """Check `args` (a mapping) against the signature of `fn` (a class or function).

    `skip` leading parameters are supplied by the code (params, optimizer,
    output/target); `injected` keyword parameters likewise.
    """
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"{key}: expected a mapping of argument names to values, got {args!r}")
    found = config_params(fn, skip)
    if found is None:
        return
    by_name, open_kwargs = found
    name = getattr(fn, "__name__", str(fn))
    for arg, value in args.items():
        if arg in injected:
            raise ConfigError(f"{key}.{arg}: set by the training code, remove it from the config")
        if arg not in by_name:
            if open_kwargs:
                continue
            choices = [n for n in by_name if n not in injected]
            raise ConfigError(f"{key}.{arg}: unknown argument of {name}{did_you_mean(arg, choices)}"
                              f" (expected one of: {', '.join(choices)})")
        _check_value_against(by_name[arg], value, f"{key}.{arg}")
    for pname, p in by_name.items():
        if p.default is p.empty and pname not in args and pname not in injected:
            raise ConfigError(f"{key}.{pname}: required argument of {name} is missing")


def torch_classes(module: Any, base: type | tuple) -> dict[str, type]:
    """The public subclasses of `base` (not `base` itself) in a torch module, by name."""
    bases = base if isinstance(base, tuple) else (base,)
    return {n: c for n, c in sorted(vars(module).items())
            if isinstance(c, type) and issubclass(c, base) and c not in bases
            and not n.startswith("_")}


def torch_class(module: Any, name: str, base: type | tuple, key: str, what: str,
                trust: Trust) -> type:
    """A class of a torch module (torch.optim, torch.optim.lr_scheduler) by name, or any
    subclass of `base` by import path (`torch.optim.AdamW`, `mypkg.optim.Lion`)."""
    bases = base if isinstance(base, tuple) else (base,)
    if is_import_path(name):
        kind = Kind(f"a subclass of {' or '.join(_qualname(b) for b in bases)}", bases)
        return resolve_type(name, key, trust, kind)
    choices = torch_classes(module, base)
    if name not in choices:
        raise ConfigError(f"{key}: {unknown_name(what, name, choices)}")
    return getattr(module, name)


def _qualname(cls: type) -> str:
    module = cls.__module__.replace("torch.optim.optimizer", "torch.optim")
    return f"{module}.{cls.__qualname__}"


def section(config: dict, key: str, extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    """The (type, args) of a {type, args} section (`extra`: its other allowed keys)."""
    sec = config.get(key)
    if not isinstance(sec, dict):
        raise ConfigError(f"{key}: expected a mapping with 'type' and 'args', got {sec!r}")
    check_keys(sec, ("type", "args", *extra), key)
    if not isinstance(sec.get("type"), str):
        raise ConfigError(f"{key}.type: expected a name, got {sec.get('type')!r}")
    args = sec.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{key}.args: expected a mapping, got {args!r}")
    return sec["type"], args


def component_spec(spec: Any, key: str) -> tuple[str, dict]:
    """A loss or metric given as a name or as {type, args}."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "type" in spec:
        return section({key: spec}, key)
    raise ConfigError(f"{key}: expected a name or {{type, args}}, got {spec!r}")


def metric_names(config: dict) -> list[str]:
    return [component_spec(m, f"metrics[{i}]")[0]
            for i, m in enumerate(config.get("metrics") or [])]
