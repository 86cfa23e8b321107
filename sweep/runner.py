"""Running a sweep's trials as ordinary train.py / test.py processes; the sweep folder.

    saved/sweeps/<name>/<sweep_id>/
        sweep.json            the resolved definition (base config included)
        summary.csv, summary.md
        configs/trial-003.json   the config each trial is started with
        logs/trial-003.log       its train.py (and test.py) output
        trials/trial-003.json    its record: status, error, run folder, test metrics
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sweep.spec import Sweep, Trial, describe
from utils.files import read_json, write_atomic, write_json

REPO = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.3
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


# ---------------------------------------------------------------- small helpers

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
        return f"killed by {signal.Signals(-rc).name}"
    tail = [line.strip() for line in lines if line.strip()]
    return f"exit code {rc}" + (f": {tail[-1]}" if tail else "")


def read_metrics(log_dir: str | Path | None) -> list[dict]:
    """The complete rows of a run's metrics.csv (it may be growing)."""
    if not log_dir:
        return []
    try:
        text = (Path(log_dir) / "metrics.csv").read_text(encoding="utf-8")
    except OSError:
        return []
    text = text[:text.rfind("\n") + 1]  # a row being written is not read yet
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
        except ValueError:
            continue
    return rows


def best_of(rows: list[dict], metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best finite value of `metric` over epochs, and its epoch."""
    found = [(r[metric], int(r["epoch"])) for r in rows
             if metric in r and "epoch" in r and math.isfinite(r[metric])]
    if not found:
        return None, None
    pick = min if mode == "min" else max
    return pick(found, key=lambda ve: ve[0])


def best_checkpoint(run_dir: str | Path | None) -> Path | None:
    """model_best.pth, else the checkpoint of the last epoch."""
    if not run_dir:
        return None
    run_dir = Path(run_dir)
    if (run_dir / "model_best.pth").is_file():
        return run_dir / "model_best.pth"
    return latest_checkpoint(run_dir)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = []
    for p in run_dir.glob("checkpoint-epoch*.pth"):
        m = re.fullmatch(r"checkpoint-epoch(\d+)\.pth", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def resume_point(record: dict) -> Path | None:
    """Where an interrupted trial goes on from: its interrupt checkpoint or last checkpoint."""
    if record.get("status") not in ("interrupted", "running") or not record.get("run_dir"):
        return None
    run_dir = Path(record["run_dir"])
    if (run_dir / "checkpoint-interrupted.pth").is_file():
        return run_dir / "checkpoint-interrupted.pth"
    return latest_checkpoint(run_dir) if run_dir.is_dir() else None


_say_lock = threading.Lock()


def say(line: str) -> None:
    """One whole line on stdout (trials report from several threads)."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


# ---------------------------------------------------------------- processes

class Launcher:
    """Starts trial processes, each with its share of CPU threads, and stops them on a signal.

    Trials run in their own session, so a Ctrl-C in the terminal reaches only
    the sweep, which passes it on once: each trial saves a checkpoint and
    exits (130). A second Ctrl-C is passed on too and aborts them.
    """

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.threads = threads_per_trial(jobs)
        self.stop_signal: int | None = None
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def run(self, cmd: list[str], log: Path, run_file: Path | None = None,
            poll=None) -> int | None:
        """Run `cmd` to its end and return its exit code; None if a stop came before it started.

        `poll(proc)` is called every POLL_SECONDS while it runs and once after.
        """
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        if run_file is not None:  # train.py writes the trial's run folders there
            cmd = [*cmd, "--run-file", str(run_file)]
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            with self.lock:
                if self.stop_signal is not None:
                    return None
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
                self.procs.add(proc)
            try:
                while True:
                    try:
                        rc = proc.wait(POLL_SECONDS)
                        break
                    except subprocess.TimeoutExpired:
                        if poll is not None:
                            poll(proc)
                if poll is not None:
                    poll(proc)
            finally:
                with self.lock:
                    self.procs.discard(proc)
        return rc

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        with self.lock:
            first = self.stop_signal is None
            self.stop_signal = self.stop_signal or signum
            procs = list(self.procs)
        for proc in procs:
            with suppress(ProcessLookupError):
                proc.send_signal(signum)
        if first:
            print(f"{signal.Signals(signum).name} received: no new trials; waiting for "
                  f"{len(procs)} running trial(s) to save a checkpoint (Ctrl-C again aborts them)",
                  file=sys.stderr, flush=True)

    @contextmanager
    def signals(self):
        previous = {s: signal.signal(s, self.request_stop) for s in EXIT_CODES}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def run_workers(self, work, items: list) -> None:
        """`work(item)` for every item, `jobs` at a time, until done or stopped."""
        queue, qlock = deque(items), threading.Lock()

        def worker():
            while True:
                with qlock:
                    if not queue or self.stop_signal is not None:
                        return
                    item = queue.popleft()
                work(item)

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(max(1, min(self.jobs, len(items))))]
        with self.signals():
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)

    def exit_code(self, failed: int, total: int) -> int:
        if self.stop_signal is not None:
            return EXIT_CODES.get(self.stop_signal, 130)
        if failed:
            print(f"error: {failed} of {total} trials failed (their errors are in the summary)",
                  file=sys.stderr)
            return 1
        return 0


