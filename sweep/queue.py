"""Optuna's storage as the sweep's trial queue, shared by every worker process.

Every grid point, random draw, fold or repeat is enqueued once as a WAITING
trial (study.enqueue_trial, under a file lock in the sweep folder, skipping
points already waiting or running); each worker takes the next one with
study.ask(), which hands a waiting trial to exactly one worker. A running
trial carries a heartbeat; when it stops for longer than the grace period (a
worker killed with -9, a lost machine), or the worker's process on this host
is gone, the trial is failed and Optuna's RetryHeartbeatStaleTrialCallback
enqueues a copy, which the next free worker takes and resumes from the
checkpoint in the original trial's folder (the `point` user attribute, or
the original trial number for Optuna's own samplers).

Storage: `sweep.storage` (an Optuna URL such as postgresql://user:pass@host/db,
mysql+pymysql://..., sqlite:///file.db), else Optuna's JournalStorage on the
file `study.journal` in the sweep folder (JournalFileBackend, whose lock works
on NFS; a torn last line is dropped with a warning, sweep/journal.py). RDB
storages use Optuna's own heartbeat; the journal file gets one here, as a
system attribute of the trial.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sweep.definition import Param, Sweep
from sweep.journal import held, journal_backend
from utils.errors import ConfigError, RunError

JOURNAL_NAME = "study.journal"
BEAT = "sweep:heartbeat"  # system attribute: time.time() of the last heartbeat (journal)
OWNER = "sweep:owner"  # system attribute: "host pid" of the worker running the trial


def storage_label(sweep: Sweep) -> str:
    """Where the queue lives, as the sweep prints it."""
    return sweep.storage or str(sweep.folder / JOURNAL_NAME)


def quiet_optuna(optuna: Any) -> None:
    """No warnings about the experimental heartbeat API, nor about using it with ask/tell
    (the workers beat themselves; see TrialQueue.heartbeat)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def retry_callback(optuna: Any) -> Any:
    """Optuna's callback that re-enqueues a trial failed for a stale heartbeat."""
    storages = optuna.storages
    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or \
        storages.RetryFailedTrialCallback
    return cls()


def journal_storage(optuna: Any, path: Path, interval: int, grace: int) -> Any:
    """A JournalStorage on `path` that keeps a heartbeat per running trial, so that
    optuna.storages.fail_stale_trials() and the retry callback work on it as on RDB."""
    from optuna.storages._heartbeat import BaseHeartbeat

    callback = retry_callback(optuna)
    running = optuna.trial.TrialState.RUNNING

    class HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, BEAT, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(running,)):
                beat = t.system_attrs.get(BEAT) or \
                    (t.datetime_start.timestamp() if t.datetime_start else now)
                if now - beat > grace:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int:
            return interval

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return callback

        def get_failed_trial_callback(self) -> Any:
            return callback

    return HeartbeatJournalStorage(journal_backend(optuna, path))


def rdb_storage(optuna: Any, url: str, interval: int, grace: int) -> Any:
    """RDBStorage with Optuna's heartbeat and retry callback (SQLite waits for its lock)."""
    kwargs: dict[str, Any] = {"heartbeat_interval": interval, "grace_period": grace}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_stale_trial_callback=retry_callback(optuna), **kwargs)
    except TypeError:  # an Optuna before heartbeat_stale_trial_callback
        return optuna.storages.RDBStorage(url, failed_trial_callback=retry_callback(optuna),
                                          **kwargs)


@contextmanager
def folder_lock(folder: Path, optuna: Any) -> Iterator[None]:
    """The sweep folder's queue lock (queue.lock): one worker at a time enqueues, asks or
    fails stale trials. Optuna's symlink lock, as its journal file uses, for NFS; one left
    by a worker killed while holding it is taken over after 30 s."""
    lock = optuna.storages.journal.JournalFileSymlinkLock(str(folder / "queue"), grace_period=30)
    with held(lock):
        yield


