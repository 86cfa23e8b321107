"""The Launcher: trial processes, each with its share of the CPU threads, and stop signals.

Trials run in their own session, so a Ctrl-C in the terminal reaches only
the sweep, which passes it on once: each trial saves a checkpoint and exits
(130). A second Ctrl-C is passed on too and aborts them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from utils.files import open_append
from utils.signals import exit_code, signal_name, stop_signals_handled

POLL_SECONDS = 0.3
_say_lock = threading.Lock()
PR_SET_PDEATHSIG = 1
try:  # loaded here: the child between fork and exec only calls it
    _libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _libc = None


def _stop_with_parent() -> None:
    """In a trial's process before exec: SIGTERM when the sweep worker dies (even by kill -9),
    so an orphan saves its interrupt checkpoint and exits instead of training on unrecorded
    while the queue hands the trial to another worker."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_trial(jobs: int) -> int:
    """Each of `jobs` trials gets its share of the cores (never more than OMP_NUM_THREADS)."""
    share = max(1, cpu_count() // jobs)
    user = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(user)) if user.isdigit() and int(user) >= 1 else share


def say(line: str) -> None:
    """One whole line on stdout (trials report from several threads)."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Launcher:
    """Starts trial processes, `jobs` at a time, and stops them on a signal."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.threads = threads_per_trial(jobs)
        self.stop_signal: int | None = None
        self.error: BaseException | None = None  # the first exception of a worker
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def run(self, cmd: list[str], log: Path, run_file: Path | None = None,
            poll: Callable[[subprocess.Popen], None] | None = None) -> int | None:
        """Run `cmd` to its end and return its exit code; None if a stop came before it started.

        Its output goes to `log`; with `run_file`, train.py writes the trial's run
        folders there (--run-file). `poll(proc)` is called every POLL_SECONDS while
        it runs and once after.
        """
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        if run_file is not None:
            cmd = [*cmd, "--run-file", str(run_file)]
        with open_append(log) as out:  # never through a link planted in the sweep folder
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            with self.lock:
                if self.stop_signal is not None:
                    return None
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, preexec_fn=_stop_with_parent)
                self.procs.add(proc)
            try:
                return self._wait(proc, poll)
            finally:
                with self.lock:
                    self.procs.discard(proc)

    @staticmethod
    def _wait(proc: subprocess.Popen, poll: Callable[[subprocess.Popen], None] | None) -> int:
        while True:
            try:
                rc = proc.wait(POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if poll is not None:
                    poll(proc)
        if poll is not None:
            poll(proc)
        return rc

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        """The stop signal handler: no new trials; the signal passed on to the running ones."""
        with self.lock:
            first = self.stop_signal is None
            self.stop_signal = self.stop_signal or signum
            procs = list(self.procs)
        for proc in procs:
            with suppress(ProcessLookupError):
                proc.send_signal(signum)
        if first:
            print(f"{signal_name(signum)} received: no new trials; waiting for "
                  f"{len(procs)} running trial(s) to save a checkpoint (Ctrl-C again aborts them)",
                  file=sys.stderr, flush=True)

    @property
    def stopping(self) -> bool:
        """A stop signal came, or a worker failed: start no new trial."""
        return self.stop_signal is not None or self.error is not None

    def run_workers(self, work: Callable[[Any], None], items: list) -> None:
        """`work(item)` for every item, `jobs` at a time, until done or stopped.

        An exception in `work` (such as a RunError: a record that cannot be written)
        stops handing out items; once the running trials end, it is raised here.
        """
        queue, qlock = deque(items), threading.Lock()

        def worker() -> None:
            while True:
                with qlock:
                    if not queue or self.stopping:
                        return
                    item = queue.popleft()
                try:
                    work(item)
                except BaseException as e:
                    with self.lock:
                        self.error = self.error or e
                    return

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(max(1, min(self.jobs, len(items))))]
        with stop_signals_handled(self.request_stop):
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
        if self.error is not None:
            raise self.error

    def final_exit_code(self, failed: int, total: int) -> int:
        """The sweep's exit code: the stop signal's, else 1 when a trial failed, else 0."""
        if self.stop_signal is not None:
            return exit_code(self.stop_signal)
        if failed:
            print(f"error: {failed} of {total} trials failed (their errors are in the summary)",
                  file=sys.stderr)
            return 1
        return 0
