"""Issue 28: config/slurm/*.sbatch submitted as they are to a real one-node SLURM cluster
(.ci/slurm-up): a run signalled before its time limit saves, exits 138, requeues itself and
resumes exactly (one process, and two under torchrun); a sweep's trials shared by the tasks
of a job array, one task cancelled mid-trial and submitted again.

Every start holds one process at its 5th training batch until its trainer has received the
stop signal (tests/slurm_hold.py), so the signal lands mid-training whatever the machine's
speed; the jobs are followed with scontrol, polled with bounded timeouts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ENV, REPO, assert_same_weights, load, only_run, read_csv, trial_run_dirs

pytestmark = pytest.mark.slow

DIGITS = "config/digits_mlp.json"
# dropout and a per-epoch scheduler: a resume must restore the RNG and the schedule too
RUN = ["arch.type=tests.slurm_hold.HeldMLP", "arch.args.dropout=0.2",
       "lr_scheduler.args.step_size=1", "lr_scheduler.args.gamma=0.5", "trainer.epochs=3",
       "trainer.save_period=100"]
HOLD_AT = 5  # the training batch a start holds at until its signal
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


@pytest.fixture(scope="session")
def slurm() -> str:
    """The one-node cluster of .ci/slurm-up (started here, never installed); skip with its
    one-line reason when it cannot run."""
    r = subprocess.run(["bash", str(REPO / ".ci/slurm-up")], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "SLURM_UP_NO_INSTALL": "1"})
    line = (r.stdout.strip().splitlines() or [r.stderr.strip()])[-1]
    if r.returncode != 0:
        pytest.skip(line)
    return line


def job_env(hold: Path) -> dict:
    """The environment sbatch passes on to the job: this interpreter, the hold folder."""
    return {**ENV, "PYTHON": sys.executable, "SLURM_TEST_HOLD": f"{hold}:{HOLD_AT}"}


def sbatch(*args, env: dict) -> str:
    r = subprocess.run(["sbatch", "--parsable", *map(str, args)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def job_states(job: str) -> dict[str, dict]:
    """{job id: its scontrol fields} of a job or of every task of an array job."""
    r = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    jobs = {}
    for line in r.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[fields["JobId"]] = fields
    return jobs


def wait_for(check, what: str, timeout: float = 240):
    """Poll `check()` every 0.2 s until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def wait_done(job: str, timeout: float = 240) -> dict[str, dict]:
    """Every task of `job` in a final state (a requeued job is PENDING again, not final)."""
    def done():
        jobs = job_states(job)
        return jobs if all(j["JobState"] in FINAL for j in jobs.values()) else None
    return wait_for(done, f"job {job} to end ({job_states(job)})", timeout)


def held(hold: Path) -> dict:
    """What the held process recorded when its signal arrived."""
    record = json.loads(wait_for(lambda: (hold / "held").is_file() and (hold / "held").read_text(),
                                 "the held batch's signal"))
    assert record["signalled"], record
    return record


def started_at(out: str, start: int) -> float:
    return float(re.search(rf"^slurm: job \d+ start {start} on \S+ at ([\d.]+),", out,
                           re.M).group(1))


def rows(run: Path) -> list[dict]:
    log = run.parents[2] / "log" / run.parent.name / run.name / "metrics.csv"
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(log)]


def assert_same_run(run: Path, straight: Path) -> None:
    final, expected = load(run / "checkpoint-epoch3.pth"), load(straight / "checkpoint-epoch3.pth")
    assert_same_weights(expected["model_state_dict"], final["model_state_dict"])
    ours, theirs = final["optimizer_state_dict"], expected["optimizer_state_dict"]
    assert ours["state"].keys() == theirs["state"].keys()
    for k in ours["state"]:
        assert_same_weights(theirs["state"][k], ours["state"][k])
    assert rows(run) == rows(straight)
    assert len(rows(run)) == 3 and not (run / "checkpoint-interrupted.pth").exists()


def check_requeued_run(tmp_path: Path, job: str, straight: Path, resume_line: str) -> None:
    (record,) = wait_done(job).values()
    assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
    assert record["Restarts"] == "1", record  # requeued once, by the script
    out = (tmp_path / "job.out").read_text()
    run = only_run(tmp_path / "saved", "digits_mlp")
    assert "--resume auto: no resumable run of digits_mlp: starting fresh" in out
    assert "slurm: stopped on SIGUSR1 and saved; requeueing job" in out
    assert "slurm: start 1 exits 138" in out and "slurm: start 2 exits 0" in out
    assert (f"--resume auto: resuming {run / 'checkpoint-interrupted.pth'} "
            f"({resume_line})") in out, out
    assert_same_run(run, straight)
    signalled = float(re.search(r"^slurm: SIGUSR1 at ([\d.]+)", out, re.M).group(1))
    print(f"job {job}: SIGUSR1 {signalled - started_at(out, 1):.1f} s after the first start; "
          f"requeued start {started_at(out, 2) - signalled:.1f} s after the signal")