def wait_for_writer(run_dir: str | Path | None, timeout: float) -> None:
    """Wait (up to `timeout` s) until no process holds the run folder's lock: the train.py
    of a worker that died may still be saving its interrupt checkpoint there."""
    if not run_dir or not (Path(run_dir) / ".lock").is_file():
        return
    deadline = time.monotonic() + timeout
    try:  # never through a link planted in the run folder
        fd = os.open(Path(run_dir) / ".lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)
    finally:
        os.close(fd)  # releases it again


def encoded(value: Any) -> Any:
    """A parameter value as Optuna stores it: a number, text, bool or None as it is; a list
    or mapping as its JSON text."""
    return value if value is None or isinstance(value, bool | int | float | str) else \
        json.dumps(value)  # as sweep/optuna_search.py encodes them


def distribution(optuna: Any, param: Param) -> Any:
    """The Optuna distribution of a swept parameter: its choices, or its low/high range."""
    dists = optuna.distributions
    if param.values is not None:
        return dists.CategoricalDistribution(list(dict.fromkeys(map(encoded, param.values))))
    log = "log" in param.distribution
    if param.distribution.startswith("int"):
        return dists.IntDistribution(int(param.low), int(param.high), log=log)
    return dists.FloatDistribution(float(param.low), float(param.high), log=log)


class TrialQueue:
    """The study of one sweep as a queue of trials, shared by every worker."""

    def __init__(self, sweep: Sweep, optuna: Any, sampler: Any = None, pruner: Any = None):
        self.sweep, self.optuna = sweep, optuna
        quiet_optuna(optuna)
        self.state = optuna.trial.TrialState
        self.owner = f"{socket.gethostname()} {os.getpid()}"
        self.mine: set[int] = set()  # numbers of the trials this process runs
        self.lock = threading.Lock()  # this process's threads, around the folder lock
        self.interval, self.grace = sweep.heartbeat_interval, sweep.grace_period
        with self.locked():
            self.study = self._open(sampler or optuna.samplers.RandomSampler(), pruner)

    def _open(self, sampler: Any, pruner: Any) -> Any:
        sweep, optuna = self.sweep, self.optuna
        url = sweep.storage
        try:
            storage = rdb_storage(optuna, url, self.interval, self.grace) if url else \
                journal_storage(optuna, sweep.folder / JOURNAL_NAME, self.interval, self.grace)
            return optuna.create_study(
                study_name=sweep.study or f"{sweep.name}-{sweep.sweep_id}", storage=storage,
                sampler=sampler, pruner=pruner, load_if_exists=True,
                direction="minimize" if sweep.metric_mode == "min" else "maximize")
        except ImportError as e:
            cause = f" ({e.__cause__})" if e.__cause__ else ""
            raise ConfigError(f"sweep.storage: {url} needs a database driver: {e}{cause}; "
                              "for PostgreSQL with psycopg2 write postgresql+psycopg2://... "
                              "(pip install -e '.[postgres]')") from None
        except Exception as e:  # sqlalchemy / optuna errors: cannot reach or use the storage
            message = str(e).splitlines()[0] if str(e) else ""
            raise RunError(f"sweep.storage: cannot open {storage_label(sweep)}: "
                           f"{type(e).__name__}: {message}") from None

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock, folder_lock(self.sweep.folder, self.optuna):
            yield

    def trials(self, *states: Any) -> list:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def fail_stale(self) -> None:
        """Fail the running trials whose heartbeat stopped (or whose worker on this host is
        gone) and let the retry callback enqueue them again. Call with the lock held."""
        self.optuna.storages.fail_stale_trials(self.study)
        host = socket.gethostname()
        storage = self.study._storage
        for t in self.trials(self.state.RUNNING):
            owner = str(t.system_attrs.get(OWNER, "")).split()
            if len(owner) == 2 and owner[0] == host and not _alive(int(owner[1])):
                with suppress(Exception):  # another worker failed it first
                    if storage.set_trial_state_values(t._trial_id, state=self.state.FAIL):
                        retry_callback(self.optuna)(self.study, storage.get_trial(t._trial_id))

    def enqueue(self, points: list[int], params: dict[int, dict] | None = None) -> int:
        """Enqueue the points that no trial is waiting for or running, each with its
        parameters (`params`: point -> label -> value); how many were new."""
        with self.locked():
            self.fail_stale()
            queued = {t.user_attrs.get("point")
                      for t in self.trials(self.state.WAITING, self.state.RUNNING)}
            new = [n for n in points if n not in queued]
            for n in new:
                values = (params or {}).get(n, {})
                self.study.enqueue_trial({k: encoded(v) for k, v in values.items()},
                                         user_attrs={"point": n})
            return len(new)

    def record_params(self, trial: Any, values: dict[str, Any]) -> None:
        """Store the planned trial's parameters on the asked trial with their distributions,
        as a sampler's suggest_* would (study.best_params, trials_dataframe())."""
        storage, have = self.study._storage, self.frozen(trial).params
        for p in self.sweep.params:
            if p.label in values and p.label not in have:
                dist = distribution(self.optuna, p)
                storage.set_trial_param(trial._trial_id, p.label,
                                        dist.to_internal_repr(encoded(values[p.label])), dist)

    def take(self, may_sample: bool = False) -> Any | None:
        """The next waiting trial for this worker (a new sampled one when `may_sample` and
        none waits), or None."""
        with self.locked():
            self.fail_stale()
            if not self.trials(self.state.WAITING) and not may_sample:
                return None
            trial = self.study.ask()
            storage = self.study._storage
            storage.set_trial_system_attr(trial._trial_id, OWNER, self.owner)
            storage.record_heartbeat(trial._trial_id)  # a retried copy carries an old one
            self.mine.add(trial.number)
            return trial

    def busy_elsewhere(self) -> bool:
        """Whether other workers still run trials (which may yet be retried here)."""
        return any(t.number not in self.mine for t in self.trials(self.state.RUNNING))

    def idle_wait(self) -> None:
        time.sleep(min(self.interval, 5))

    def frozen(self, trial: Any) -> Any:
        return self.study._storage.get_trial(trial._trial_id)

    def folder_number(self, trial: Any) -> int:
        """The trial's folder number: its grid point, else the trial it retries, else its own."""
        frozen = self.frozen(trial)
        point = frozen.user_attrs.get("point")
        if point is not None:
            return int(point)
        return int(frozen.system_attrs.get("failed_trial", trial.number))

    @contextmanager
    def heartbeat(self, trial: Any) -> Iterator[None]:
        """A thread that records the trial's heartbeat every heartbeat_interval seconds."""
        storage, stop = self.study._storage, threading.Event()

        def beat() -> None:
            while True:
                with suppress(Exception):  # a trial failed as stale: nothing to keep alive
                    storage.record_heartbeat(trial._trial_id)
                if stop.wait(self.interval):
                    return

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def tell(self, trial: Any, value: float | None = None, state: Any = None,
             attrs: dict | None = None) -> None:
        """End the trial (a trial another worker already failed as stale stays failed)."""
        with suppress(self.optuna.exceptions.UpdateFinishedTrialError):
            for key, v in (attrs or {}).items():
                trial.set_user_attr(key, v)
            if value is not None and state is None:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state or self.state.FAIL)

    def requeue(self, trial: Any) -> None:
        """Give a trial this worker could not run (the sweep stopped) back to the queue."""
        with self.locked():
            self.tell(trial, attrs={"status": "interrupted"})
            retry_callback(self.optuna)(self.study, self.frozen(trial))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
