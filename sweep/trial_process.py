"""One trial as ordinary processes: train.py (or its resume), then test.py; the record it leaves.

Grid and random sweeps (sweep/runner.py) and Optuna (sweep/optuna_search.py)
run their trials through train_and_test().
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from logger.console import fmt as short
from logger.console import shown_metrics
from sweep.definition import Sweep, Trial, describe
from sweep.launcher import Launcher, say
from sweep.records import (
    add_best,
    best_checkpoint,
    fmt,
    is_done,
    read_metrics,
    resume_point,
    trial_file,
)
from utils.files import read_json, write_json
from utils.signals import EXIT_CODES, signal_name

REPO = Path(__file__).resolve().parent.parent


class EpochProgress:
    """A poll for Launcher.run: a line for each epoch the trial's metrics.csv gains, as it comes
    (`[trial 3] epoch 2/5  loss 0.53  val_loss 0.44`; whatever the trial's verbosity), then
    `then(proc)` if given."""

    def __init__(self, number: int, run_file: Path, epochs: object,
                 then: Callable[[subprocess.Popen], None] | None = None,
                 earlier_log_dir: str | None = None):
        self.number, self.run_file, self.then = number, run_file, then
        self.epochs = epochs if isinstance(epochs, int) else "?"
        self.log_dir: str | None = None
        self.seen = 0
        # a resumed trial: the epochs of its earlier start were printed then
        self.done = max((row.get("epoch", 0) for row in read_metrics(earlier_log_dir)), default=0)

    def __call__(self, proc: subprocess.Popen) -> None:
        if self.log_dir is None and self.run_file.is_file():
            self.log_dir = (read_json(self.run_file) or {}).get("log_dir")
        rows = read_metrics(self.log_dir)
        for row in rows[self.seen:]:
            if row.get("epoch", 0) <= self.done:
                continue
            shown = [f"{k} {short(row[k])}" for k in shown_metrics(row, None) if k in row][:3]
            say(f"[trial {self.number}] epoch {int(row.get('epoch', 0))}/{self.epochs}  "
                + "  ".join(shown))
        self.seen = max(self.seen, len(rows))
        if self.then is not None:
            self.then(proc)


def python(script: str) -> list[str]:
    """The command that runs one of the project's scripts with this interpreter."""
    return [sys.executable, str(REPO / script)]


def last_error(log: Path, rc: int) -> str:
    """The process's `error:` line, else how it ended."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1][len("error:"):].strip()
    if rc < 0:
        return f"killed by {signal_name(-rc)}"
    tail = [line.strip() for line in lines if line.strip()]
    return f"exit code {rc}" + (f": {tail[-1]}" if tail else "")


def train_and_test(launcher: Launcher, sweep: Sweep, number: int, config: dict, record: dict,
                   train: bool, test: bool,
                   poll: Callable[[subprocess.Popen], None] | None = None) -> dict | None:
    """Train (or go on training) trial `number` and test it; the updated record.

    Its status ends as finished, failed or interrupted (a sweep stop); None when
    the sweep stopped before the trial started.
    """
    log = trial_file(sweep, "logs", number, ".log")
    start = time.perf_counter()
    record = dict(record)
    if train:
        record = train_trial(launcher, sweep, number, config, record, poll)
        if record is None:
            return None
    if test and record.get("status") == "finished":
        test_trial(launcher, sweep, record, log)
    record["seconds"] = round((record.get("seconds") or 0.0) + time.perf_counter() - start, 2)
    record["log"] = str(log)
    return record


def in_sweep_folder(config: dict, sweep: Sweep) -> dict:
    """The trial's config with its run folders under the sweep folder
    (<sweep folder>/models/<name>/<run_id>/, <sweep folder>/log/...), not among the user's runs."""
    return {**config, "trainer": {**config["trainer"], "save_dir": str(sweep.folder)}}


def train_trial(launcher: Launcher, sweep: Sweep, number: int, config: dict, record: dict,
                poll: Callable[[subprocess.Popen], None] | None) -> dict | None:
    """train.py from the trial's config, or resumed from where it stopped; None when the
    sweep stopped before it started. train.py --run-file tells where its run folders are."""
    log, run_file = trial_file(sweep, "logs", number, ".log"), trial_file(sweep, "runs", number)
    config_path = trial_file(sweep, "configs", number)
    write_json(in_sweep_folder(config, sweep), config_path)
    if not record.get("status"):  # no record: killed with its sweep (kill -9) before writing one
        earlier = read_json(run_file) if run_file.is_file() else None
        if earlier and earlier.get("run_dir"):
            record.update(earlier, status="running")
    resume = resume_point(record)  # its checkpoint's config is data, as for any -r
    cmd = python("train.py") + (["-r", str(resume), *trust_flag(sweep)] if resume
                                else ["-c", str(config_path)])
    run_file.unlink(missing_ok=True)
    progress = EpochProgress(number, run_file, config["trainer"].get("epochs"), poll,
                             record.get("log_dir") if resume else None)
    rc = launcher.run(cmd, log, run_file, progress)
    if rc is None:
        return None
    record.update(read_json(run_file) or {}, test=None, error="")
    if rc == 0:
        record["status"] = "finished"
    elif launcher.stop_signal is not None and (rc in EXIT_CODES.values() or rc < 0):
        record.update(status="interrupted", error="stopped with the sweep")
    else:
        record.update(status="failed", error=last_error(log, rc))
    return record


def trust_flag(sweep: Sweep) -> list[str]:
    """--trust-config for a trial's train.py -r and test.py when the sweep was given it."""
    return ["--trust-config"] if sweep.trust_config else []


def test_trial(launcher: Launcher, sweep: Sweep, record: dict, log: Path) -> None:
    """test.py on the trial's best checkpoint; its metrics (or its error) go into `record`."""
    ckpt = best_checkpoint(record.get("run_dir"))
    if ckpt is None:
        record.update(status="failed", error="test: no checkpoint in the run folder")
        return
    out = ckpt.parent / "test_metrics.json"
    rc = launcher.run(python("test.py") + ["-r", str(ckpt), "--output", str(out),
                                           *trust_flag(sweep)], log)
    if rc == 0:
        record.update(test=read_json(out), checkpoint=str(ckpt))
    elif rc is not None:
        record.update(status="failed", error=f"test.py: {last_error(log, rc)}")


def print_trial_line(record: dict, sweep: Sweep) -> None:
    """The one progress line of a trial that ended: status, best value, error, run folder."""
    line = f"trial {record['trial']} {record.get('status')}"
    if record.get("best") is not None:
        line += f": {sweep.metric_name} {fmt(record['best'])}"
        if record.get("best_epoch") is not None:
            line += f" (epoch {record['best_epoch']})"
    if record.get("error"):
        line += f": {record['error']}"
    if record.get("run_dir"):
        line += f"  [{record['run_dir']}]"
    say(line)


def run_planned_trial(launcher: Launcher, sweep: Sweep, trial: Trial, earlier: dict,
                      test: bool) -> dict | None:
    """One trial of the plan, trained unless it finished earlier, then tested; its record
    (None when the sweep stopped before it started)."""
    record = {**earlier, "trial": trial.number, "key": trial.key, "params": trial.params}
    train = not is_done(earlier, False)
    say(f"trial {trial.number} {'started' if train else 'testing'}: {describe(trial.params)}")
    try:
        record = train_and_test(launcher, sweep, trial.number, trial.config, record, train, test)
    except Exception as e:  # a bug or an OS error: recorded, the others go on
        record.update(status="failed", error=f"{type(e).__name__}: {e}")
    return None if record is None else add_best(record, sweep)