def python(script: str) -> list[str]:
    return [sys.executable, str(REPO / script)]


# ---------------------------------------------------------------- one trial

def train_and_test(launcher: Launcher, sweep: Sweep, tag: str, config: dict, record: dict,
                   train: bool, test: bool, poll=None) -> dict | None:
    """Train (or go on training) one trial and test it; the updated record.

    Its status ends as finished, failed or interrupted (a sweep stop); None when
    the sweep stopped before the trial started.
    """
    folder = sweep.folder
    log, run_file = folder / "logs" / f"{tag}.log", folder / "runs" / f"{tag}.json"
    config_path = folder / "configs" / f"{tag}.json"
    start = time.perf_counter()
    record = dict(record)
    if train:
        write_json(config, config_path)
        resume = resume_point(record)
        cmd = python("train.py") + (["-r", str(resume)] if resume else ["-c", str(config_path)])
        run_file.unlink(missing_ok=True)
        rc = launcher.run(cmd, log, run_file, poll)
        if rc is None:
            return None
        record.update(read_json(run_file) or {}, test=None, error="")
        if rc == 0:
            record["status"] = "finished"
        elif launcher.stop_signal is not None and (rc in (130, 143) or rc < 0):
            record.update(status="interrupted", error="stopped with the sweep")
        else:
            record.update(status="failed", error=last_error(log, rc))
    if test and record.get("status") == "finished":
        ckpt = best_checkpoint(record.get("run_dir"))
        if ckpt is None:
            record.update(status="failed", error="test: no checkpoint in the run folder")
        else:
            out = ckpt.parent / "test_metrics.json"
            rc = launcher.run(python("test.py") + ["-r", str(ckpt), "--output", str(out)], log)
            if rc == 0:
                record.update(test=read_json(out), checkpoint=str(ckpt))
            elif rc is not None:
                record.update(status="failed", error=f"test.py: {last_error(log, rc)}")
    record["seconds"] = round((record.get("seconds") or 0.0) + time.perf_counter() - start, 2)
    record["log"] = str(log)
    return record


def add_best(record: dict, sweep: Sweep) -> dict:
    """best / best_epoch of the sweep's metric, from the run's metrics.csv (or test metrics)."""
    name, mode = sweep.metric_name, sweep.metric_mode
    if name.startswith("test_"):
        value = (record.get("test") or {}).get(name[len("test_"):])
        record.update(best=value, best_epoch=None)
    else:
        record["best"], record["best_epoch"] = best_of(read_metrics(record.get("log_dir")),
                                                       name, mode)
    return record


def report(record: dict, sweep: Sweep) -> None:
    status = record.get("status")
    line = f"trial {record['trial']} {status}"
    if record.get("best") is not None:
        line += f": {sweep.metric_name} {fmt(record['best'])}"
        if record.get("best_epoch") is not None:
            line += f" (epoch {record['best_epoch']})"
    if record.get("error"):
        line += f": {record['error']}"
    if record.get("run_dir"):
        line += f"  [{record['run_dir']}]"
    say(line)


# ---------------------------------------------------------------- grid and random

