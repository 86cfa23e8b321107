"""Stand-ins for sweep/ in a project written by new_project.py without it (docs/new_project.md).

new_project.py points train.py's and test.py's `from sweep.<module> import ...` here: plain
runs and evaluations work as ever; anything that needs a sweep (-m, --folds, --repeat,
--jobs, --test, a sweep: section, data_loader.args.folds) is a one-line error.
"""

from __future__ import annotations

from typing import Any

from utils.config_io import load_config_file
from utils.errors import ConfigError

NO_SWEEP = ("this project was written by new_project.py without sweep/: {what} needs it "
            "(write a new project with --with sweep, or copy sweep/ from the template)")


def load_sweep(args: Any) -> None:
    """None for an ordinary run; ConfigError for the command-line options of a sweep."""
    for option, value in (("-m", getattr(args, "multirun", False)),
                          ("--folds", getattr(args, "folds", None)),
                          ("--repeat", getattr(args, "repeat", None)),
                          ("--jobs", getattr(args, "jobs", None)),
                          ("--test", getattr(args, "test", False))):
        if value is not None and value is not False:  # --repeat 0 asks for a sweep too
            raise ConfigError(NO_SWEEP.format(what=option))
    if getattr(args, "config", None) and not getattr(args, "resume", None):
        raw = load_config_file(args.config)
        dargs = (raw.get("data_loader") or {}).get("args") or {}
        if raw.get("sweep") is not None:
            raise ConfigError(NO_SWEEP.format(what=f"{args.config}'s sweep: section"))
        if isinstance(dargs, dict) and dargs.get("folds") is not None \
                and dargs.get("fold") is None:
            raise ConfigError(NO_SWEEP.format(what="data_loader.args.folds without fold"))
    return None


def __getattr__(name: str):
    """Any other sweep function: a callable that says sweeps are not here."""
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError(NO_SWEEP.format(what=name))

    return unavailable
