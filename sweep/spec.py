"""Sweeps: many ordinary training runs from one command, and one ranked table.

A sweep comes from `train.py -m KEY=a,b ...` (Hydra's multirun spelling) and/or
a `sweep:` section in the config file. Everything is checked here, before any
folder is created: the definition, the metric, and (for grid and random) the
resolved config of every trial. utils/sweep_run.py runs the trials as
separate `train.py` processes; utils/sweep_optuna.py drives Optuna methods.

    sweep:
      name: digits_lr              # default: the config's name
      method: grid                 # grid | random | tpe | cmaes | qmc | gp | nsga2 (Optuna)
      trials: 8                    # random and Optuna only
      seed: 0                      # random only (default: the config's seed)
      metric: max val_accuracy     # default: trainer.monitor
      parameters:
        optimizer.args.lr: [0.1, 0.01]
        arch.args.hidden: {distribution: int_uniform, low: 16, high: 128}
      storage: sqlite:///study.db  # Optuna only (default: study.db in the sweep folder)
      pruner: median               # Optuna only: median | hyperband | none
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.parse_config import has_validation, validate_config
from utils.config_io import (
    apply_overrides,
    command_overrides,
    load_config_file,
    parse_value,
    set_by_path,
    split_override,
)
from utils.errors import ConfigError, check_keys, did_you_mean
from utils.schema import metric_names, parse_monitor

SWEEP_KEYS = ("name", "method", "trials", "seed", "metric", "parameters", "storage", "pruner",
              "study")
OWN_METHODS = ("grid", "random")
OPTUNA_SAMPLERS = {"tpe": "TPESampler", "cmaes": "CmaEsSampler", "qmc": "QMCSampler",
                   "gp": "GPSampler", "nsga2": "NSGAIISampler"}
OPTUNA_ONLY = ("storage", "pruner", "study")
PRUNERS = ("median", "hyperband", "none")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "int_log_uniform")
OPTUNA_PIP = "pip install optuna  (or: pip install -e '.[sweep]')"


@dataclass
class Param:
    """One swept key: a list of choices, or a distribution with low/high."""

    key: str
    add: bool = False  # '+key': the key may be new to the config
    values: list | None = None
    distribution: str | None = None
    low: float | None = None
    high: float | None = None

    @property
    def label(self) -> str:
        return ("+" if self.add else "") + self.key

    def spec(self) -> Any:
        if self.values is not None:
            return self.values
        return {"distribution": self.distribution, "low": self.low, "high": self.high}

    def sample(self, rng: random.Random) -> Any:
        if self.values is not None:
            return self.values[rng.randrange(len(self.values))]
        low, high = self.low, self.high
        if self.distribution == "uniform":
            return rng.uniform(low, high)
        if self.distribution == "int_uniform":
            return rng.randint(low, high)
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        if self.distribution == "int_log_uniform":
            return min(high, max(low, round(value)))
        return value


@dataclass
class Trial:
    number: int
    params: dict[str, Any]  # label -> value
    config: dict = field(default_factory=dict)  # resolved, no sweep section
    key: str = ""  # hash of the resolved config: how reruns find finished trials


@dataclass
class Sweep:
    name: str
    method: str
    params: list[Param]
    metric: str  # 'min val_loss'
    base: dict  # resolved config without the sweep section
    source: str
    trials: int | None = None
    seed: int = 0
    storage: str | None = None
    pruner: str = "median"
    study: str | None = None
    sweep_id: str = ""
    raw: dict = field(default_factory=dict)  # the config as given, overrides applied
    plan: list[Trial] = field(default_factory=list)  # grid and random: every trial up front

    @property
    def uses_optuna(self) -> bool:
        return self.method in OPTUNA_SAMPLERS

    @property
    def folder(self) -> Path:
        return Path(self.base["trainer"]["save_dir"]) / "sweeps" / self.name / self.sweep_id

    @property
    def metric_mode(self) -> str:
        return parse_monitor(self.metric)[0]

    @property
    def metric_name(self) -> str:
        return parse_monitor(self.metric)[1]

    def definition(self, command: list[str]) -> dict:
        """The resolved definition saved as sweep.json."""
        return {"name": self.name, "sweep_id": self.sweep_id, "method": self.method,
                "metric": self.metric, "trials": self.trials,
                "seed": self.seed if self.method == "random" else None,
                "parameters": {p.label: p.spec() for p in self.params},
                "storage": self.storage, "pruner": self.pruner if self.uses_optuna else None,
                "study": self.study, "source": self.source, "command": command,
                "config": self.base}


# ---------------------------------------------------------------- command line

def split_choices(text: str) -> list[str]:
    """'0.1,0.01' -> ['0.1', '0.01']; commas inside brackets or quotes do not split."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def load_sweep(args: Any) -> Sweep | None:
    """The sweep the command line asks for, checked in full; None for an ordinary run."""
    multirun = bool(getattr(args, "multirun", False))
    jobs, test = getattr(args, "jobs", None), bool(getattr(args, "test", False))
    raw = load_config_file(args.config) if getattr(args, "config", None) else None
    has_section = raw is not None and raw.get("sweep") is not None
    if not (multirun or has_section):
        if jobs is not None or test:
            raise ConfigError("--jobs and --test apply to sweeps: add -m (with KEY=a,b,... "
                              "overrides) or use a config with a sweep: section")
        return None
    if getattr(args, "resume", None):
        raise ConfigError("a sweep (-m or a sweep: section) starts new runs and cannot be "
                          "combined with -r; resume a sweep by running its command again")
    if raw is None:
        raise ConfigError("-m needs a config file: python train.py -c CONFIG -m KEY=a,b ...")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs: expected a positive integer, got {jobs}")

    source = str(args.config)
    fixed, cli_params = [], []
    for item in command_overrides(args):
        key, text, add = split_override(item)
        choices = split_choices(text)
        if multirun and len(choices) > 1 and not key.startswith("sweep"):
            cli_params.append(Param(key, add, values=[parse_value(c) for c in choices]))
        else:
            fixed.append((item, key))
    try:
        raw = apply_overrides(raw, [item for item, _ in fixed])
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    section = raw.pop("sweep", None)
    if section is None and not multirun:  # e.g. sweep=null on the command line
        if jobs is not None or test:
            raise ConfigError("--jobs and --test apply to sweeps; this config's sweep is null")
        return None
    try:
        base, _ = validate_config(raw)
        sweep = parse_section(section, base, source, cli_params,
                              fixed_keys={key for _, key in fixed}, test=test)
        sweep.raw = raw
        if sweep.uses_optuna:
            import_optuna(sweep.method)
            check_optuna_space(sweep, raw)
        else:
            plan_trials(sweep, raw, test)
    except ConfigError as e:
        raise ConfigError(e if str(e).startswith(source) else f"{source}: {e}") from None
    sweep.sweep_id = sweep_id(sweep)
    return sweep


