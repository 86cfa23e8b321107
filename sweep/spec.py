"""Sweeps: many ordinary training runs from one command, and one ranked table.

A sweep comes from `train.py -m KEY=a,b ...` (Hydra's multirun spelling) and/or
a `sweep:` section in the config file. Everything is checked here, before any
folder is created: the definition, the metric, and (for grid and random) the
resolved config of every trial (sweep/plan.py). sweep/runner.py runs the
trials as separate `train.py` processes; sweep/optuna_search.py drives Optuna.

    sweep:
      name: digits_lr              # default: the config's name
      method: grid                 # grid | random | tpe | cmaes | qmc | gp | nsga2 (Optuna)
      trials: 8                    # random and Optuna only
      seed: 0                      # random only (default: the config's seed)
      metric: max val_accuracy     # default: trainer.monitor
      parameters:
        optimizer.args.lr: [0.1, 0.01]
        arch.args.hidden: {distribution: int_uniform, low: 16, high: 128}
      storage: postgresql://u:p@host/db  # the trial queue (default: study.journal in the folder)
      heartbeat_interval: 10       # seconds between a running trial's heartbeats
      grace_period: 60             # seconds without one: the trial is failed and retried
      pruner: median               # Optuna only: median | hyperband | none
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sweep.definition import (
    DISTRIBUTIONS,
    OPTUNA_ONLY,
    OPTUNA_PIP,
    OPTUNA_SAMPLERS,
    OWN_METHODS,
    Param,
    Sweep,
    config_key,
    has_optuna,
    import_optuna,
)
from sweep.plan import check_metric, check_optuna_space, plan_trials
from sweep.replicates import replicate_params
from trainer.config.parse_config import validate_config
from utils.config_compose import resolve_interpolations
from utils.config_io import (
    apply_overrides,
    command_overrides,
    has_path,
    load_config_file,
    parse_override,
    split_choices,
)
from utils.errors import ConfigError, check_keys, did_you_mean
from utils.options import SWEEP, check_value, value_of
from utils.schema import expect, is_int, is_number

# ---------------------------------------------------------------- command line


def load_sweep(args: Any) -> Sweep | None:
    """The sweep the command line asks for, checked in full; None for an ordinary run."""
    multirun = bool(getattr(args, "multirun", False))
    replicates = getattr(args, "folds", None) is not None or \
        getattr(args, "repeat", None) is not None
    jobs, test = getattr(args, "jobs", None), bool(getattr(args, "test", False))
    raw = load_config_file(args.config) if getattr(args, "config", None) else None
    if raw is not None and not replicates and not getattr(args, "resume", None):
        dargs = (raw.get("data_loader") or {}).get("args") or {}
        replicates = isinstance(dargs, dict) and dargs.get("folds") is not None \
            and dargs.get("fold") is None  # k folds asked for, no single one: all of them
    multirun = multirun or replicates
    if not (multirun or (raw is not None and raw.get("sweep") is not None)):
        if jobs is not None or test:
            raise ConfigError("--jobs and --test apply to sweeps: add -m (with KEY=a,b,... "
                              "overrides) or use a config with a sweep: section")
        return None
    check_sweep_options(args, raw, jobs)
    source = str(args.config)
    try:
        fixed, cli_params = split_command_line(args, multirun, raw)
        raw = apply_overrides(raw, [item for item, _ in fixed], multirun, resolve=False)
        raw, extra = replicate_params(args, raw, cli_params)
        resolved = resolve_interpolations(raw)  # trials resolve theirs once their values are set
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    cli_params += extra
    raw.pop("sweep", None)
    section = resolved.pop("sweep", None)
    if section is None and not multirun:  # e.g. sweep=null on the command line
        if jobs is not None or test:
            raise ConfigError("--jobs and --test apply to sweeps; this config's sweep is null")
        return None
    try:
        sweep = checked_sweep(raw, resolved, section, source, cli_params,
                              {key for _, key in fixed}, test)
    except ConfigError as e:
        raise ConfigError(e if str(e).startswith(source) else f"{source}: {e}") from None
    sweep.sweep_id = sweep_id(sweep)
    sweep.trust_config = bool(getattr(args, "trust_config", False))
    return sweep


def check_sweep_options(args: Any, raw: dict | None, jobs: int | None) -> None:
    """What a sweep cannot be combined with: -r, no config file, --jobs below 1."""
    if getattr(args, "resume", None):
        raise ConfigError("a sweep (-m, --folds, --repeat or a sweep: section) starts new runs "
                          "and cannot be combined with -r; resume a sweep by running its "
                          "command again")
    if raw is None:
        raise ConfigError("-m needs a config file: python train.py -c CONFIG -m KEY=a,b ...")
    expect(jobs is None or jobs >= 1, "--jobs", "a positive integer", jobs)


def split_command_line(args: Any, multirun: bool,
                       raw: dict) -> tuple[list[tuple[str, str]], list[Param]]:
    """The overrides that fix a key, as (item, key), and the -m KEY=a,b lists that sweep one
    (+KEY=a,b adds a key the config lacks, ++KEY=a,b adds or overrides, as in Hydra)."""
    fixed, cli_params = [], []
    for item in command_overrides(args):
        ov = parse_override(item)
        choices = split_choices(ov.text) if ov.text is not None else []
        if not (multirun and len(choices) > 1):
            fixed.append((item, ov.key))
            continue
        if ov.key.split(".")[0] == "sweep" or ov.op == "~":
            raise ConfigError(f"override '{item}': "
                              + ("the sweep section itself cannot be swept; quote the value"
                                 if ov.op != "~" else "a deletion cannot be swept"))
        if ov.op == "+" and has_path(raw, ov.key):
            raise ConfigError(f"override '{item}': {ov.key}: already in the config, '+' only "
                              f"adds new keys; write {item[1:]} to sweep it")
        cli_params.append(Param(ov.key, ov.op != "=", values=[ov.parse(c) for c in choices]))
    return fixed, cli_params


def checked_sweep(raw: dict, resolved: dict, section: Any, source: str,
                  cli_params: list[Param], fixed_keys: set[str], test: bool) -> Sweep:
    """The Sweep with its base config and every trial (or Optuna's space) checked."""
    base, _ = validate_config(resolved)
    sweep = parse_section(section, base, source, cli_params, fixed_keys=fixed_keys, test=test)
    sweep.raw = raw
    if sweep.storage is not None and not has_optuna():
        raise ConfigError(f"sweep.storage: the shared trial queue runs on Optuna, which is not "
                          f"installed; install it with: {OPTUNA_PIP}")
    if sweep.uses_optuna:
        import_optuna(sweep.method)
        check_optuna_space(sweep, raw)
    else:
        plan_trials(sweep, raw, test)
    return sweep


def sweep_id(sweep: Sweep) -> str:
    """Same definition, same folder: running the command again resumes the sweep.

    The number of trials of random and Optuna sweeps is left out, so raising it
    extends the sweep; the metric of grid and random sweeps too (it only ranks).
    """
    what = {"method": sweep.method, "config": sweep.base,
            "parameters": [[p.label, asdict(p)] for p in sweep.params]}
    if sweep.method == "random":
        what["seed"] = sweep.seed
    if sweep.uses_optuna:
        what.update(metric=sweep.metric, pruner=sweep.pruner)
    return config_key(what)[:8]


# ---------------------------------------------------------------- the sweep section


def parse_section(section: Any, base: dict, source: str, cli_params: list[Param],
                  fixed_keys: set[str], test: bool) -> Sweep:
    """The Sweep of a config's sweep section merged with the command line's choices."""
    if section is None:
        section = {}
    expect(isinstance(section, dict), "sweep", "a mapping (method, parameters, ...)", section)
    check_keys(section, SWEEP, "sweep")
    method = parse_method(section)
    name = base["name"] if value_of(SWEEP, section, "name") is None else section["name"]
    expect(isinstance(name, str) and bool(name.strip()) and "/" not in name
           and name not in (".", ".."), "sweep.name", "a non-empty name without '/'", name)
    trials = parse_trials(section, method)
    seed = parse_seed(section, method, base["seed"])
    params = parse_params(section, method, cli_params, fixed_keys)
    metric = value_of(SWEEP, section, "metric")
    metric = check_metric(base["trainer"]["monitor"] if metric is None else metric, base, test)
    simple = {k: check_value(SWEEP[k], value_of(SWEEP, section, k), f"sweep.{k}")
              for k in ("storage", "heartbeat_interval", "grace_period", "pruner", "study")}
    storage, pruner, study = simple.pop("storage"), simple.pop("pruner"), simple.pop("study")
    beats = simple
    if beats["grace_period"] <= beats["heartbeat_interval"]:
        raise ConfigError(f"sweep.grace_period: must exceed heartbeat_interval "
                          f"({beats['heartbeat_interval']}), got {beats['grace_period']}")
    return Sweep(name=name, method=method, params=params, metric=metric, base=base,
                 source=source, trials=trials, seed=seed, storage=storage, pruner=pruner,
                 study=study, **beats)


def parse_method(section: dict) -> str:
    """sweep.method (default grid); the Optuna-only keys only with an Optuna method."""
    methods = (*OWN_METHODS, *OPTUNA_SAMPLERS)
    method = value_of(SWEEP, section, "method")
    if method not in methods:
        raise ConfigError(f"sweep.method: expected one of {', '.join(methods)}, got {method!r}"
                          f"{did_you_mean(str(method), methods)}")
    for k in OPTUNA_ONLY:
        if k in section and method not in OPTUNA_SAMPLERS:
            raise ConfigError(f"sweep.{k}: only for Optuna methods ({', '.join(OPTUNA_SAMPLERS)})"
                              f", not for method {method}")
    return method


def parse_trials(section: dict, method: str) -> int | None:
    trials = value_of(SWEEP, section, "trials")
    if method == "grid":
        if trials is not None:
            raise ConfigError("sweep.trials: a grid runs every combination; trials is for "
                              "method random or an Optuna method")
    elif not (is_int(trials) and trials >= 1):
        raise ConfigError(f"sweep.trials: method {method} needs a positive number of trials, "
                          f"got {trials!r}")
    return trials


def parse_seed(section: dict, method: str, default: Any) -> int:
    seed = value_of(SWEEP, section, "seed")
    seed = default if seed is None else seed
    if "seed" in section and method != "random":
        raise ConfigError("sweep.seed: only for method random (a grid needs none; Optuna's "
                          "samplers run unseeded so that workers sharing a study do not "
                          "propose the same points)")
    expect(is_int(seed) and seed >= 0, "sweep.seed", "an integer >= 0", seed)
    return seed


def parse_params(section: dict, method: str, cli_params: list[Param],
                 fixed_keys: set[str]) -> list[Param]:
    """The section's parameters, less the keys the command line fixes, plus its -m lists."""
    params_spec = value_of(SWEEP, section, "parameters") or {}
    expect(isinstance(params_spec, dict), "sweep.parameters",
           "a mapping of key paths to values", params_spec)
    params = {p.key: p for p in (parse_param(k, v) for k, v in params_spec.items())}
    for key in fixed_keys:  # KEY=VALUE on the command line fixes a swept key
        params.pop(key.lstrip("+"), None)
    for p in cli_params:  # KEY=a,b on the command line replaces its definition
        params.pop(p.key, None)
        params[p.key] = p
    if method == "grid":
        for p in params.values():
            if p.values is None:
                raise ConfigError(f"sweep.parameters.{p.label}: method grid needs a list of "
                                  "values; distributions need method random or an Optuna method")
    elif not params:
        raise ConfigError(f"sweep.parameters: method {method} needs at least one parameter")
    return list(params.values())


def parse_param(label: Any, spec: Any) -> Param:
    """One entry of sweep.parameters: a list of values, or {distribution, low, high}."""
    where = f"sweep.parameters.{label}"
    if not isinstance(label, str) or not label.lstrip("+") or \
            any(not part for part in label.lstrip("+").split(".")):
        raise ConfigError(f"{where}: expected a dotted key path such as optimizer.args.lr")
    add, key = label.startswith("+"), label.lstrip("+")
    if key.split(".")[0] == "sweep":
        raise ConfigError(f"{where}: the sweep section itself cannot be swept")
    if isinstance(spec, dict) and set(spec) == {"values"}:
        spec = spec["values"]
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: expected at least one value, got []")
        return Param(key, add, values=list(spec))
    expect(isinstance(spec, dict) and "distribution" in spec, where,
           "a list of values or {distribution, low, high}", spec)
    check_keys(spec, ("distribution", "low", "high"), where)
    dist, low, high = spec["distribution"], spec.get("low"), spec.get("high")
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.distribution: expected one of {', '.join(DISTRIBUTIONS)}, "
                          f"got {dist!r}{did_you_mean(str(dist), DISTRIBUTIONS)}")
    number, kind = (is_int, "an integer") if dist.startswith("int") else (is_number, "a number")
    for end, value in (("low", low), ("high", high)):
        expect(number(value), f"{where}.{end}", kind, value)
    if not low < high:
        raise ConfigError(f"{where}: expected low < high, got low={low!r}, high={high!r}")
    if "log" in dist and low <= 0:
        raise ConfigError(f"{where}.low: {dist} needs low > 0, got {low!r}")
    return Param(key, add, distribution=dist, low=low, high=high)
