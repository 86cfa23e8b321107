"""Writing files so that a reader sees the old file or the whole new one, never a part.

Every file the project writes in a run, sweep or export folder goes through here: a
temporary file in the same folder, renamed over the target, so a link planted at the
target's name is replaced, never followed. Logs that grow line by line (info.log, a trial's
log) are opened by open_append(), which replaces such a link first.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, TextIO

from utils.errors import RunError

TMP_SUFFIX = ".tmp"  # temporary files: .<name>.<pid>-<random>.tmp, the writer's PID inside
_TMP_NAME = re.compile(r"\..+\.(\d+)-[^.]+\.tmp")


def write_atomic(data: bytes | memoryview | str, path: Path, durable: bool = True) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path` (a link at
    `path` is replaced, not followed). `durable` False skips the fsyncs: for a file rewritten
    every epoch that a resume writes again anyway (metrics.csv).

    OSError propagates (callers decide what a failure means); the temporary
    file is removed whatever happens.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    _replace_with(lambda f: f.write(data), Path(path), durable)


def copy_atomic(source: Path, path: Path) -> None:
    """A copy of the file `source` written as write_atomic() writes (OSError propagates)."""
    with open(source, "rb") as src:
        _replace_with(lambda f: shutil.copyfileobj(src, f, 1 << 20), Path(path), True)


def _replace_with(write, path: Path, durable: bool) -> None:
    """write(f) into a fresh temporary file beside `path`, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TMP_SUFFIX,
                               dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp makes 0600; files follow the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


_APPEND_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                 | os.O_CLOEXEC)


def open_append(path: Path) -> TextIO:
    """`path` opened to append text to (a log), never through something planted there: a
    symbolic link, a second name of another file (a hard link) or anything but a regular
    file is first replaced by a fresh empty file. OSError propagates."""
    path = Path(path)
    for _ in range(3):  # a link planted again between the replacement and the open: retry
        try:
            fd = os.open(path, _APPEND_FLAGS, 0o666)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENXIO):  # a link; a FIFO nobody reads
                raise
            write_atomic(b"", path)
            continue
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            os.set_blocking(fd, True)
            return os.fdopen(fd, "a", encoding="utf-8")
        os.close(fd)
        write_atomic(b"", path)
    raise OSError(errno.ELOOP, "replaced by a link again and again", str(path))


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


def write_output(data: str | bytes, path: Path, durable: bool = True) -> None:
    """An output file, atomically; parent folders are created. A failure to write is a
    RunError naming the file (docs/errors.md), and leaves nothing new behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(data, path, durable)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror or e}") from None


def write_figure(fig: Any, path: Path, **savefig_kwargs: Any) -> None:
    """A matplotlib figure saved as write_output() writes (savefig itself would open `path`
    and follow a link planted there)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, **savefig_kwargs)
    write_output(buffer.getvalue(), path)


def write_json(obj: Any, path: Path) -> None:
    """`obj` as indented JSON, written as write_output() writes."""
    write_output(json.dumps(obj, indent=2) + "\n", path)


def read_json(path: Path) -> Any:
    """The JSON content of `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
