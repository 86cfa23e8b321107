"""saved/models/<name>/latest: the pointer to an experiment's newest run (standard library only).

saved/models/<name>/latest is a small text file holding the name of that experiment's most
recently started run folder, rewritten atomically each time one is created (or reused by an
exact resume). It is a file, not a folder, so whatever lists run folders by is_dir() never
mistakes it for a run; code that lists a models folder otherwise skips LATEST_NAME.
What `-r` makes of a pointer or a run folder: utils/checkpoint_arg.py.
"""

from __future__ import annotations

from pathlib import Path

from utils.errors import ConfigError
from utils.files import write_atomic

LATEST_NAME = "latest"


def write_latest(run_dir: Path) -> None:
    """Point <run_dir's parent>/latest at `run_dir` (atomic; OSError propagates)."""
    write_atomic(f"{run_dir.name}\n", run_dir.parent / LATEST_NAME)


def is_pointer(path: Path) -> bool:
    return path.name == LATEST_NAME and path.is_file()


def read_latest(pointer: Path) -> Path:
    """The run folder a `latest` pointer names, as a path beside the pointer."""
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{pointer}: cannot read the pointer: {e}") from None
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{pointer}: not a run pointer (it should hold a run folder's name)")
    run_dir = pointer.parent / name
    if not run_dir.is_dir():
        raise ConfigError(f"{pointer} names the run folder {run_dir}, which does not exist "
                          f"(deleted?): give a run folder or a checkpoint file")
    return run_dir


def run_folders(models_dir: Path) -> list[Path]:
    """An experiment's run folders (saved/models/<name>/*), the one listing every caller uses
    (--resume auto, tests): folders only, neither the `latest` pointer nor hidden ones
    (.lock), oldest first (by modification time, then name)."""
    if not models_dir.is_dir():
        return []
    found = [p for p in models_dir.iterdir()
             if p.is_dir() and p.name != LATEST_NAME and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))
