"""Issue 17: one writer per run folder, the data order of a mid-epoch checkpoint, a run's
config.json edited by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import torch
from conftest import ENV, REPO, load, only_run, train, tree_snapshot


def start(args, save):
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args),
                             f"trainer.save_dir={save}"], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_one_writer_per_run_folder_and_a_dead_holders_lock_is_taken_over(digits_one_epoch,
                                                                           tmp_path):
    save = shutil.copytree(digits_one_epoch, tmp_path / "saved")  # the shared one-epoch run
    run = only_run(save, "digits_mlp")
    args = ["-r", run / "checkpoint-epoch1.pth", "trainer.epochs=100000",
            "trainer.save_period=1", "trainer.early_stop=0"]
    procs = [start(args, save), start(args, save)]
    deadline = time.time() + 120
    while all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.05)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    _, err = loser.communicate()
    assert loser.returncode == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: {run} is being written by process {winner.pid} (one writer per run folder); "
        f"wait for it to finish or stop it")
    assert winner.poll() is None
    winner.kill()  # kill -9: the OS releases its lock
    winner.communicate()
    latest = max(int(p.stem.split("epoch")[1]) for p in run.glob("checkpoint-epoch*.pth"))
    r = train("-r", run / f"checkpoint-epoch{latest}.pth", f"trainer.epochs={latest + 1}",
              save_dir=save)
    assert r.returncode == 0, r.stderr
    assert only_run(save, "digits_mlp") == run
    assert load(run / f"checkpoint-epoch{latest + 1}.pth")["epoch"] == latest + 1
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_mid_epoch_checkpoint_refuses_another_data_order(digits_one_epoch, tmp_path):
    save = shutil.copytree(digits_one_epoch, tmp_path / "saved")  # the shared one-epoch run
    run = only_run(save, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch1.pth")
    assert ckpt["data_order"]["batch_size"] == 64 and ckpt["data_order"]["world_size"] == 1
    ckpt["partial_epoch"] = {"epoch": 2, "batches_done": 3, "stats": {}, "world_size": 1}
    torch.save(ckpt, run / "checkpoint-interrupted.pth")
    before = tree_snapshot(save)
    r = train("-r", run / "checkpoint-interrupted.pth", "data_loader.args.batch_size=32",
              "seed=7", save_dir=save)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "taken mid-epoch" in line
    assert "data_loader.args.batch_size 64 -> 32" in line and "seed 42 -> 7" in line
    assert "shuffle" not in line
    r = train("-r", run / "checkpoint-interrupted.pth", "trainer.len_epoch=5",
              "+data_loader.args.sampler=balanced", save_dir=save)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "trainer.len_epoch None -> 5" in line
    assert "data_loader.args.sampler False -> True" in line
    assert tree_snapshot(save) == before
    # an epoch checkpoint may change it: a warning, and the run goes on
    r = train("-r", run / "checkpoint-epoch1.pth", "data_loader.args.batch_size=32",
              "--dry-run", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert "warning: the data order changes from epoch 2 on: data_loader.args.batch_size " \
           "64 -> 32" in r.stdout + r.stderr


@pytest.mark.slow
def test_resume_refuses_an_edited_config_json(digits_one_epoch, tmp_path):
    save = shutil.copytree(digits_one_epoch, tmp_path / "saved")  # the shared one-epoch run
    run = only_run(save, "digits_mlp")
    original = (run / "config.json").read_text()
    (run / "config.json").write_text(original.replace('"lr": 0.001', '"lr": 0.002'))
    before = tree_snapshot(save)
    r = train("-r", run / "checkpoint-epoch1.pth", "trainer.epochs=2", save_dir=save)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "config.json was edited" in line and "optimizer.args.lr" in line and "-c " in line
    assert tree_snapshot(save) == before
    (run / "config.json").write_text(original)  # restored: the resume goes on
    r = train("-r", run / "checkpoint-epoch1.pth", "trainer.epochs=2", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert load(run / "checkpoint-epoch2.pth")["epoch"] == 2
