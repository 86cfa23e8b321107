"""saved/models/<name>/latest and `-r RUN_DIR`: what train.py and test.py make of a folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, read_csv, read_json, run_dirs, run_script, train

from utils.checkpoint_arg import newest_checkpoint, resolve_checkpoint_arg
from utils.errors import ConfigError
from utils.run_pointer import run_folders

DIGITS = REPO / "config/digits_mlp.json"
SHORT = ["trainer.epochs=2", "trainer.save_period=1"]


def pointer(save_dir: Path) -> str:
    return (save_dir / "models/digits_mlp/latest").read_text().strip()


@pytest.mark.slow
def test_latest_names_the_newest_run_and_both_scripts_take_it(save_dir):
    assert train("-c", DIGITS, *SHORT, save_dir=save_dir).returncode == 0
    assert train("-c", DIGITS, *SHORT, save_dir=save_dir).returncode == 0
    first, second = run_dirs(save_dir, "digits_mlp")
    assert run_folders(save_dir / "models/digits_mlp") == [first, second]
    assert pointer(save_dir) == second.name
    latest = save_dir / "models/digits_mlp/latest"

    for arg in (latest, latest / "model_best.pth"):
        r = run_script("test.py", "-r", arg)
        assert r.returncode == 0, r.stderr
        assert f"saved {second / 'test_metrics.json'}" in r.stdout
    assert f"checkpoint: {second / 'model_best.pth'}" in r.stdout
    assert read_json(second / "test_metrics.json")["accuracy"] > 0.5

    r = train("-r", latest, "trainer.epochs=3", save_dir=save_dir)  # the newest checkpoint
    assert r.returncode == 0, r.stderr
    assert f"resuming from {second / 'checkpoint-epoch2.pth'} (epoch 2)" in r.stdout
    assert run_dirs(save_dir, "digits_mlp") == [first, second]  # it went on in its own folder
    assert (second / "checkpoint-epoch3.pth").is_file()
    assert not (save_dir / "log/digits_mlp/latest").exists()

    r = train("-r", first, "trainer.epochs=3", save_dir=save_dir)  # a run folder
    assert r.returncode == 0, r.stderr
    assert f"resuming from {first / 'checkpoint-epoch2.pth'} (epoch 2)" in r.stdout
    assert pointer(save_dir) == first.name  # the run that went on last


@pytest.mark.slow
def test_a_run_folder_resumes_its_mid_epoch_interrupt_checkpoint(save_dir):
    args = [sys.executable, str(REPO / "train.py"), "-c", str(DIGITS), "trainer.epochs=3",
            "data_loader.args.batch_size=4", f"trainer.save_dir={save_dir}"]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = save_dir / "log/digits_mlp"
    deadline = time.time() + 120
    while time.time() < deadline and not (
            list(metrics.glob("*/metrics.csv")) and read_csv(next(metrics.glob("*/metrics.csv")))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    saved = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
    (run,) = run_dirs(save_dir, "digits_mlp")
    assert saved.parent == run and newest_checkpoint(run) == saved

    r = train("-r", save_dir / "models/digits_mlp/latest", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert f"resuming from {saved} (epoch " in r.stdout
    assert "epoch 3/3 " in r.stdout and not (run / "checkpoint-interrupted.pth").exists()


def fake(path: Path, epoch: int, batches_done: int | None = None) -> Path:
    partial = None if batches_done is None else {"epoch": epoch + 1, "batches_done": batches_done}
    torch.save({"epoch": epoch, "partial_epoch": partial}, path)
    return path


@pytest.mark.parametrize("periodic, interrupted, newest", [
    ([1, 2], (2, 5), "checkpoint-interrupted.pth"),   # 5 batches into epoch 3
    ([1, 4], (2, 5), "checkpoint-epoch4.pth"),        # a later epoch finished after it
    ([3], (3, 0), "checkpoint-epoch3.pth"),           # no further than epoch 3
    ([], (0, 7), "checkpoint-interrupted.pth"),       # stopped in the first epoch
    ([2, 10], None, "checkpoint-epoch10.pth"),        # by number, not by name
])
def test_newest_checkpoint_is_the_one_furthest_into_training(tmp_path, periodic, interrupted,
                                                              newest):
    for n in periodic:
        fake(tmp_path / f"checkpoint-epoch{n}.pth", n)
    if interrupted:
        fake(tmp_path / "checkpoint-interrupted.pth", *interrupted)
    assert newest_checkpoint(tmp_path) == tmp_path / newest
    assert resolve_checkpoint_arg(tmp_path) == tmp_path / newest
    (tmp_path / "model_best.pth").write_bytes(b"")
    assert resolve_checkpoint_arg(tmp_path, best=True) == tmp_path / "model_best.pth"
    assert resolve_checkpoint_arg(tmp_path) == tmp_path / newest  # train.py: not the best


def test_folders_and_pointers_without_a_checkpoint_say_so(tmp_path):
    models = tmp_path / "models" / "x"
    (models / "0101_000000_abcdef").mkdir(parents=True)
    (models / "latest").write_text("0101_000000_abcdef\n")
    with pytest.raises(ConfigError, match="the folder holds no checkpoint"):
        resolve_checkpoint_arg(models / "latest")
    with pytest.raises(ConfigError, match=r"it holds run folders; give one, or .*x/latest"):
        resolve_checkpoint_arg(models)
    (models / "latest").write_text("0202_000000_abcdef\n")
    with pytest.raises(ConfigError, match="names the run folder .*0202_000000_abcdef, which "
                                          "does not exist"):
        resolve_checkpoint_arg(models / "latest")
    assert resolve_checkpoint_arg(tmp_path / "no.pth") == tmp_path / "no.pth"  # a file as it is
    assert run_folders(models) == [models / "0101_000000_abcdef"]
