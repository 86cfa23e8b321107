"""Trials: each one's resolved and checked config; the full plan of a grid or random sweep.

Grid and random sweeps plan every trial up front, so a mistake in any
trial's config stops the sweep before anything runs. Optuna draws its trials
as they run: check_optuna_space() checks each choice and each end of a range.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from collections.abc import Iterable
from typing import Any

from sweep.definition import Param, Sweep, Trial, config_key, describe
from trainer.config.component_checks import has_validation
from trainer.config.parse_config import ConfigParser, validate_config
from utils.config_compose import resolve_interpolations
from utils.config_io import set_by_path
from utils.errors import ConfigError, did_you_mean
from utils.schema import expect, metric_names, parse_monitor


def logged_metrics(config: dict) -> list[str]:
    """The columns of a run's metrics.csv a sweep can rank by."""
    logged = ["loss", *metric_names(config)]
    if has_validation(config):
        logged += [f"val_{m}" for m in logged]
    return logged


def check_metric(metric: Any, config: dict, test: bool, where: str = "sweep.metric") -> str:
    """The metric a sweep ranks by, 'min NAME' or 'max NAME', checked against what
    runs of `config` log (test_* metrics only with --test)."""
    expected = "'min <metric>' or 'max <metric>'"
    expect(isinstance(metric, str), where, expected, metric)
    mode, name = parse_monitor(metric)
    if mode == "off":
        raise ConfigError(f"{where}: trainer.monitor is off, so the sweep needs a metric to rank "
                          "by: add metric: 'min val_loss' (or the like) to the sweep section, "
                          "or +sweep.metric='min val_loss' on the command line")
    expect(mode in ("min", "max") and bool(name), where, expected, metric)
    choices = logged_metrics(config)
    tests = ["test_loss", *[f"test_{m}" for m in metric_names(config)]]
    if name in tests and not test:
        raise ConfigError(f"{where}: '{name}' is measured only with --test")
    if name not in choices + tests:
        raise ConfigError(f"{where}: '{name}' is not logged by the trials"
                          f"{did_you_mean(name, choices + tests)} (logged: {', '.join(choices)}; "
                          f"with --test also {', '.join(tests)})")
    return f"{mode} {name}"


def trial_config(raw: dict, params: list[Param], values: dict[str, Any]) -> dict:
    """The resolved config of one trial (checked; no sweep section)."""
    config = copy.deepcopy(raw)
    config.pop("sweep", None)
    for p in params:
        set_by_path(config, p.key, copy.deepcopy(values[p.label]), p.add)
    resolved, _ = validate_config(resolve_interpolations(config))
    return resolved


def make_trial(number: int, raw: dict, sweep: Sweep, values: dict[str, Any], test: bool) -> Trial:
    """Trial `number` with `values`; a ConfigError names the trial and its values."""
    try:
        config = trial_config(raw, sweep.params, values)
        check_metric(sweep.metric, config, test, where="metric")
    except ConfigError as e:
        raise ConfigError(f"sweep trial {number} ({describe(values)}): {e}") from None
    return Trial(number, values, config, config_key(config))


def plan_trials(sweep: Sweep, raw: dict, test: bool = True) -> list[Trial]:
    """Every trial of a grid or random sweep, each config validated (kept as sweep.plan)."""
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
    check_fold_splits(t.config for t in plan)
    return plan


def check_optuna_space(sweep: Sweep, raw: dict) -> None:
    """Optuna trials are drawn as they run: check each choice and each low/high end."""
    configs = []
    for p in sweep.params:
        corners = p.values if p.values is not None else [p.low, p.high]
        for value in corners:
            values = {q.label: (q.values[0] if q.values is not None else q.low)
                      for q in sweep.params}
            values[p.label] = value
            configs.append(make_trial(0, raw, sweep, values, test=True).config)
    check_fold_splits(configs)


def check_fold_splits(configs: Iterable[dict]) -> None:
    """The folds of k-fold trials split the loaded data: build each distinct data loader the
    trials use once (as fold 0), so a fold count its training part cannot split (more folds
    than samples, or than the smallest class has) stops the sweep before anything runs."""
    seen = set()
    for config in configs:
        args = config["data_loader"].get("args") or {}
        if args.get("folds") is None:
            continue
        probe = copy.deepcopy(config)
        probe["data_loader"]["args"]["fold"] = 0
        key = json.dumps([probe["data_loader"], probe["seed"]], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            ConfigParser(probe, "sweep").build_data_loader(training=True)