# ---------------------------------------------------------------- the sweep section

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_param(label: Any, spec: Any) -> Param:
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
    if not isinstance(spec, dict) or "distribution" not in spec:
        raise ConfigError(f"{where}: expected a list of values or {{distribution, low, high}}, "
                          f"got {spec!r}")
    check_keys(spec, ("distribution", "low", "high"), where)
    dist, low, high = spec["distribution"], spec.get("low"), spec.get("high")
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.distribution: expected one of {', '.join(DISTRIBUTIONS)}, "
                          f"got {dist!r}{did_you_mean(str(dist), DISTRIBUTIONS)}")
    number = _is_int if dist.startswith("int") else _is_number
    kind = "an integer" if dist.startswith("int") else "a number"
    for name, v in (("low", low), ("high", high)):
        if not number(v):
            raise ConfigError(f"{where}.{name}: expected {kind}, got {v!r}")
    if not low < high:
        raise ConfigError(f"{where}: expected low < high, got low={low!r}, high={high!r}")
    if "log" in dist and low <= 0:
        raise ConfigError(f"{where}.low: {dist} needs low > 0, got {low!r}")
    return Param(key, add, distribution=dist, low=low, high=high)


def logged_metrics(config: dict) -> list[str]:
    """The columns of a run's metrics.csv a sweep can rank by."""
    logged = ["loss", *metric_names(config)]
    if has_validation(config):
        logged += [f"val_{m}" for m in logged]
    return logged


