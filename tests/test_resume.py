"""Issue 9: exact resume and crash safety."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    ENV,
    REPO,
    assert_same_weights,
    load,
    only_run,
    read_csv,
    run_dirs,
    train,
    tree_snapshot,
)

from utils.errors import RunError

DIGITS = REPO / "config/digits_mlp.json"
# shuffling, dropout and a scheduler all on
EXACT = ["arch.args.dropout=0.2", "lr_scheduler.args.step_size=2", "lr_scheduler.args.gamma=0.5",
         "trainer.save_period=1", "trainer.verbosity=1"]


def log_dir(run):
    return run.parents[2] / "log" / run.parent.name / run.name


def rows_without_seconds(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(log_dir(run) /
                                                                             "metrics.csv")]


def latest_checkpoint(run):
    found = sorted(run.glob("checkpoint-epoch*.pth"), key=lambda p: int(p.stem.split("epoch")[1]))
    return found[-1] if found else None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_is_bit_identical(tmp_path, workers):
    common = [*EXACT, f"data_loader.args.num_workers={workers}"]
    straight_dir, short_dir = tmp_path / "straight", tmp_path / "short"
    r = train("-c", DIGITS, *common, "trainer.epochs=5", save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(straight_dir, "digits_mlp")
    final = load(straight / "checkpoint-epoch5.pth")

    # k = 2: train 2 epochs, then resume to 5 (continues in the same run folder)
    r = train("-c", DIGITS, *common, "trainer.epochs=2", save_dir=short_dir)
    assert r.returncode == 0, r.stderr
    short = only_run(short_dir, "digits_mlp")
    r = train("-r", short / "checkpoint-epoch2.pth", "trainer.epochs=5", save_dir=short_dir)
    assert r.returncode == 0, r.stderr
    assert_same_weights(final["model_state_dict"], load(short / "checkpoint-epoch5.pth")
                        ["model_state_dict"])
    assert rows_without_seconds(short) == rows_without_seconds(straight)

    # k = 4, from the straight run's own checkpoint: a new run folder, the old one untouched
    before = tree_snapshot(straight)
    r = train("-r", straight / "checkpoint-epoch4.pth", save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    assert "leaves it untouched" in r.stdout
    assert tree_snapshot(straight) == before
    branch = [p for p in run_dirs(straight_dir, "digits_mlp") if p != straight]
    assert len(branch) == 1
    resumed = load(branch[0] / "checkpoint-epoch5.pth")
    assert_same_weights(final["model_state_dict"], resumed["model_state_dict"])
    assert_same_weights(final["optimizer_state_dict"]["state"][0],
                        resumed["optimizer_state_dict"]["state"][0])
    assert rows_without_seconds(branch[0]) == rows_without_seconds(straight)


def test_checkpoint_holds_generator_states_as_plain_data(digits_one_epoch):
    # the shared one-epoch run of config/digits_mlp.json (tests/conftest.py)
    ckpt = load(only_run(digits_one_epoch, "digits_mlp") / "checkpoint-epoch1.pth")
    assert set(ckpt["rng_state"]) >= {"python", "numpy", "torch"}
    assert ckpt["lr_scheduler_state_dict"]["last_epoch"] == 1
    assert ckpt["early_stop_count"] == 0 and ckpt["partial_epoch"] is None


def test_atomic_save_leaves_previous_file_on_failure(tmp_path, monkeypatch):
    from utils import checkpoint, files

    path = tmp_path / "checkpoint-epoch1.pth"
    checkpoint.save_atomic({"w": torch.arange(10)}, path)

    def crash_mid_write(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    def crash_at_fsync(fd):
        raise OSError("disk full")

    with monkeypatch.context() as m:  # the serialization fails
        m.setattr(checkpoint.torch, "save", crash_mid_write)
        with pytest.raises(OSError):
            checkpoint.save_atomic({"w": torch.zeros(10)}, path)
    with monkeypatch.context() as m:  # the write reaches the disk only in part
        m.setattr(files.os, "fsync", crash_at_fsync)  # utils/files.py writes the bytes
        with pytest.raises(RunError, match="checkpoint-epoch1.pth: disk full"):
            checkpoint.save_atomic({"w": torch.zeros(10)}, path, tmp_path / "model_best.pth")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(10))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def start(args, save_dir):
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args),
                             f"trainer.save_dir={save_dir}"], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


SLOW = [*EXACT, "data_loader.args.batch_size=4", "trainer.save_period=100", "trainer.epochs=3"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGUSR1, 138)])
def test_interrupt_mid_epoch_saves_and_resumes_exactly(tmp_path, sig, code):
    straight_dir, cut_dir = tmp_path / "straight", tmp_path / "cut"
    r = train("-c", DIGITS, *SLOW, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(straight_dir, "digits_mlp")

    proc = start(["-c", DIGITS, *SLOW], cut_dir)
    metrics = lambda: list((cut_dir / "log/digits_mlp").glob("*/metrics.csv"))  # noqa: E731
    assert wait_for(lambda: metrics() and len(read_csv(metrics()[0])) >= 1)
    time.sleep(random.Random(sig).uniform(0.05, 0.2))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    run = only_run(cut_dir, "digits_mlp")
    ckpt_path = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
    assert ckpt_path.parent == run and ckpt_path.exists(), (out, err)
    ckpt = load(ckpt_path)
    if ckpt_path.name == "checkpoint-interrupted.pth":  # the usual case: stopped mid-epoch
        partial = ckpt["partial_epoch"]
        assert partial["epoch"] == ckpt["epoch"] + 1 and partial["batches_done"] > 0
        assert f"after {partial['batches_done']} batches" in out + err
    else:  # the signal came during validation: the finished epoch was saved
        assert ckpt["partial_epoch"] is None

    r = train("-r", ckpt_path, save_dir=cut_dir)
    assert r.returncode == 0, r.stderr
    assert only_run(cut_dir, "digits_mlp") == run
    assert_same_weights(load(straight / "checkpoint-epoch3.pth")["model_state_dict"],
                        load(run / "checkpoint-epoch3.pth")["model_state_dict"])
    assert rows_without_seconds(run) == rows_without_seconds(straight)
    assert not (run / "checkpoint-interrupted.pth").exists()  # superseded by later checkpoints


@pytest.mark.slow
def test_second_ctrl_c_aborts_at_once(tmp_path):
    proc = start(["-c", DIGITS, *SLOW, "trainer.save_period=1"], tmp_path)
    assert wait_for(lambda: list(tmp_path.glob("models/digits_mlp/*/checkpoint-epoch1.pth")))
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = only_run(tmp_path, "digits_mlp")
    assert load(latest_checkpoint(run))["epoch"] >= 1  # the previous checkpoint is intact


@pytest.mark.slow
def test_nan_loss_stops_with_error_and_keeps_checkpoints(tmp_path):
    r = train("-c", DIGITS, "trainer.epochs=2", "trainer.save_period=1", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path, "digits_mlp")
    before = tree_snapshot(run)
    r = train("-r", run / "checkpoint-epoch2.pth", "trainer.epochs=4", "optimizer.args.lr=1e38",
              "arch.args.activation=ReLU", save_dir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: non-finite loss")
    assert "epoch 3, batch" in r.stderr and "Traceback" not in r.stderr
    after = tree_snapshot(run)
    for name in ("checkpoint-epoch1.pth", "checkpoint-epoch2.pth", "model_best.pth"):
        assert after[name] == before[name]
    assert "checkpoint-epoch3.pth" not in after


@pytest.mark.slow
def test_keep_last_bounds_periodic_checkpoints(tmp_path):
    r = train("-c", DIGITS, "trainer.epochs=5", "trainer.save_period=1", "trainer.keep_last=2",
              save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path, "digits_mlp")
    assert sorted(p.name for p in run.glob("checkpoint-*.pth")) == [
        "checkpoint-epoch4.pth", "checkpoint-epoch5.pth"]
    assert (run / "model_best.pth").exists()


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_a_checkpoint(tmp_path):
    args = [*EXACT, "data_loader.args.batch_size=16", "trainer.epochs=8"]
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    r = train("-c", DIGITS, *args, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    expected = load(only_run(straight_dir, "digits_mlp") / "checkpoint-epoch8.pth")

    rng = random.Random(1234)
    cmd = ["-c", DIGITS, *args]
    for _ in range(3):
        proc = start(cmd, killed_dir)
        assert wait_for(lambda p=proc: p.poll() is not None or (
            killed_dir.exists() and list(killed_dir.glob("models/digits_mlp/*/checkpoint-*.pth"))))
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.communicate()
        run = only_run(killed_dir, "digits_mlp")
        latest = latest_checkpoint(run)
        ckpt = load(latest)  # always loadable
        if ckpt["epoch"] == 8:
            break
        cmd = ["-r", latest]
    run = only_run(killed_dir, "digits_mlp")
    if load(latest_checkpoint(run))["epoch"] < 8:
        r = train("-r", latest_checkpoint(run), save_dir=killed_dir)
        assert r.returncode == 0, r.stderr
    assert_same_weights(expected["model_state_dict"],
                        load(run / "checkpoint-epoch8.pth")["model_state_dict"])
    assert [int(r["epoch"]) for r in read_csv(log_dir(run) / "metrics.csv")] == list(range(1, 9))


def test_stale_temporary_files_do_not_break_resume(digits_one_epoch, tmp_path):
    shutil.copytree(digits_one_epoch, tmp_path, dirs_exist_ok=True)  # the shared run stays
    run = only_run(tmp_path, "digits_mlp")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # a writer that died
    (run / f".checkpoint-epoch2.pth.{dead}-abc.tmp").write_bytes(b"partial")
    r = train("-r", run / "checkpoint-epoch1.pth", "trainer.epochs=2", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load(run / "checkpoint-epoch2.pth")["epoch"] == 2
    assert os.path.exists(run / "checkpoint-epoch1.pth")
    assert not list(run.glob(".*.tmp"))
