"""Optuna methods (tpe, cmaes, qmc, gp, nsga2): Optuna proposes, train.py processes run.

The study lives in `storage` (default: Optuna's journal file study.journal in
the sweep folder; sweep/queue.py), so the same command started on several
machines (or twice on one) shares one study: each worker asks for a trial,
runs it as an ordinary run, and tells the result, until the study holds
`trials` finished or pruned trials. A trial whose worker died (its heartbeat
stopped) is retried by the next free worker, from the checkpoint in the
original trial's folder. Pruning: the
worker reads the trial's metrics.csv as it grows, reports the metric per
epoch, and stops a trial Optuna prunes with SIGTERM (it saves a checkpoint).
The summary is read from the study, so it shows every worker's trials.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from pathlib import Path
from typing import Any

from sweep.definition import OPTUNA_SAMPLERS, Param, Sweep, describe, import_optuna
from sweep.launcher import Launcher, say
from sweep.plan import make_trial
from sweep.queue import TrialQueue, storage_label, wait_for_writer
from sweep.records import (
    add_best,
    for_console,
    prepare_folder,
    read_metrics,
    save_record,
    trial_file,
    write_summary,
)
from sweep.trial_process import print_trial_line, train_and_test
from utils.errors import ConfigError
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


def make_sampler(sweep: Sweep, optuna: Any) -> Any:
    """The Optuna sampler of the sweep's method, and its pruner."""
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
    return sampler, pruner


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
        self.queue: TrialQueue | None = None

    def active(self) -> list:
        """Trials that count towards `trials`: finished, pruned, or being run by some worker."""
        state = self.optuna.trial.TrialState
        return self.study.get_trials(deepcopy=False, states=(
            state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING))

    def ask(self) -> Any | None:
        """A retried trial, else a new one while the study is not full, else None (checked
        again after asking, since a worker on another machine may have asked at once)."""
        with self.ask_lock:
            full = len(self.active()) >= self.sweep.trials or \
                self.failures >= self.sweep.trials
            trial = self.queue.take(may_sample=not full)
            if trial is None or self.queue.frozen(trial).system_attrs.get("failed_trial") \
                    is not None:
                return trial
            ahead = [t for t in self.active() if t.number < trial.number]
            if len(ahead) >= self.sweep.trials:
                self.queue.tell(trial, attrs={"surplus": True})
                return None
            return trial

    def work(self, _worker: int) -> None:
        """One worker: ask for a trial and run it, until the study is full (and no other
        worker runs a trial this one may have to take over) or the sweep stops."""
        while not self.launcher.stopping:
            trial = self.ask()
            if trial is None:
                if not self.queue.busy_elsewhere():
                    return
                self.queue.idle_wait()
                continue
            with self.queue.heartbeat(trial):
                self.run_trial(trial)

    def run_trial(self, trial: Any) -> None:
        """Run an asked trial, tell Optuna how it ended, record it."""
        sweep = self.sweep
        values = {p.label: suggest(trial, p) for p in sweep.params}
        number = self.queue.folder_number(trial)  # a retry goes on in its original's folder
        retry = f" (retry of trial {number})" if number != trial.number else ""
        say(f"trial {number} started{retry}: {describe(values)}")
        run_file = trial_file(sweep, "runs", number)
        if retry and run_file.is_file():  # the dead worker's train.py may still be saving
            wait_for_writer((read_json(run_file) or {}).get("run_dir"), sweep.grace_period)
        pruning = Pruning(trial, sweep, run_file)
        record = self.trial_record(number, values, pruning)
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
        attrs = {key: record.get(key) for key in ATTRS}
        if record["status"] == "finished":
            self.queue.tell(trial, record["best"], attrs=attrs)
        elif record["status"] == "pruned":
            self.queue.tell(trial, state=state.PRUNED, attrs=attrs)
        else:
            self.failures += record["status"] == "failed"
            self.queue.tell(trial, state=state.FAIL, attrs=attrs)

    def rows(self) -> list[dict]:
        """One summary row per trial of the study (every worker's)."""
        state = self.optuna.trial.TrialState
        names = {state.COMPLETE: "finished", state.PRUNED: "pruned", state.FAIL: "failed",
                 state.RUNNING: "running", state.WAITING: "waiting"}
        rows, latest = [], {}
        for t in self.study.get_trials(deepcopy=False):  # a retry replaces the trial it retries
            if not t.user_attrs.get("surplus"):
                latest[t.system_attrs.get("failed_trial", t.number)] = t
        for number, t in sorted(latest.items()):
            attrs = t.user_attrs
            row = {k: attrs.get(k) for k in ATTRS}
            row.update(trial=number, params=decode_params(t.params, self.sweep),
                       status=names.get(t.state, str(t.state)) if t.state != state.FAIL
                       else attrs.get("status") or "failed")
            if t.state == state.COMPLETE:
                row["best"] = t.value
            rows.append(row)
        return rows

    def run(self, command: list[str]) -> int:
        sweep = self.sweep
        prepare_folder(sweep, command)
        self.queue = TrialQueue(sweep, self.optuna, *make_sampler(sweep, self.optuna))
        self.study = self.queue.study
        done = len(self.active())
        print(f"sweep {sweep.name}/{sweep.sweep_id}: {sweep.method} (Optuna), study "
              f"'{self.study.study_name}' in {storage_label(sweep)} holds {done} of "
              f"{sweep.trials} trials; "
              f"{self.launcher.jobs} at once with {self.launcher.threads} CPU thread(s) each; "
              f"folder {sweep.folder}", flush=True)
        self.launcher.run_workers(self.work, list(range(self.launcher.jobs)))
        rows = self.rows()
        print(for_console(write_summary(sweep, rows)), flush=True)
        return self.launcher.final_exit_code(self.failures, len(rows))


def run_optuna(sweep: Sweep, jobs: int, test: bool, command: list[str]) -> int:
    """Run an Optuna sweep's share of trials (with other workers on the same study)."""
    return OptunaSweep(sweep, jobs, test).run(command)
