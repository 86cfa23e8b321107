"""Issue 25 (item 1), the contributor's acceptance test: in a copy of the repository, one new
file with a Callback subclass that keeps state, named in a config by its import path, trains;
a run stopped by SIGINT mid-epoch and resumed equals the unbroken run bit for bit (weights,
the callback's state, metrics.csv)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from conftest import ENV, assert_same_weights, copy_checkout, load, read_csv

# the one file a contributor adds (docs/callbacks.md shows the same shape)
LOSS_TRACKER = '''"""Counts optimizer steps and sums their losses; logs both per epoch."""

from base.base_callback import Callback


class LossTracker(Callback):
    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.steps, self.loss_sum = 0, 0.0

    def on_step_end(self, trainer, step, loss):
        self.steps += 1
        self.loss_sum += self.scale * loss.item()

    def on_epoch_end(self, trainer, epoch, log):
        log["steps_seen"] = self.steps
        log["loss_sum"] = self.loss_sum

    def state_dict(self):
        return {"steps": self.steps, "loss_sum": self.loss_sum}

    def load_state_dict(self, state):
        self.steps, self.loss_sum = state["steps"], state["loss_sum"]
'''
ARGS = ["-c", "config/digits_mlp.json", "arch.args.dropout=0.2", "data_loader.args.batch_size=2",
        "trainer.epochs=3", "trainer.save_period=100", "trainer.verbosity=1",
        "trainer.heartbeat_s=0.000000001",  # a progress line after every optimizer step
        "callbacks=[GradNorm, {type: loss_tracker.LossTracker, args: {scale: 0.5}}]"]


def command(repo: Path, save_dir: Path, *args) -> list[str]:
    return [sys.executable, str(repo / "train.py"), *map(str, args),
            f"trainer.save_dir={save_dir}"]


def run_dir(save_dir: Path) -> Path:
    [run] = [p for p in (save_dir / "models/digits_mlp").iterdir()
             if p.is_dir() and p.name != "latest"]
    return run


def rows(run: Path) -> list[dict]:
    csv = run.parents[2] / "log" / run.parent.name / run.name / "metrics.csv"
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_csv(csv)]


def interrupt_in_epoch_2(repo: Path, save_dir: Path) -> subprocess.CompletedProcess:
    """Start the run, send SIGINT once its progress line says epoch 2 is 20 batches in (the
    epoch has 630): it stops after the batch it is in, wherever the machine's speed put it."""
    proc = subprocess.Popen(command(repo, save_dir, *ARGS), cwd=repo, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line.startswith("epoch 2: batch 20/"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_one_new_file_adds_a_callback_that_resumes_exactly(tmp_path):
    repo = copy_checkout(tmp_path / "repo")
    (repo / "loss_tracker.py").write_text(LOSS_TRACKER)

    straight = subprocess.run(command(repo, tmp_path / "straight", *ARGS), cwd=repo, env=ENV,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    whole = run_dir(tmp_path / "straight")
    expected = rows(whole)
    assert [int(r["steps_seen"]) for r in expected] == [630, 1260, 1890]
    assert all(float(r["grad_norm"]) > 0 and float(r["loss_sum"]) > 0 for r in expected)

    cut = interrupt_in_epoch_2(repo, tmp_path / "cut")
    assert cut.returncode == 130, cut.stderr
    run = run_dir(tmp_path / "cut")
    stopped = load(run / "checkpoint-interrupted.pth")
    partial = stopped["partial_epoch"]
    assert partial["epoch"] == 2 and 20 <= partial["batches_done"] < 630, partial
    [grad_norm, tracker] = stopped["callbacks_state"]
    assert tracker == {"type": "loss_tracker.LossTracker",
                       "state": {"steps": 630 + partial["batches_done"],
                                 "loss_sum": tracker["state"]["loss_sum"]}}
    assert grad_norm["type"] == "GradNorm" and grad_norm["state"]["steps"] == \
        partial["batches_done"]  # the epoch's running sum, mid-epoch

    resumed = subprocess.run(command(repo, tmp_path / "cut", "-r",
                                     run / "checkpoint-interrupted.pth"),
                             cwd=repo, env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load(whole / "checkpoint-epoch3.pth"), load(run / "checkpoint-epoch3.pth")
    assert_same_weights(a["model_state_dict"], b["model_state_dict"])
    assert a["callbacks_state"] == b["callbacks_state"]
    assert rows(run) == expected  # grad_norm, steps_seen and loss_sum included
