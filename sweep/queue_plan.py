"""Grid and random sweeps (folds and repeats too) run from Optuna's storage as a trial queue.

The same sweep command started several times, on one machine or on several
sharing the sweep folder, splits the trials: each planned trial not finished
earlier is enqueued once (its plan number as the `point` user attribute), and
every worker thread takes the next one until none waits. A worker with nothing
left waits while other workers still run trials, so that it takes over the
trial of one that dies (sweep/queue.py re-queues it), then writes the summary,
rebuilt from the trial folders.
"""

from __future__ import annotations

from typing import Any

from sweep.definition import Sweep, Trial, import_optuna
from sweep.launcher import Launcher, say
from sweep.queue import TrialQueue, storage_label, wait_for_writer
from sweep.records import (
    add_best,
    for_console,
    is_done,
    load_records,
    save_record,
    trial_file,
    unfinished,
    write_summary,
)
from sweep.trial_process import print_trial_line, run_planned_trial
from utils.files import read_json


def record_of(sweep: Sweep, trial: Trial) -> dict | None:
    """The trial's record in the sweep folder, if it is this trial's (same resolved config)."""
    path = trial_file(sweep, "trials", trial.number)
    record = read_json(path) if path.is_file() else None
    return record if record and record.get("key") == trial.key else None


def summary_rows(sweep: Sweep, queue: TrialQueue | None = None) -> list[dict]:
    """One row per planned trial from the trial folders; trials without a final record
    show as running or pending as the queue sees them."""
    records = load_records(sweep.folder)
    running = set()
    if queue is not None:
        running = {t.user_attrs.get("point") for t in queue.trials(queue.state.RUNNING)}
    rows = []
    for trial in sweep.plan:
        record = dict(records.get(trial.key) or {"status": "pending"})
        if trial.number in running and record.get("status") != "finished":
            record["status"] = "running"
        record.update(trial=trial.number, params=trial.params)
        rows.append(add_best(record, sweep))
    return rows


class QueuedPlan:
    """This process's workers on a grid or random sweep's queue."""

    def __init__(self, sweep: Sweep, jobs: int, test: bool):
        self.sweep, self.test = sweep, test
        self.optuna = import_optuna(sweep.method)
        self.optuna.logging.set_verbosity(self.optuna.logging.WARNING)
        self.jobs = jobs
        self.launcher: Launcher | None = None
        self.queue: TrialQueue | None = None

    def run(self, command: list[str]) -> int:
        sweep = self.sweep
        folder, _, todo, to_test = unfinished(sweep, command, self.test)
        self.queue = TrialQueue(sweep, self.optuna)
        new = self.queue.enqueue([t.number for t in todo], {t.number: t.params for t in todo})
        self.launcher = launcher = Launcher(max(1, min(self.jobs, len(todo))))
        say(f"sweep {sweep.name}/{sweep.sweep_id}: {sweep.method}, {len(sweep.plan)} trials, "
            f"{len(sweep.plan) - len(todo)} finished earlier, {len(todo) - to_test} to run"
            + (f", {to_test} to test" if to_test else "")
            + f", {launcher.jobs} at once with {launcher.threads} CPU thread(s) each; "
            f"queue {storage_label(sweep)} ({new} enqueued now); folder {folder}")
        launcher.run_workers(self.work, list(range(launcher.jobs)))
        rows = summary_rows(sweep, self.queue)
        print(for_console(write_summary(sweep, rows)), flush=True)
        return launcher.final_exit_code(sum(r["status"] == "failed" for r in rows), len(rows))

    def work(self, _worker: int) -> None:
        """One worker thread: take the next trial and run it, until none is left."""
        queue, launcher = self.queue, self.launcher
        while not launcher.stopping:
            trial = queue.take()
            if trial is None:
                if not queue.busy_elsewhere():
                    return
                queue.idle_wait()
                continue
            self.run_trial(trial)

    def run_trial(self, asked: Any) -> None:
        """Run (or resume, or only test) the planned trial an asked trial stands for."""
        sweep, queue = self.sweep, self.queue
        point = queue.folder_number(asked)
        if point >= len(sweep.plan):  # enqueued by a longer random sweep: not this plan's
            queue.tell(asked, attrs={"surplus": True})  # that sweep's rerun enqueues it again
            return
        trial = sweep.plan[point]
        queue.record_params(asked, trial.params)
        with queue.heartbeat(asked):
            earlier = record_of(sweep, trial) or {}
            if is_done(earlier, self.test):  # done by a worker that died before telling
                queue.tell(asked, earlier.get("best"), attrs={"status": "finished"})
                return
            run = trial_file(sweep, "runs", trial.number)
            wait_for_writer((read_json(run) or {}).get("run_dir") if run.is_file() else None,
                            sweep.grace_period)
            record = run_planned_trial(self.launcher, sweep, trial, earlier, self.test)
            if record is None:  # the sweep stopped before it started: back to the queue
                queue.requeue(asked)
                return
            save_record(record, sweep)
        print_trial_line(record, sweep)
        status = record["status"]
        if status == "interrupted":
            queue.requeue(asked)
        else:
            queue.tell(asked, record.get("best") if status == "finished" else None,
                       attrs={"status": status})
        write_summary(sweep, summary_rows(sweep, queue))  # current for anyone who looks
