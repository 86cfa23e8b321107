"""Config files, command-line overrides and validation up front.

Everything a user can get wrong in a config is checked here, before any data
is loaded or any folder is created, and reported as one ConfigError line that
names the file and the key path (DESIGN.md section 4).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path
from typing import Any

import yaml

from utils.errors import ConfigError, check_keys, did_you_mean, unknown_name

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")

# trainer keys with their defaults; None marks a required key
TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": None,
    "save_dir": "saved/",
    "save_period": 1,
    "verbosity": 2,
    "monitor": "off",
    "early_stop": 0,
    "tensorboard": False,
    "keep_last": 0,
    "histogram_period": 10,
    "amp": "off",
    "accumulate_steps": 1,
    "clip_grad_norm": 0,
}
AMP_MODES = ("off", "bf16", "fp16")
TOP_LEVEL = ("name", "seed", "n_gpu", "arch", "data_loader", "optimizer", "loss", "metrics",
             "lr_scheduler", "trainer", "sweep")
REQUIRED = ("name", "arch", "data_loader", "optimizer", "loss", "trainer")
# data loader arguments the training code passes itself
INJECTED_LOADER_ARGS = ("training", "seed")


# ---------------------------------------------------------------- files

class _Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads 1e-3 and 1E5 as floats (YAML 1.2 style)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or YAML config; errors name the file (and line and column)."""
    path = Path(path)
    if path.suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"{path}: a config file must end in .json, .yaml or .yml")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections at the top level")
    return data


def save_config(config: dict, path: Path) -> None:
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- overrides

def parse_value(text: str) -> Any:
    """A command-line value, read as a YAML scalar or list ('0.01', 'true', '[64, 32]', 'null')."""
    try:
        return yaml_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def split_override(item: str) -> tuple[str, str, bool]:
    """'+a.b=3' -> ('a.b', '3', True)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected KEY.PATH=VALUE")
    key, text = item.split("=", 1)
    add = key.startswith("+")
    key = key[1:] if add else key
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}': expected KEY.PATH=VALUE")
    return key, text, add


def set_by_path(config: dict, key: str, value: Any, add: bool = False, source: str = "") -> None:
    """Set config[k1][k2]... = value; a missing key is an error unless `add`."""
    parts = key.split(".")
    node: Any = config
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i + 1])
        if isinstance(node, list) and part.lstrip("-").isdigit() and not add:
            idx = int(part)
            if not -len(node) <= idx < len(node):
                raise ConfigError(f"{source}{where}: index out of range (list of {len(node)})")
            if last:
                node[idx] = value
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{source}{where}: cannot set a key inside a {type(node).__name__}")
        if part not in node:
            if not add:
                hint = did_you_mean(part, node)
                raise ConfigError(
                    f"{source}{where}: no such key{hint} (write +{key}=... to add a new key)")
            node[part] = value if last else {}
        elif last:
            node[part] = value
        if not last:
            if node[part] is None and add:
                node[part] = {}
            node = node[part]


def command_overrides(args: Any) -> list[str]:
    """The command line's KEY.PATH=VALUE overrides, with --lr and --bs spelled out as such."""
    overrides = list(getattr(args, "overrides", None) or [])
    if getattr(args, "lr", None) is not None:
        overrides.append(f"optimizer.args.lr={args.lr!r}")
    if getattr(args, "bs", None) is not None:
        overrides.append(f"data_loader.args.batch_size={args.bs}")
    return overrides


def with_defaults(config: dict) -> dict:
    """A copy of `config` with the optional keys of the schema filled in, so that
    overrides may set them without '+' (trainer.keep_last=2, seed=1)."""
    config = copy.deepcopy(config)
    for key, default in (("seed", 0), ("n_gpu", 0), ("metrics", []), ("lr_scheduler", None)):
        config.setdefault(key, default)
    if isinstance(config.get("trainer"), dict):
        for key, default in TRAINER_DEFAULTS.items():
            if default is not None:
                config["trainer"].setdefault(key, default)
    return config


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """A copy of `config` (schema defaults filled in) with every KEY.PATH=VALUE applied."""
    config = with_defaults(config)
    for item in overrides:
        key, text, add = split_override(item)
        set_by_path(config, key, parse_value(text), add, source=f"override '{item}': ")
    return config


# ---------------------------------------------------------------- validation

