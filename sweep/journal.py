"""The sweep's journal file (study.journal): Optuna's JournalFileBackend that never appends
onto a torn line.

A worker killed (or a disk filled) in the middle of an append leaves the
journal's last line torn: bytes after the last newline, or a last line that
is not JSON. Optuna's readers skip such a last line, but its next append
would be written onto it, and from then on the journal no longer parses.
Here the torn bytes are dropped, with a one-line warning naming the file,
when the sweep opens the journal and before every append, both under the
journal's own lock (the one every appender takes), so no reader ever saw the
bytes that go and nothing is ever appended onto them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

BLOCK = 1 << 16  # bytes read at a time, backwards from the end, to find the last line


def torn_tail_start(f: BinaryIO) -> int | None:
    """Where the torn tail of an open journal begins (the start of a last line that has no
    newline or is not JSON), or None when the file ends with a whole line (or is empty)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return None
    block = BLOCK
    while True:
        start = max(0, size - block)
        f.seek(start)
        tail = f.read(size - start)
        cut = tail.rfind(b"\n", 0, len(tail) - 1)  # the newline before the last line
        if cut >= 0 or start == 0:
            break
        block *= 2
    last = tail[cut + 1:]
    if last.endswith(b"\n"):
        try:
            json.loads(last)
            return None
        except ValueError:  # a line appended onto a torn one by an older version
            pass
    return start + cut + 1


def open_journal(path: Path, flags: int) -> BinaryIO:
    """The journal opened without following a link planted in its place (a sweep folder
    is not trusted to point writes elsewhere)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    return os.fdopen(fd, "rb+" if flags & os.O_RDWR else "ab")


def drop_torn_tail(path: Path) -> int:
    """Cut the journal's torn last line off (call with the journal's lock held); warn on
    stderr naming the file and the bytes dropped. Returns how many bytes were dropped."""
    with open_journal(path, os.O_RDWR) as f:
        cut = torn_tail_start(f)
        if cut is None:
            return 0
        dropped = f.seek(0, os.SEEK_END) - cut
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    print(f"warning: sweep journal {path}: dropped {dropped} bytes of a torn last line (a "
          f"worker stopped while writing it); the sweep goes on without it",
          file=sys.stderr, flush=True)
    return dropped


@contextmanager
def held(lock: Any) -> Iterator[None]:
    """An Optuna journal lock held for a `with` block (one taken over by another worker
    after its 30 s grace period is theirs to release)."""
    lock.acquire()
    try:
        yield
    finally:
        with suppress(RuntimeError):
            lock.release()


def journal_backend(optuna: Any, path: Path) -> Any:
    """Optuna's JournalFileBackend on `path` (its NFS-safe symlink lock), repaired now and
    before each append."""
    journal = optuna.storages.journal

    class RepairingJournalBackend(journal.JournalFileBackend):
        def __init__(self) -> None:
            self.lock = journal.JournalFileSymlinkLock(str(path))
            open_journal(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND).close()
            super().__init__(str(path), lock_obj=self.lock)
            with held(self.lock):
                drop_torn_tail(path)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            with held(self.lock):
                drop_torn_tail(path)
                with open_journal(path, os.O_WRONLY | os.O_APPEND) as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())

    return RepairingJournalBackend()
