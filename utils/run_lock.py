"""One writer per run folder: an advisory lock on <run folder>/.lock, held for the life of
the process (the OS releases it when the process dies, so a stale lock is simply taken over).

The lock file holds the PID of its holder, so that a second process can say who it is. It is
opened without following links: a `.lock` that is a link, a second name of another file, a
folder or anything but a regular file is refused with one line naming it (replacing it could
let two processes each lock a file of their own).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from utils.errors import ConfigError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folder -> file descriptor of its lock, kept open until exit
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def lock_run_folder(folder: Path) -> None:
    """Take the folder's lock (ConfigError naming the holder's PID when another process has
    it). Taking a lock this process already holds does nothing. OSError propagates."""
    key = Path(folder).resolve()
    if key in _held:
        return
    fd = _open_lock_file(Path(folder) / LOCK_NAME, key / LOCK_NAME)
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


def _open_lock_file(shown: Path, path: Path) -> int:
    """The lock file's descriptor; ConfigError naming it when it is not a plain file."""
    remove = "; remove it (nothing is written through a link planted in a run folder)"
    try:
        fd = os.open(path, _FLAGS, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError(f"{shown} is a symbolic link, not the run folder's lock file"
                              f"{remove}") from None
        if e.errno == errno.EISDIR:
            raise ConfigError(f"{shown} is a folder, not the run folder's lock file; "
                              f"remove it") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what = "another name of a file (a hard link)" if stat.S_ISREG(info.st_mode) \
            else "not a regular file"
        raise ConfigError(f"{shown} is {what}, not the run folder's lock file{remove}")
    return fd


def holds_lock(folder: Path) -> bool:
    """Whether this process holds the folder's lock."""
    return Path(folder).resolve() in _held


def unlock_run_folder(folder: Path) -> None:
    """Release a lock taken by lock_run_folder (no-op when not held)."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
