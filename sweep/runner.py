"""Running a sweep: the --dry-run listing, grid and random plans here, Optuna methods
in sweep/optuna_search.py. Each trial is an ordinary train.py (and test.py) process
(sweep/trial_process.py); the sweep folder is described in sweep/records.py.
"""

from __future__ import annotations

import json

from sweep.definition import Sweep, Trial, describe, has_optuna
from sweep.launcher import Launcher, say
from sweep.mlflow_parent import open_parent
from sweep.optuna_search import run_optuna
from sweep.queue_plan import QueuedPlan
from sweep.records import add_best, for_console, save_record, unfinished, write_summary
from sweep.trial_process import print_trial_line, run_planned_trial


def run_sweep(sweep: Sweep, jobs: int | None, test: bool, dry_run: bool = False,
              argv: list[str] | None = None) -> int:
    """Run (or, with --dry-run, list) the sweep; the process exit code.

    `argv` is train.py's command line (its arguments), recorded in the sweep folder.
    """
    if dry_run:
        print_plan(sweep)
        return 0
    open_parent(sweep)  # MLflow (trainer.loggers): the trials become children of one run
    command = ["train.py", *(argv or [])]
    if sweep.uses_optuna:
        return run_optuna(sweep, jobs or 1, test, command)
    if has_optuna():  # the sweep extra: Optuna's storage is the trial queue of every worker
        return QueuedPlan(sweep, jobs or 1, test).run(command)
    return run_plan(sweep, jobs or 1, test, command)



def print_plan(sweep: Sweep) -> None:
    """What --dry-run shows: the sweep folder and every trial (Optuna: the space it draws from)."""
    print(f"sweep {sweep.name}/{sweep.sweep_id} ({sweep.method}, ranked by {sweep.metric}): "
          f"folder {sweep.folder}")
    for trial in sweep.plan:
        print(f"trial {trial.number}: {describe(trial.params)}")
    if sweep.uses_optuna:
        print(f"{sweep.trials} trials drawn by Optuna from: "
              + ", ".join(f"{p.label}={json.dumps(p.spec())}" for p in sweep.params))


def run_plan(sweep: Sweep, jobs: int, test: bool, command: list[str]) -> int:
    """Run every trial of a grid or random sweep not finished earlier, in this process alone
    (without the sweep extra: no shared queue); write the summary."""
    folder, records, todo, to_test = unfinished(sweep, command, test)
    launcher = Launcher(max(1, min(jobs, len(todo))))  # threads: shared by the trials that run
    say(f"sweep {sweep.name}/{sweep.sweep_id}: {sweep.method}, {len(sweep.plan)} trials, "
        f"{len(sweep.plan) - len(todo)} finished earlier, {len(todo) - to_test} to run"
        + (f", {to_test} to test" if to_test else "")
        + f", {launcher.jobs} at once with {launcher.threads} CPU thread(s) each; folder {folder}")

    def work(trial: Trial) -> None:
        record = run_planned_trial(launcher, sweep, trial, records.get(trial.key) or {}, test)
        if record is not None:  # None: the sweep stopped before it started
            records[trial.key] = record
            save_record(record, sweep)
            print_trial_line(record, sweep)

    launcher.run_workers(work, todo)
    rows = []
    for trial in sweep.plan:
        record = dict(records.get(trial.key) or {"status": "pending"})
        record.update(trial=trial.number, params=trial.params)
        rows.append(add_best(record, sweep))
    print(for_console(write_summary(sweep, rows)), flush=True)
    return launcher.final_exit_code(sum(r["status"] == "failed" for r in rows), len(rows))
