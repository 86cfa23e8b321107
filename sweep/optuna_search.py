"""Optuna methods (tpe, cmaes, qmc, gp, nsga2): Optuna proposes, train.py processes run.

The study lives in `storage` (default: study.db in the sweep folder), so the
same command started on several machines (or twice on one) shares one study:
each worker asks for a trial, runs it as an ordinary run, and tells the
result, until the study holds `trials` finished or pruned trials. Pruning: the
worker reads the trial's metrics.csv as it grows, reports the metric per
epoch, and stops a trial Optuna prunes with SIGTERM (it saves a checkpoint).
The summary is read from the study, so it shows every worker's trials.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

from sweep.definition import OPTUNA_SAMPLERS, Param, Sweep, describe, import_optuna
from sweep.launcher import Launcher, say
from sweep.plan import make_trial
from sweep.records import (
    add_best,
    prepare_folder,
    read_metrics,
    save_record,
    trial_file,
    write_summary,
)
from sweep.trial_process import print_trial_line, train_and_test
from utils.errors import ConfigError, RunError
from utils.files import read_json

ATTRS = ("status", "error", "run_dir", "log_dir", "best", "best_epoch", "test", "seconds",
         "checkpoint", "log")


def _plain(values: list) -> bool:
    return all(v is None or isinstance(v, bool | int | float | str) for v in values)


def suggest(trial: Any, p: Param) -> Any:
    """The value of one parameter for an Optuna trial (lists and mappings travel as JSON)."""
    if p.values is not None:
        if _plain(p.values):
            return trial.suggest_categorical(p.label, p.values)
        return json.loads(trial.suggest_categorical(p.label, [json.dumps(v) for v in p.values]))
    log = "log" in p.distribution
    if p.distribution.startswith("int"):
        return trial.suggest_int(p.label, p.low, p.high, log=log)
    return trial.suggest_float(p.label, float(p.low), float(p.high), log=log)


def decode_params(params: dict, sweep: Sweep) -> dict:
    """A study trial's params with the JSON-encoded choices (lists, mappings) decoded."""
    encoded = {p.label for p in sweep.params if p.values is not None and not _plain(p.values)}
    return {k: json.loads(v) if k in encoded else v for k, v in params.items()}


def open_study(sweep: Sweep, optuna: Any) -> Any:
    """The sweep's study in its storage, created by whichever worker comes first."""
    url = sweep.storage or f"sqlite:///{(sweep.folder / 'study.db').resolve()}"
    try:
        sampler = getattr(optuna.samplers, OPTUNA_SAMPLERS[sweep.method])()
    except ImportError as e:
        raise ConfigError(f"sweep.method: '{sweep.method}' needs a package Optuna uses for it: "
                          f"{e}") from None
    except AttributeError:  # an Optuna older than the sweep extra's floor
        raise ConfigError(f"sweep.method: '{sweep.method}' needs optuna>=4.0 (installed: "
                          f"{optuna.__version__}): pip install -U optuna") from None
    pruner = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
              "none": optuna.pruners.NopPruner}[sweep.pruner]()
    error: Exception | None = None
    for attempt in range(5):  # workers starting together race to create a new database
        try:
            storage = url
            if url.startswith("sqlite"):  # several workers: wait for the file lock, do not fail
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs={"connect_args": {"timeout": 60}})
            return optuna.create_study(
                study_name=sweep.study or f"{sweep.name}-{sweep.sweep_id}", storage=storage,
                sampler=sampler, pruner=pruner, load_if_exists=True,
                direction="minimize" if sweep.metric_mode == "min" else "maximize")
        except ImportError as e:
            raise ConfigError(f"sweep.storage: {url} needs a database driver: {e}") from None
        except Exception as e:  # sqlalchemy / optuna errors: cannot reach or use the storage
            error = e
            time.sleep(0.5 + attempt)
    message = str(error).splitlines()[0] if str(error) else ""
    raise RunError(f"sweep.storage: cannot open {url}: {type(error).__name__}: {message}")


class Pruning:
    """Reports a running trial's metric per epoch to Optuna; stops it when Optuna prunes it."""

    def __init__(self, trial: Any, sweep: Sweep, run_file: Path):
        self.trial, self.sweep, self.run_file = trial, sweep, run_file
        self.enabled = not sweep.metric_name.startswith("test_")
        self.log_dir: str | None = None
        self.seen = 0
        self.pruned = False

    def __call__(self, proc: Any) -> None:
        if not self.enabled or self.pruned:
            return
        if self.log_dir is None:
            self.log_dir = (read_json(self.run_file) or {}).get("log_dir")
            if self.log_dir is None:
                return
        rows = read_metrics(self.log_dir)
        for row in rows[self.seen:]:
            value = row.get(self.sweep.metric_name)
            if value is None or not math.isfinite(value):
                continue
            self.trial.report(value, int(row["epoch"]))
            if proc.poll() is None and self.trial.should_prune():
                self.pruned = True
                proc.send_signal(signal.SIGTERM)
                break
        self.seen = len(rows)


