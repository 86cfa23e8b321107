"""The config schema's constants and the generic checks that validation is made of.

Everything here is plain data and plain Python: the component-aware
validation that uses it lives in trainer/parse_config.py.
"""

from __future__ import annotations

import inspect
from typing import Any

from utils.errors import ConfigError, check_keys, did_you_mean, unknown_name

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")

# trainer keys with their defaults; None marks a required key
TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": None,
    "save_dir": "saved/",
    "save_period": 1,
    "verbosity": 1,
    "heartbeat_s": 30,
    "monitor": "off",
    "early_stop": 0,
    "tensorboard": False,
    "keep_last": 0,
    "histogram_period": 10,
    "amp": "off",
    "accumulate_steps": 1,
    "clip_grad_norm": 0,
    "ema": None,
    "swa": None,
    "compile": False,
    "len_epoch": None,
    "max_steps": None,
}
# optional top-level keys with their defaults
TOP_LEVEL_DEFAULTS: dict[str, Any] = {"seed": 0, "n_gpu": 0, "metrics": [], "lr_scheduler": None}
AMP_MODES = ("off", "bf16", "fp16")
TOP_LEVEL = ("name", "seed", "n_gpu", "arch", "data_loader", "optimizer", "loss", "metrics",
             "lr_scheduler", "trainer", "sweep")
REQUIRED = ("name", "arch", "data_loader", "optimizer", "loss", "trainer")
# data loader arguments the training code passes itself
INJECTED_LOADER_ARGS = ("training", "seed")
# data loader arguments of every loader, applied by the builder: sampler: balanced | null
SAMPLER_ARGS = ("sampler",)
SAMPLERS = (None, "balanced")
# k-fold cross-validation
FOLD_ARGS = ("folds", "fold")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def expect(cond: bool, key: str, expected: str, value: Any) -> None:
    """ConfigError '<key>: expected <expected>, got <value>' unless `cond`."""
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def parse_monitor(monitor: str) -> tuple[str, str | None]:
    """'min val_loss' -> ('min', 'val_loss'); 'off' -> ('off', None)."""
    if monitor == "off":
        return "off", None
    mode, _, metric = monitor.partition(" ")
    return mode, metric.strip()


def _check_value_against(param: inspect.Parameter, value: Any, key: str) -> None:
    """Type check of one argument, from its annotation or its default."""
    ann, default = param.annotation, param.default
    if ann in (int, "int"):
        expect(is_int(value), key, "an integer", value)
    elif ann in (float, "float"):
        expect(is_number(value), key, "a number", value)
    elif ann in (bool, "bool"):
        expect(isinstance(value, bool), key, "true or false", value)
    elif ann in (str, "str"):
        expect(isinstance(value, str), key, "a string", value)
    elif default is inspect.Parameter.empty or default is None:
        return
    elif isinstance(default, bool):
        expect(isinstance(value, bool), key, "true or false", value)
    elif isinstance(default, int | float):
        expect(is_number(value), key, "a number", value)
    elif isinstance(default, str):
        expect(isinstance(value, str), key, "a string", value)


def check_args(fn: Any, args: Any, key: str, skip: int = 0, injected: tuple = ()) -> None:
    """Check `args` (a mapping) against the signature of `fn` (a class or function).

    `skip` leading parameters are supplied by the code (params, optimizer,
    output/target); `injected` keyword parameters likewise.
    """
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"{key}: expected a mapping of argument names to values, got {args!r}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())[skip:]
    if any(p.kind is p.VAR_POSITIONAL for p in params[:1]):
        params = params[1:]
    by_name = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
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


def torch_class(module: Any, name: str, base: type | tuple, key: str, what: str) -> type:
    """A class of a torch module (torch.optim, torch.optim.lr_scheduler) by name."""
    bases = base if isinstance(base, tuple) else (base,)
    choices = [n for n, c in vars(module).items()
               if isinstance(c, type) and issubclass(c, base) and c not in bases
               and not n.startswith("_")]
    if name not in choices:
        raise ConfigError(f"{key}: {unknown_name(what, name, choices)}")
    return getattr(module, name)


def section(config: dict, key: str) -> tuple[str, dict]:
    """The (type, args) of a {type, args} section."""
    sec = config.get(key)
    if not isinstance(sec, dict):
        raise ConfigError(f"{key}: expected a mapping with 'type' and 'args', got {sec!r}")
    check_keys(sec, ("type", "args"), key)
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
