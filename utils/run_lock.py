"""One writer per run folder: an advisory lock on <run folder>/.lock, held for the life of
the process (the OS releases it when the process dies, so a stale lock is simply taken over).

The lock file holds the PID of its holder, so that a second process can say who it is.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from utils.errors import ConfigError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folder -> file descriptor of its lock, kept open until exit


def lock_run_folder(folder: Path) -> None:
    """Take the folder's lock (ConfigError naming the holder's PID when another process has
    it). Taking a lock this process already holds does nothing. OSError propagates."""
    key = Path(folder).resolve()
    if key in _held:
        return
    fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"{folder} is being written by process {holder} (one writer per run "
                          f"folder); wait for it to finish or stop it") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd


def unlock_run_folder(folder: Path) -> None:
    """Release a lock taken by lock_run_folder (no-op when not held)."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
