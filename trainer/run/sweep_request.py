"""Whether a command asks for sweep/: train.py and test.py import it only then.

A plain run imports none of sweep/ (nor Optuna): tests/test_imports.py checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.config_io import load_config_file

FLAGS = ("multirun", "test")  # -m, --test
VALUES = ("folds", "repeat", "jobs")  # --folds K, --repeat N, --jobs J (0 too: an error there)


def sweep_asked(args: Any) -> bool:
    """True when train.py's command line is (or may be) a sweep: -m, --folds, --repeat, --jobs
    or --test (sweep/spec.py's load_sweep says which, or why not), a config with a sweep:
    section, or data_loader.args.folds without fold (every fold) when not resuming."""
    if any(getattr(args, flag, False) for flag in FLAGS) or \
            any(getattr(args, option, None) is not None for option in VALUES):
        return True
    if not getattr(args, "config", None):
        return False
    raw = load_config_file(args.config)
    if raw.get("sweep") is not None:
        return True
    loader = raw.get("data_loader")
    dargs = loader.get("args") if isinstance(loader, dict) else None
    return not getattr(args, "resume", None) and isinstance(dargs, dict) \
        and dargs.get("folds") is not None and dargs.get("fold") is None


def is_sweep_folder(path: Path) -> bool:
    """A sweep folder (saved/sweeps/<name>/<sweep_id>): it holds sweep.json."""
    return Path(path).is_dir() and (Path(path) / "sweep.json").is_file()