def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _expect(cond: bool, key: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _check_value_against(param: inspect.Parameter, value: Any, key: str) -> None:
    """Type check of one argument, from its annotation or its default."""
    ann, default = param.annotation, param.default
    if ann in (int, "int"):
        _expect(_is_int(value), key, "an integer", value)
    elif ann in (float, "float"):
        _expect(_is_number(value), key, "a number", value)
    elif ann in (bool, "bool"):
        _expect(isinstance(value, bool), key, "true or false", value)
    elif ann in (str, "str"):
        _expect(isinstance(value, str), key, "a string", value)
    elif default is inspect.Parameter.empty or default is None:
        return
    elif isinstance(default, bool):
        _expect(isinstance(value, bool), key, "true or false", value)
    elif isinstance(default, int | float):
        _expect(_is_number(value), key, "a number", value)
    elif isinstance(default, str):
        _expect(isinstance(value, str), key, "a string", value)


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


def _section(config: dict, key: str, types: str = "type") -> tuple[str, dict]:
    """The (type, args) of a {type, args} section."""
    sec = config.get(key)
    if not isinstance(sec, dict):
        raise ConfigError(f"{key}: expected a mapping with '{types}' and 'args', got {sec!r}")
    check_keys(sec, ("type", "args"), key)
    if not isinstance(sec.get("type"), str):
        raise ConfigError(f"{key}.type: expected a name, got {sec.get('type')!r}")
    args = sec.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{key}.args: expected a mapping, got {args!r}")
    return sec["type"], args


def torch_class(module: Any, name: str, base: type | tuple, key: str, what: str) -> type:
    """A class of a torch module (torch.optim, torch.optim.lr_scheduler) by name."""
    choices = [n for n, c in vars(module).items()
               if isinstance(c, type) and issubclass(c, base) and c not in
               (base if isinstance(base, tuple) else (base,)) and not n.startswith("_")]
    if name not in choices:
        raise ConfigError(f"{key}: {unknown_name(what, name, choices)}")
    return getattr(module, name)


def scheduler_bases() -> tuple:
    import torch.optim.lr_scheduler as sched

    return (sched.LRScheduler, sched.ReduceLROnPlateau)


def component_spec(spec: Any, key: str) -> tuple[str, dict]:
    """A loss or metric given as a name or as {type, args}."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "type" in spec:
        return _section({key: spec}, key)
    raise ConfigError(f"{key}: expected a name or {{type, args}}, got {spec!r}")


def metric_names(config: dict) -> list[str]:
    return [component_spec(m, f"metrics[{i}]")[0] for i, m in enumerate(config.get("metrics") or [])]


def _has_validation(config: dict) -> bool:
    from utils.registry import DATA_LOADERS

    dtype, args = _section(config, "data_loader")
    if "validation_split" in args:
        split = args["validation_split"]
    else:
        param = inspect.signature(DATA_LOADERS.get(dtype)).parameters.get("validation_split")
        split = param.default if param is not None and param.default is not param.empty else 0
    return _is_number(split) and split > 0


def parse_monitor(monitor: str) -> tuple[str, str | None]:
    """'min val_loss' -> ('min', 'val_loss'); 'off' -> ('off', None)."""
    if monitor == "off":
        return "off", None
    mode, _, metric = monitor.partition(" ")
    return mode, metric.strip()


def _validate_trainer(trainer: Any, config: dict) -> dict:
    if not isinstance(trainer, dict):
        raise ConfigError(f"trainer: expected a mapping, got {trainer!r}")
    check_keys(trainer, TRAINER_DEFAULTS, "trainer")
    resolved = {k: trainer.get(k, v) for k, v in TRAINER_DEFAULTS.items()}
    if "epochs" not in trainer:
        raise ConfigError("trainer.epochs: required key is missing")
    _expect(_is_int(resolved["epochs"]) and resolved["epochs"] >= 1, "trainer.epochs",
            "a positive integer", resolved["epochs"])
    _expect(_is_int(resolved["save_period"]) and resolved["save_period"] >= 1,
            "trainer.save_period", "a positive integer", resolved["save_period"])
    _expect(resolved["verbosity"] in (0, 1, 2) and not isinstance(resolved["verbosity"], bool),
            "trainer.verbosity", "0, 1 or 2", resolved["verbosity"])
    _expect(_is_int(resolved["early_stop"]) and resolved["early_stop"] >= 0,
            "trainer.early_stop", "an integer >= 0 (0 = off)", resolved["early_stop"])
    _expect(_is_int(resolved["keep_last"]) and resolved["keep_last"] >= 0,
            "trainer.keep_last", "an integer >= 0 (0 = keep all)", resolved["keep_last"])
    _expect(isinstance(resolved["tensorboard"], bool), "trainer.tensorboard", "true or false",
            resolved["tensorboard"])
    _expect(_is_int(resolved["histogram_period"]) and resolved["histogram_period"] >= 0,
            "trainer.histogram_period", "an integer >= 0 (0 = no histograms)",
            resolved["histogram_period"])
    _expect(isinstance(resolved["save_dir"], str) and resolved["save_dir"], "trainer.save_dir",
            "a folder path", resolved["save_dir"])
    for key in ("amp", "monitor"):
        if resolved[key] is False:  # YAML reads a bare `off` as false
            resolved[key] = "off"
    _expect(resolved["amp"] in AMP_MODES, "trainer.amp", "off, bf16 or fp16", resolved["amp"])
    _expect(_is_int(resolved["accumulate_steps"]) and resolved["accumulate_steps"] >= 1,
            "trainer.accumulate_steps", "a positive integer", resolved["accumulate_steps"])
    clip = resolved["clip_grad_norm"]
    _expect(clip is None or (_is_number(clip) and clip >= 0), "trainer.clip_grad_norm",
            "a number >= 0 (0 or null = off)", clip)
    monitor = resolved["monitor"]
    _expect(isinstance(monitor, str), "trainer.monitor", "'min <metric>', 'max <metric>' or 'off'",
            monitor)
    mode, metric = parse_monitor(monitor)
    if mode != "off":
        _expect(mode in ("min", "max") and bool(metric), "trainer.monitor",
                "'min <metric>', 'max <metric>' or 'off'", monitor)
        logged = ["loss", *metric_names(config)]
        if _has_validation(config):
            logged += [f"val_{m}" for m in logged]
        if metric not in logged:
            raise ConfigError(f"trainer.monitor: '{metric}' is not logged by this run"
                              f"{did_you_mean(metric, logged)} (logged: {', '.join(logged)})")
    return resolved


def validate_config(config: dict) -> tuple[dict, list[str]]:
    """Check every section; return the resolved config and a list of warnings."""
    import torch.optim

    from utils.registry import DATA_LOADERS, LOSSES, METRICS, MODELS

    warnings = []
    for key in REQUIRED:
        if key not in config:
            raise ConfigError(f"{key}: required section is missing")
    for key in config:
        if key not in TOP_LEVEL:
            warnings.append(f"unknown top-level key '{key}' ignored{did_you_mean(key, TOP_LEVEL)}")
    resolved = copy.deepcopy(config)
    name = config["name"]
    _expect(isinstance(name, str) and name.strip() != "" and "/" not in name and name not in
            (".", ".."), "name", "a non-empty name without '/'", name)
    resolved.setdefault("seed", 0)
    _expect(_is_int(resolved["seed"]) and resolved["seed"] >= 0, "seed", "an integer >= 0",
            resolved["seed"])
    resolved.setdefault("n_gpu", 0)
    _expect(_is_int(resolved["n_gpu"]) and resolved["n_gpu"] >= 0, "n_gpu", "an integer >= 0",
            resolved["n_gpu"])

    mtype, margs = _section(config, "arch")
    check_args(MODELS.get(mtype, "arch.type"), margs, "arch.args")

    dtype, dargs = _section(config, "data_loader")
    check_args(DATA_LOADERS.get(dtype, "data_loader.type"), dargs, "data_loader.args",
               injected=INJECTED_LOADER_ARGS)
    if "batch_size" in dargs:
        _expect(_is_int(dargs["batch_size"]) and dargs["batch_size"] >= 1,
                "data_loader.args.batch_size", "a positive integer", dargs["batch_size"])
    if "num_workers" in dargs:
        _expect(_is_int(dargs["num_workers"]) and dargs["num_workers"] >= 0,
                "data_loader.args.num_workers", "an integer >= 0", dargs["num_workers"])
    for split in ("validation_split", "test_split"):
        if split in dargs:
            v = dargs[split]
            _expect((_is_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v < 1.0),
                    f"data_loader.args.{split}", "a fraction in [0, 1) or a sample count", v)

    otype, oargs = _section(config, "optimizer")
    check_args(torch_class(torch.optim, otype, torch.optim.Optimizer, "optimizer.type",
                           "optimizer"), oargs, "optimizer.args", skip=1)

    if config.get("lr_scheduler") is not None:
        stype, sargs = _section(config, "lr_scheduler")
        check_args(torch_class(torch.optim.lr_scheduler, stype, scheduler_bases(),
                               "lr_scheduler.type", "lr_scheduler"),
                   sargs, "lr_scheduler.args", skip=1)
    else:
        resolved["lr_scheduler"] = None

    ltype, largs = component_spec(config["loss"], "loss")
    loss = LOSSES.get(ltype, "loss" if isinstance(config["loss"], str) else "loss.type")
    check_args(loss, largs, "loss.args", skip=0 if isinstance(loss, type) else 2)
    if "reduction" in largs and largs["reduction"] not in ("mean", "sum"):
        raise ConfigError(f"loss.args.reduction: expected 'mean' or 'sum', got {largs['reduction']!r}")

    metrics = config.get("metrics") or []
    if not isinstance(metrics, list):
        raise ConfigError(f"metrics: expected a list of metric names, got {metrics!r}")
    resolved["metrics"] = metrics
    seen = set()
    for i, spec in enumerate(metrics):
        mname, margs_ = component_spec(spec, f"metrics[{i}]")
        check_args(METRICS.get(mname, f"metrics[{i}]"), margs_, f"metrics[{i}].args", skip=2)
        if mname in seen:
            raise ConfigError(f"metrics[{i}]: '{mname}' is listed twice")
        seen.add(mname)

    resolved["trainer"] = _validate_trainer(config["trainer"], config)
    return resolved, warnings