class OptunaSweep:
    """This process's workers on the sweep's study: `jobs` trials at a time."""

    def __init__(self, sweep: Sweep, jobs: int, test: bool):
        self.optuna = import_optuna(sweep.method)
        self.optuna.logging.set_verbosity(self.optuna.logging.WARNING)
        self.sweep, self.test = sweep, test
        self.launcher = Launcher(min(jobs, sweep.trials))
        self.ask_lock = threading.Lock()
        self.failures = 0
        self.study: Any = None

    def active(self) -> list:
        """Trials that count towards `trials`: finished, pruned, or being run by some worker."""
        state = self.optuna.trial.TrialState
        return self.study.get_trials(deepcopy=False, states=(
            state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING))

    def ask(self) -> Any | None:
        """A new trial, or None when the study is full (checked again after asking, since
        another worker may have asked at the same moment)."""
        with self.ask_lock:
            if len(self.active()) >= self.sweep.trials or self.failures >= self.sweep.trials:
                return None
            trial = self.study.ask()
            ahead = [t for t in self.active() if t.number < trial.number]
            if len(ahead) >= self.sweep.trials:
                trial.set_user_attr("surplus", True)
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                return None
            return trial

    def work(self, _worker: int) -> None:
        """One worker: ask for a trial and run it, until the study is full or the sweep stops."""
        while not self.launcher.stopping:
            trial = self.ask()
            if trial is None:
                return
            self.run_trial(trial)

    def run_trial(self, trial: Any) -> None:
        """Run an asked trial, tell Optuna how it ended, record it."""
        sweep = self.sweep
        values = {p.label: suggest(trial, p) for p in sweep.params}
        say(f"trial {trial.number} started: {describe(values)}")
        pruning = Pruning(trial, sweep, trial_file(sweep, "runs", trial.number))
        record = self.trial_record(trial.number, values, pruning)
        if pruning.pruned:
            record.update(status="pruned", error="")
        add_best(record, sweep)
        if record["status"] == "finished" and record.get("best") is None:
            record.update(status="failed", error=f"no finite value of {sweep.metric_name}")
        self.tell(trial, record)
        save_record(record, sweep)
        print_trial_line(record, sweep)

    def trial_record(self, number: int, values: dict, pruning: Pruning) -> dict:
        """The trial's record after train.py and test.py (interrupted when the sweep stopped
        before it started)."""
        record: dict | None = {"trial": number, "params": values}
        try:
            config = make_trial(number, self.sweep.raw, self.sweep, values, self.test).config
            record = train_and_test(self.launcher, self.sweep, number, config, record, True,
                                    self.test, poll=pruning)
        except ConfigError as e:
            record.update(status="failed", error=str(e))
        except Exception as e:  # a bug or an OS error: recorded, the others go on
            record.update(status="failed", error=f"{type(e).__name__}: {e}")
        if record is None:
            record = {"trial": number, "params": values, "status": "interrupted",
                      "error": "the sweep stopped before it started"}
        return record

    def tell(self, trial: Any, record: dict) -> None:
        """The record's fields as the trial's user attributes, and its value or state."""
        state = self.optuna.trial.TrialState
        for key in ATTRS:
            trial.set_user_attr(key, record.get(key))
        if record["status"] == "finished":
            self.study.tell(trial, record["best"])
        elif record["status"] == "pruned":
            self.study.tell(trial, state=state.PRUNED)
        else:
            self.failures += record["status"] == "failed"
            self.study.tell(trial, state=state.FAIL)

    def rows(self) -> list[dict]:
        """One summary row per trial of the study (every worker's)."""
        state = self.optuna.trial.TrialState
        names = {state.COMPLETE: "finished", state.PRUNED: "pruned", state.FAIL: "failed",
                 state.RUNNING: "running", state.WAITING: "waiting"}
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if attrs.get("surplus"):
                continue
            row = {k: attrs.get(k) for k in ATTRS}
            row.update(trial=t.number, params=decode_params(t.params, self.sweep),
                       status=names.get(t.state, str(t.state)) if t.state != state.FAIL
                       else attrs.get("status") or "failed")
            if t.state == state.COMPLETE:
                row["best"] = t.value
            rows.append(row)
        return rows

    def run(self, command: list[str]) -> int:
        sweep = self.sweep
        prepare_folder(sweep, command)
        self.study = open_study(sweep, self.optuna)
        done = len(self.active())
        print(f"sweep {sweep.name}/{sweep.sweep_id}: {sweep.method} (Optuna), study "
              f"'{self.study.study_name}' holds {done} of {sweep.trials} trials; "
              f"{self.launcher.jobs} at once with {self.launcher.threads} CPU thread(s) each; "
              f"folder {sweep.folder}", flush=True)
        self.launcher.run_workers(self.work, list(range(self.launcher.jobs)))
        rows = self.rows()
        print(write_summary(sweep, rows), flush=True)
        return self.launcher.final_exit_code(self.failures, len(rows))


def run_optuna(sweep: Sweep, jobs: int, test: bool, command: list[str]) -> int:
    """Run an Optuna sweep's share of trials (with other workers on the same study)."""
    return OptunaSweep(sweep, jobs, test).run(command)