def check_metric(metric: Any, config: dict, test: bool, where: str = "sweep.metric") -> str:
    expected = "'min <metric>' or 'max <metric>'"
    if not isinstance(metric, str):
        raise ConfigError(f"{where}: expected {expected}, got {metric!r}")
    mode, name = parse_monitor(metric)
    if mode == "off":
        raise ConfigError(f"{where}: trainer.monitor is off, so the sweep needs a metric to rank "
                          "by: add metric: 'min val_loss' (or the like) to the sweep section, "
                          "or +sweep.metric='min val_loss' on the command line")
    if mode not in ("min", "max") or not name:
        raise ConfigError(f"{where}: expected {expected}, got {metric!r}")
    choices = logged_metrics(config)
    tests = ["test_loss", *[f"test_{m}" for m in metric_names(config)]]
    if name in tests and not test:
        raise ConfigError(f"{where}: '{name}' is measured only with --test")
    if name not in choices + tests:
        raise ConfigError(f"{where}: '{name}' is not logged by the trials"
                          f"{did_you_mean(name, choices + tests)} (logged: {', '.join(choices)}; "
                          f"with --test also {', '.join(tests)})")
    return f"{mode} {name}"


def parse_section(section: Any, base: dict, source: str, cli_params: list[Param],
                  fixed_keys: set[str], test: bool) -> Sweep:
    """The Sweep of a config's sweep section merged with the command line's choices."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"sweep: expected a mapping (method, parameters, ...), got {section!r}")
    check_keys(section, SWEEP_KEYS, "sweep")
    methods = (*OWN_METHODS, *OPTUNA_SAMPLERS)
    method = section.get("method", "grid")
    if method not in methods:
        raise ConfigError(f"sweep.method: expected one of {', '.join(methods)}, got {method!r}"
                          f"{did_you_mean(str(method), methods)}")
    optuna = method in OPTUNA_SAMPLERS
    for k in OPTUNA_ONLY:
        if k in section and not optuna:
            raise ConfigError(f"sweep.{k}: only for Optuna methods ({', '.join(OPTUNA_SAMPLERS)})"
                              f", not for method {method}")

    name = section.get("name", base["name"])
    if not isinstance(name, str) or not name.strip() or "/" in name or name in (".", ".."):
        raise ConfigError(f"sweep.name: expected a non-empty name without '/', got {name!r}")

    trials = section.get("trials")
    if method == "grid":
        if trials is not None:
            raise ConfigError("sweep.trials: a grid runs every combination; trials is for "
                              "method random or an Optuna method")
    elif not (_is_int(trials) and trials >= 1):
        raise ConfigError(f"sweep.trials: method {method} needs a positive number of trials, "
                          f"got {trials!r}")

    seed = section.get("seed", base["seed"])
    if "seed" in section and method != "random":
        raise ConfigError("sweep.seed: only for method random (a grid needs none; Optuna's "
                          "samplers run unseeded so that workers sharing a study do not "
                          "propose the same points)")
    if not (_is_int(seed) and seed >= 0):
        raise ConfigError(f"sweep.seed: expected an integer >= 0, got {seed!r}")

    params_spec = section.get("parameters") or {}
    if not isinstance(params_spec, dict):
        raise ConfigError(f"sweep.parameters: expected a mapping of key paths to values, "
                          f"got {params_spec!r}")
    params = {p.key: p for p in (parse_param(k, v) for k, v in params_spec.items())}
    for key in fixed_keys:  # KEY=VALUE on the command line fixes a swept key
        params.pop(key.lstrip("+"), None)
    for p in cli_params:  # KEY=a,b on the command line replaces its definition
        params.pop(p.key, None)
        params[p.key] = p
    params = list(params.values())
    if method == "grid":
        for p in params:
            if p.values is None:
                raise ConfigError(f"sweep.parameters.{p.label}: method grid needs a list of "
                                  "values; distributions need method random or an Optuna method")
    elif not params:
        raise ConfigError(f"sweep.parameters: method {method} needs at least one parameter")

    metric = check_metric(section.get("metric", base["trainer"]["monitor"]), base, test)
    storage = section.get("storage")
    if storage is not None and not (isinstance(storage, str) and "://" in storage):
        raise ConfigError(f"sweep.storage: expected an Optuna storage URL such as "
                          f"sqlite:///study.db, got {storage!r}")
    pruner = section.get("pruner", "median")
    if pruner not in PRUNERS:
        raise ConfigError(f"sweep.pruner: expected one of {', '.join(PRUNERS)}, got {pruner!r}")
    study = section.get("study")
    if study is not None and not (isinstance(study, str) and study):
        raise ConfigError(f"sweep.study: expected a study name, got {study!r}")
    return Sweep(name=name, method=method, params=params, metric=metric, base=base,
                 source=source, trials=trials, seed=seed, storage=storage, pruner=pruner,
                 study=study)


def import_optuna(method: str):
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"sweep.method: '{method}' runs on Optuna, which is not installed; "
                          f"install it with: {OPTUNA_PIP}") from None
    return optuna


# ---------------------------------------------------------------- trials

def describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in params.items()) or "(base config)"


def config_key(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def trial_config(raw: dict, params: list[Param], values: dict[str, Any]) -> dict:
    """The resolved config of one trial (checked; no sweep section)."""
    config = copy.deepcopy(raw)
    config.pop("sweep", None)
    for p in params:
        set_by_path(config, p.key, copy.deepcopy(values[p.label]), p.add)
    resolved, _ = validate_config(config)
    return resolved


def make_trial(number: int, raw: dict, sweep: Sweep, values: dict[str, Any], test: bool) -> Trial:
    try:
        config = trial_config(raw, sweep.params, values)
        check_metric(sweep.metric, config, test, where="metric")
    except ConfigError as e:
        raise ConfigError(f"sweep trial {number} ({describe(values)}): {e}") from None
    return Trial(number, values, config, config_key(config))


def plan_trials(sweep: Sweep, raw: dict, test: bool = True) -> list[Trial]:
    """Every trial of a grid or random sweep, each config validated."""
    labels = [p.label for p in sweep.params]
    if sweep.method == "grid":
        points = (dict(zip(labels, combo))
                  for combo in itertools.product(*[p.values for p in sweep.params]))
    else:
        rng = random.Random(sweep.seed)
        points = ({p.label: p.sample(rng) for p in sweep.params}
                  for _ in range(100 * sweep.trials))
    plan, keys = [], set()
    for values in points:  # a config drawn (or listed) twice runs once
        trial = make_trial(len(plan), raw, sweep, values, test)
        if trial.key not in keys:
            keys.add(trial.key)
            plan.append(trial)
        if sweep.trials is not None and len(plan) == sweep.trials:
            break
    sweep.plan = plan
    return plan


def check_optuna_space(sweep: Sweep, raw: dict) -> None:
    """Optuna trials are drawn as they run: check each choice and each low/high end."""
    for p in sweep.params:
        corners = p.values if p.values is not None else [p.low, p.high]
        for value in corners:
            values = {q.label: (q.values[0] if q.values is not None else q.low)
                      for q in sweep.params}
            values[p.label] = value
            make_trial(0, raw, sweep, values, test=True)


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


# ---------------------------------------------------------------- entry point

def run_sweep(sweep: Sweep, jobs: int | None, test: bool, dry_run: bool = False,
              argv: list[str] | None = None) -> int:
    """Run (or, with --dry-run, list) the sweep; the process exit code.

    `argv` is train.py's command line (its arguments), recorded in the sweep folder.
    """
    jobs = jobs or 1
    if dry_run:
        print(f"sweep {sweep.name}/{sweep.sweep_id} ({sweep.method}, ranked by {sweep.metric}): "
              f"folder {sweep.folder}")
        for trial in sweep.plan:
            print(f"trial {trial.number}: {describe(trial.params)}")
        if sweep.uses_optuna:
            print(f"{sweep.trials} trials drawn by Optuna from: "
                  + ", ".join(f"{p.label}={json.dumps(p.spec())}" for p in sweep.params))
        return 0
    command = ["train.py", *(argv or [])]
    if sweep.uses_optuna:
        from sweep.optuna_search import run_optuna

        return run_optuna(sweep, jobs, test, command)
    from sweep.runner import run_plan

    return run_plan(sweep, jobs, test, command)
