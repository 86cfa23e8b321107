"""Writing files so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from utils.errors import RunError

TMP_SUFFIX = ".tmp"  # temporary files: .<name>.<pid>-<random>.tmp, the writer's PID inside
_TMP_NAME = re.compile(r"\..+\.(\d+)-[^.]+\.tmp")


def write_atomic(data: bytes | memoryview | str, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path`.

    OSError propagates (callers decide what a failure means); the temporary
    file is removed whatever happens.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TMP_SUFFIX,
                               dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp makes 0600; files follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files in `folder` left by writers that died mid-write (their PID
    is no longer running, or is this process's own). A living process's are never touched."""
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        m = _TMP_NAME.fullmatch(tmp.name)
        if m and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not a PID): leave its files alone
    return True


@functools.cache
def process_umask() -> int:
    """The process's umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform allows it)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_output(text: str, path: Path) -> None:
    """An output file, atomically; parent folders are created. A failure to write is a
    RunError naming the file (docs/errors.md)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(text, path)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror or e}") from None


def write_json(obj: Any, path: Path) -> None:
    """`obj` as indented JSON, written as write_output() writes."""
    write_output(json.dumps(obj, indent=2) + "\n", path)


def read_json(path: Path) -> Any:
    """The JSON content of `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