def test_signalled_runs_requeue_themselves_and_resume_exactly(slurm, tmp_path):
    """One process signalled by its time limit; two under torchrun signalled by hand; a config
    error, which is not requeued. The jobs and the unbroken references run side by side (one
    test: the jobs overlap)."""
    one, two = tmp_path / "one", tmp_path / "two"
    # a 2-minute limit, SIGUSR1 to the script 30 s before it: at 60 to 90 s (SLURM looks at
    # time limits every 30 s, so it may come up to 30 s early), after train.py has started;
    # the held batch waits for it
    one.mkdir(), two.mkdir()
    job1 = sbatch("--time=2", "--signal=B:USR1@30", f"--output={one / 'job.out'}",
                  "config/slurm/train.sbatch", DIGITS, *RUN,
                  f"trainer.save_dir={one / 'saved'}", env=job_env(one))
    job2 = sbatch("--ntasks-per-node=2", f"--output={two / 'job.out'}",
                  "config/slurm/train.sbatch", DIGITS, *RUN,
                  f"trainer.save_dir={two / 'saved'}", env=job_env(two))
    bad = sbatch(f"--output={tmp_path / 'bad.out'}", "config/slurm/train.sbatch", DIGITS,
                 "trainer.epochs=two", f"trainer.save_dir={tmp_path / 'bad'}",
                 env=job_env(tmp_path))
    straight1 = subprocess.Popen([sys.executable, "train.py", "-c", DIGITS, *RUN,
                                  f"trainer.save_dir={one / 'straight'}"], cwd=REPO, env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    straight2 = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "train.py", "-c", DIGITS, *RUN, f"trainer.save_dir={two / 'straight'}"],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # a config error (exit 2) ends the job: not requeued
    (record,) = wait_done(bad).values()
    assert (record["JobState"], record["ExitCode"], record["Restarts"]) == ("FAILED", "2:0", "0")
    assert "slurm: start 1 exits 2" in (tmp_path / "bad.out").read_text()

    wait_for(lambda: (two / "holding").is_file(), "the two-process job's held batch")
    # the signal a time limit would send, now: to the batch script, which passes it on
    subprocess.run(["scancel", "--signal=USR1", "--batch", job2], check=True, timeout=60)
    record = held(two)
    assert record["SLURM_JOB_ID"] == job2 and record["RANK"] in ("0", "1")
    for proc in (straight1, straight2):
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out

    # the ranks agree on a stop every 10 optimizer steps: both stop after batch 10
    check_requeued_run(two, job2, only_run(two / "straight", "digits_mlp"),
                       "epoch 0, 10 batches into epoch 1")
    text = (two / "job.out").read_text()
    assert "1 node(s) x 2 process(es)" in text
    assert text.count("interrupted by SIGUSR1; checkpoint:") == 2  # both ranks saved and ended

    assert held(one)["SLURM_JOB_ID"] == job1
    check_requeued_run(one, job1, only_run(one / "straight", "digits_mlp"),
                       f"epoch 0, {HOLD_AT} batches into epoch 1")


def test_array_tasks_share_one_sweep_and_a_cancelled_task_is_resubmitted(slurm, tmp_path):
    pytest.importorskip("optuna", reason="needs the optional extra: pip install optuna")
    args = ["config/slurm/sweep.sbatch", DIGITS, "-m", "optimizer.args.lr=0.01,0.001",
            "arch.args.depth=1,2", "arch.type=tests.slurm_hold.HeldMLP", "trainer.epochs=2",
            f"trainer.save_dir={tmp_path / 'saved'}"]
    output = f"--output={tmp_path}/job-%A_%a.out"
    env = job_env(tmp_path)
    array = sbatch("--array=0-1", output, *args, env=env)
    holding = json.loads(wait_for(lambda: (tmp_path / "holding").is_file()
                                  and (tmp_path / "holding").read_text(), "a held trial"))
    assert holding["SLURM_ARRAY_JOB_ID"] == array
    task = holding["SLURM_ARRAY_TASK_ID"]
    subprocess.run(["scancel", f"{array}_{task}"], check=True, timeout=60)
    held(tmp_path)  # its trial got the SIGTERM mid-epoch and saved
    wait_for(lambda: job_states(array)[holding["SLURM_JOB_ID"]]["JobState"] in FINAL,
             "the cancelled task to end")
    again = sbatch(f"--array={task}", output, *args, env=env)  # the same task, submitted again

    tasks = {**wait_done(array), **wait_done(again)}
    states = sorted((j["ArrayTaskId"], j["JobState"]) for j in tasks.values())
    other = str(1 - int(task))
    assert states == sorted([(task, "CANCELLED"), (other, "COMPLETED"), (task, "COMPLETED")])
    assert all(j["ExitCode"] == "0:0" for j in tasks.values() if j["JobState"] == "COMPLETED")

    (folder,) = (tmp_path / "saved/sweeps/digits_mlp").iterdir()
    summary = read_csv(folder / "summary.csv")
    assert sorted((r["optimizer.args.lr"], r["arch.args.depth"]) for r in summary) == \
        [("0.001", "1"), ("0.001", "2"), ("0.01", "1"), ("0.01", "2")]
    assert {r["status"] for r in summary} == {"finished"}
    runs = trial_run_dirs(tmp_path / "saved", "digits_mlp")
    assert len(runs) == 4  # each grid point trained once, in one run folder
    for run in runs:
        assert [r["epoch"] for r in rows(run)] == ["1", "2"]
    resumed = [run for run in runs if "resuming from" in info_log(run)]
    assert len(resumed) == 1 and "checkpoint-interrupted.pth" in info_log(resumed[0])
    worker_outs = sorted(tmp_path.glob("job-*.out"))
    assert len(worker_outs) == 3
    assert all("4 trials: 4 finished" in p.read_text() for p in worker_outs
               if "sweep worker exits 0" in p.read_text())


def info_log(run: Path) -> str:
    return (run.parents[2] / "log" / run.parent.name / run.name / "info.log").read_text()