def prepare_folder(sweep: Sweep, command: list[str]) -> Path:
    folder = sweep.folder
    for sub in ("configs", "logs", "trials", "runs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    write_json(sweep.definition(command), folder / "sweep.json")
    return folder


def load_records(folder: Path) -> dict[str, dict]:
    """Earlier records of this sweep folder, by resolved-config key."""
    records = {}
    for path in sorted((folder / "trials").glob("trial-*.json")):
        record = read_json(path)
        if record and record.get("key"):
            records[record["key"]] = record
    return records


def is_done(record: dict | None, test: bool) -> bool:
    return bool(record) and record.get("status") == "finished" and \
        Path(record.get("run_dir") or "/nonexistent").is_dir() and \
        (not test or record.get("test") is not None)


def run_plan(sweep: Sweep, jobs: int, test: bool, command: list[str]) -> int:
    """Run every trial of a grid or random sweep not finished earlier; write the summary."""
    folder = prepare_folder(sweep, command)
    records = load_records(folder)
    todo = [t for t in sweep.plan if not is_done(records.get(t.key), test)]
    to_test = sum(is_done(records.get(t.key), False) for t in todo)
    launcher = Launcher(max(1, min(jobs, len(todo))))  # threads: shared by the trials that run
    say(f"sweep {sweep.name}/{sweep.sweep_id}: {sweep.method}, {len(sweep.plan)} trials, "
        f"{len(sweep.plan) - len(todo)} finished earlier, {len(todo) - to_test} to run"
        + (f", {to_test} to test" if to_test else "")
        + f", {launcher.jobs} at once with {launcher.threads} CPU thread(s) each; folder {folder}")

    def work(trial: Trial) -> None:
        tag = f"trial-{trial.number:03d}"
        earlier = records.get(trial.key) or {}
        record = {**earlier, "trial": trial.number, "key": trial.key, "params": trial.params}
        train = not is_done(earlier, False)
        say(f"trial {trial.number} {'started' if train else 'testing'}: {describe(trial.params)}")
        try:
            record = train_and_test(launcher, sweep, tag, trial.config, record, train, test)
        except Exception as e:  # a bug or an OS error: recorded, the others go on
            record.update(status="failed", error=f"{type(e).__name__}: {e}")
        if record is None:
            return  # the sweep stopped before it started
        add_best(record, sweep)
        records[trial.key] = record
        write_json(record, folder / "trials" / f"{tag}.json")
        report(record, sweep)

    launcher.run_workers(work, todo)
    rows = []
    for trial in sweep.plan:
        record = dict(records.get(trial.key) or {"status": "pending"})
        record.update(trial=trial.number, params=trial.params)
        rows.append(add_best(record, sweep))
    print(write_summary(sweep, rows), flush=True)
    return launcher.exit_code(sum(r["status"] == "failed" for r in rows), len(rows))


# ---------------------------------------------------------------- summary

def rank_rows(rows: list[dict], mode: str) -> list[dict]:
    """Finished trials by their value, then pruned ones, then the rest in trial order."""
    def scored(r):
        return r.get("status") in ("finished", "pruned") and r.get("best") is not None \
            and math.isfinite(r["best"])

    sign = 1 if mode == "min" else -1
    good = sorted((r for r in rows if scored(r)),
                  key=lambda r: (r["status"] != "finished", sign * r["best"], r["trial"]))
    rest = sorted((r for r in rows if not scored(r)), key=lambda r: r["trial"])
    for i, r in enumerate(good, 1):
        r["rank"] = i
    for r in rest:
        r["rank"] = None
    return good + rest


def summary_table(sweep: Sweep, rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    labels = list(dict.fromkeys(k for r in rows for k in (r.get("params") or {})))
    tests = list(dict.fromkeys(k for r in rows for k in (r.get("test") or {})))
    header = ["rank", "trial", "status", *labels, f"best_{sweep.metric_name}", "best_epoch",
              *[f"test_{k}" for k in tests], "seconds", "run_dir", "error"]
    table = []
    for r in rows:
        params, test = r.get("params") or {}, r.get("test") or {}
        table.append([r.get("rank"), r["trial"], r.get("status"), *[params.get(k) for k in labels],
                      r.get("best"), r.get("best_epoch"), *[test.get(k) for k in tests],
                      r.get("seconds"), r.get("run_dir"), r.get("error") or None])
    return header, table


def write_summary(sweep: Sweep, rows: list[dict]) -> str:
    """summary.csv and summary.md in the sweep folder; returns the Markdown."""
    rows = rank_rows(rows, sweep.metric_mode)
    header, table = summary_table(sweep, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else (json.dumps(v) if isinstance(v, list | dict) else v)
                       for v in row] for row in table])
    write_atomic(out.getvalue(), sweep.folder / "summary.csv")
    markdown = summary_markdown(sweep, rows, header, table)
    write_atomic(markdown, sweep.folder / "summary.md")
    return markdown


def summary_markdown(sweep: Sweep, rows: list[dict], header: list[str], table: list) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    shown = [i for i, h in enumerate(header) if h not in ("run_dir", "error")]
    lines = [f"# Sweep {sweep.name} ({sweep.sweep_id})", "",
             f"{sweep.method}, ranked by {sweep.metric}; {len(rows)} trials: "
             + ", ".join(f"{n} {s}" for s, n in counts.items()), "",
             "| " + " | ".join(header[i] for i in shown) + " |",
             "|" + "---|" * len(shown)]
    for row in table:
        lines.append("| " + " | ".join(fmt(row[i]).replace("|", "\\|") for i in shown) + " |")
    best = rows[0] if rows and rows[0].get("rank") == 1 else None
    lines.append("")
    if best is not None:
        ckpt = best.get("checkpoint") or best_checkpoint(best.get("run_dir"))
        epoch = f" at epoch {best['best_epoch']}" if best.get("best_epoch") is not None else ""
        lines += [f"Best: trial {best['trial']} ({describe(best.get('params') or {})}), "
                  f"{sweep.metric_name} {fmt(best['best'])}{epoch}",
                  f"- config: {Path(best['run_dir']) / 'config.json' if best.get('run_dir') else ''}",
                  f"- checkpoint: {ckpt or ''}"]
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failed:"]
        lines += [f"- trial {r['trial']} ({describe(r.get('params') or {})}): {r.get('error')}"
                  for r in failed]
    lines.append(f"\nsweep folder: {sweep.folder}")
    return "\n".join(lines) + "\n"
