"""What a sweep is, as data: its swept parameters, its trials, and the Sweep itself.

sweep/spec.py reads and checks a Sweep from the command line and the config's
sweep: section; everything else in sweep/ works from the Sweep it returns.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.errors import ConfigError
from utils.options import SWEEP
from utils.schema import parse_monitor

OWN_METHODS = ("grid", "random")
OPTUNA_SAMPLERS = {"tpe": "TPESampler", "cmaes": "CmaEsSampler", "qmc": "QMCSampler",
                   "gp": "GPSampler", "nsga2": "NSGAIISampler"}
OPTUNA_ONLY = ("pruner", "study")
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
        """The parameter as written in a sweep section (the choices, or the distribution)."""
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
    """One planned trial of a grid or random sweep."""

    number: int
    params: dict[str, Any]  # label -> value
    config: dict = field(default_factory=dict)  # resolved, no sweep section
    key: str = ""  # hash of the resolved config: how reruns find finished trials


@dataclass
class Sweep:
    """The sweep definition, checked in full by sweep/spec.py before any folder is made."""

    name: str
    method: str
    params: list[Param]
    metric: str  # 'min val_loss'
    base: dict  # resolved config without the sweep section
    source: str
    trials: int | None = None
    seed: int = 0
    storage: str | None = None
    pruner: str = SWEEP["pruner"].default
    study: str | None = None
    heartbeat_interval: int = SWEEP["heartbeat_interval"].default  # seconds between beats
    grace_period: int = SWEEP["grace_period"].default  # silent seconds: failed and retried
    sweep_id: str = ""
    raw: dict = field(default_factory=dict)  # the config as given, overrides applied
    plan: list[Trial] = field(default_factory=list)  # grid and random: every trial up front
    trust_config: bool = False  # --trust-config: passed to the trials' resume and test.py

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
                "study": self.study, "heartbeat_interval": self.heartbeat_interval,
                "grace_period": self.grace_period, "source": self.source, "command": command,
                "config": self.base}


def describe(params: dict[str, Any]) -> str:
    """'lr=0.1 arch.args.hidden=[64, 32]': a trial's values as the command line spells them."""
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in params.items()) or "(base config)"


def config_key(config: dict) -> str:
    """A short hash of a JSON-able value: equal configs, equal keys."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def has_optuna() -> bool:
    """Whether the sweep extra is installed (and imports)."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


def import_optuna(method: str) -> Any:
    """The optuna module, or a ConfigError naming the pip command when it is not installed."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"sweep.method: '{method}' runs on Optuna, which is not installed; "
                          f"install it with: {OPTUNA_PIP}") from None
    return optuna
