"""What a person sees: the console of a default run, and the commands it ends with, pasted."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, REPO, copy_checkout, read_json

from logger.console import MAX_WIDTH, Heartbeat, epoch_line

# one worker runs this file's tests: its module fixtures train once (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("console")


def run_as_printed(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command line printed for a person, run as a shell would ('python' = this Python)."""
    argv = shlex.split(command)
    assert argv[0] == "python", command
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=300)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """`python train.py -c config/digits_mlp.json` in a copy of the checkout: (copy, lines)."""
    repo = copy_checkout(tmp_path_factory.mktemp("repo"))
    r = run_as_printed("python train.py -c config/digits_mlp.json", repo)
    assert r.returncode == 0, r.stderr
    return repo, r.stdout.splitlines()


@pytest.mark.slow
def test_default_run_prints_one_short_line_per_epoch(default_run):
    _, lines = default_run
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{e}/30" for e in range(1, 31)]
    assert all(len(line) <= MAX_WIDTH for line in lines), max(lines, key=len)
    assert all("val_top_k_acc" in line for line in epochs)  # every metric fits, every epoch
    assert "MLP(" not in "\n".join(lines)  # no model repr; the summary table only at verbosity 2
    assert not any(line.startswith("Model summary") for line in lines)
    assert not any("saved saved/" in line for line in lines)
    # the checkpoint note is folded into the epoch line: epoch 10 wrote checkpoint-epoch10.pth
    assert epochs[9].endswith("[ckpt+best]") and "ckpt" not in epochs[8]
    assert len(lines) <= 30 + 4  # run folder, logs, 30 epochs, evaluate, train longer
    fields = dict(zip(epochs[0].split()[2::2], epochs[0].split()[3::2]))
    assert {"loss", "val_loss", "val_accuracy", "lr"} <= set(fields)
    assert "accuracy" not in fields  # training metrics stay in metrics.csv
    numbers = [fields[k] for k in ("loss", "val_loss", "val_accuracy", "lr")]
    assert all(len(v.replace(".", "").lstrip("0")) <= 4 for v in numbers), numbers


@pytest.mark.slow
def test_the_final_commands_work_when_pasted(default_run):
    repo, lines = default_run
    evaluate = next(line for line in lines if line.startswith("evaluate:"))
    longer = next(line for line in lines if line.startswith("train longer:"))
    assert lines[-2:] == [evaluate, longer]
    test_cmd = evaluate.split(":", 1)[1].strip()
    assert test_cmd.startswith("python test.py -r saved/models/digits_mlp/")
    assert test_cmd.endswith("/model_best.pth")
    r = run_as_printed(test_cmd, repo)
    assert r.returncode == 0, r.stderr
    run_dir = repo / shlex.split(test_cmd)[-1].rsplit("/", 1)[0]
    assert (run_dir.parent / "latest").read_text() == f"{run_dir.name}\n"
    assert read_json(run_dir / "test_metrics.json")["accuracy"] > 0.9

    resume_cmd = longer.split(":", 1)[1].strip()
    assert resume_cmd == f"python train.py -r {run_dir.relative_to(repo)}/checkpoint-epoch30.pth" \
                         " trainer.epochs=60"
    r = run_as_printed(resume_cmd, repo)
    assert r.returncode == 0, r.stderr
    assert "epoch 31/60 " in r.stdout
    assert "nothing to train" not in r.stdout


def test_epoch_line_leaves_out_what_does_not_fit():
    row = {"epoch": 7, "loss": 0.123456, **{f"val_metric_number_{i}": 0.5 for i in range(9)},
           "lr": 0.001, "seconds": 1.5}
    line = epoch_line(row, 100, "val_metric_number_8", ("ckpt", "best"))
    assert len(line) <= MAX_WIDTH
    assert line.startswith("epoch 7/100  loss 0.1235  val_metric_number_8 0.5  val_metric_number_0")
    assert line.endswith("lr 0.001  1.50s  [ckpt+best]")


def test_heartbeat_prints_at_most_every_n_seconds_with_an_estimate(capsys):
    now = [0.0]
    beat = Heartbeat(100, "epoch 1", every_s=10, clock=lambda: now[0])
    for _ in range(40):  # 40 batches, 0.5 s each
        now[0] += 0.5
        beat.update()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["epoch 1: batch 20/100, 10s elapsed, ~40s left",
                     "epoch 1: batch 40/100, 20s elapsed, ~30s left"]


def test_a_run_whose_output_is_a_file_prints_heartbeat_lines(tmp_path):
    """A heartbeat interval of 1 ns is shorter than any batch, so each batch after the first
    prints one: the lines are there however fast the machine (the run ends on its own)."""
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        r = subprocess.run(
            [sys.executable, str(REPO / "train.py"), "-c", str(REPO / "config/digits_mlp.json"),
             "trainer.epochs=1", "trainer.heartbeat_s=0.000000001",
             f"trainer.save_dir={tmp_path / 'saved'}"],
            cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=300)
    text = log.read_text()
    assert r.returncode == 0, text[-2000:]
    beats = re.findall(r"^epoch 1: batch (\d+)/(\d+), \d+s elapsed, ~\d+s left$", text, re.M)
    assert beats and all(total == beats[0][1] for _, total in beats), text[-2000:]
