"""Issue 24: a checkpoint, a run folder, a sweep record or an export is data. Nothing the user
did not write on the command line runs, is written through a link planted there, or leaves a
stale best model behind. Every case goes through the real entry points (train.py, test.py,
api.py as subprocesses)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, load, only_run, run_script, train

from utils.best_model import best_epoch
from utils.checkpoint_arg import newest_checkpoint

DIGITS = REPO / "config/digits_mlp.json"

# --- planted links, model_best after a kill, checkpoint size (items 2, 3, 8)

VICTIM_TEXT = "a file outside the run folder\n"


def digits_run(save: Path, *overrides: str) -> Path:
    """save_dir of a digits run with `overrides`, trained there."""
    r = train("-c", DIGITS, *overrides, save_dir=save)
    assert r.returncode == 0, r.stderr
    return save


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory) -> Path:
    """save_dir of a one-epoch digits run: the cases copy it."""
    return digits_run(tmp_path_factory.mktemp("one_epoch") / "saved", "trainer.epochs=1")


def copied_run(one_epoch: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(save_dir, run folder, log folder) of a copy of the one-epoch run."""
    save = tmp_path / "saved"
    shutil.copytree(one_epoch, save)
    run = only_run(save, "digits_mlp")
    return save, run, save / "log" / "digits_mlp" / run.name


def plant(place: Path, victims: Path, hard: bool = False) -> Path:
    """A link at `place` (replacing the file there) to a victim file outside the run."""
    victim = victims / place.name
    victim.write_text(VICTIM_TEXT)
    place.unlink(missing_ok=True)
    (os.link if hard else os.symlink)(victim, place)
    return victim


def assert_replaced(places: dict[Path, Path]) -> None:
    """Each victim is unchanged; each planted place now holds a regular file of its own."""
    for place, victim in places.items():
        assert victim.read_text() == VICTIM_TEXT, victim
        assert not place.is_symlink() and place.is_file(), place
        assert place.stat().st_nlink == 1 and place.stat().st_ino != victim.stat().st_ino, place


def test_links_planted_in_run_and_log_folders_are_replaced_not_followed(one_epoch, tmp_path):
    save, run, log = copied_run(one_epoch, tmp_path)
    victims = tmp_path / "victims"
    victims.mkdir()
    places = {p: plant(p, victims) for p in (log / "metrics.csv", run / "test_metrics.json",
                                             run / "confusion_matrix.csv",
                                             run / "classification_report.json",
                                             run / "confusion_matrix.png",
                                             run / "predictions.csv")}
    (victims / "hard").mkdir()
    places[log / "info.log"] = plant(log / "info.log", victims / "hard", hard=True)

    r = train("-r", run, "trainer.epochs=2", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert only_run(save, "digits_mlp") == run
    assert run_script("test.py", "-r", run).returncode == 0
    r = run_script("test.py", "-r", run, "--predict")
    assert r.returncode == 0, r.stderr
    assert_replaced(places)
    assert (log / "metrics.csv").read_text().count("\n") == 3  # header and two epochs
    assert "resuming from" in (log / "info.log").read_text()
    assert (run / "predictions.csv").read_text().startswith("index,target,prediction")


def test_tensorboard_event_files_carry_a_random_suffix(tmp_path):
    """TensorBoard creates its event file itself: a random suffix in its name means no link
    planted in the log folder beforehand can be named after it."""
    save = digits_run(tmp_path / "saved", "trainer.epochs=1", "trainer.tensorboard=true")
    log = next((save / "log" / "digits_mlp").iterdir())
    events = list(log.glob("events.out.tfevents.*"))
    assert len(events) == 1 and len(events[0].name.rsplit(".", 1)[-1]) == 12, events


def test_a_lock_file_planted_as_a_link_is_refused(one_epoch, tmp_path):
    save, run, _ = copied_run(one_epoch, tmp_path)
    victims = tmp_path / "victims"
    victims.mkdir()
    victim = plant(run / ".lock", victims)
    r = train("-r", run, "trainer.epochs=2", save_dir=save)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(run / ".lock") in lines[0] and "link" in lines[0], r.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert not (run / "checkpoint-epoch2.pth").exists()


def history_best(path: Path) -> int:
    named = best_epoch(load(path))
    assert named is not None, path
    return named[0]


def assert_best_is_true(run: Path) -> int:
    """model_best.pth holds the epoch the run's newest checkpoint's history names best."""
    newest = newest_checkpoint(run)
    best = history_best(newest)
    assert load(run / "model_best.pth")["epoch"] == best, (newest, best)
    return best


def test_sigkill_right_after_a_checkpoint_leaves_model_best_true(tmp_path):
    """kill -9 as soon as checkpoint-epoch2.pth appears (polled, bounded): model_best.pth is
    the best epoch the newest checkpoint names; so after a resume, and for test.py."""
    save = tmp_path / "saved"
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(DIGITS), "trainer.epochs=30",
           "trainer.save_period=1", "trainer.early_stop=0", f"trainer.save_dir={save}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(save.glob("models/digits_mlp/*/checkpoint-epoch2.pth")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint-epoch2.pth within 240 s"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    run = only_run(save, "digits_mlp")
    assert_best_is_true(run)

    epochs = load(newest_checkpoint(run))["epoch"] + 1
    r = run_script("train.py", "-r", run, f"trainer.epochs={epochs}")
    assert r.returncode == 0, r.stderr
    best = assert_best_is_true(run)
    r = run_script("test.py", "-r", save / "models" / "digits_mlp" / "latest")
    assert r.returncode == 0, r.stderr
    assert f"checkpoint: {run / 'model_best.pth'}" in r.stdout
    assert load(run / "model_best.pth")["epoch"] == best


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory) -> Path:
    """save_dir of a 3-epoch digits run monitoring the training loss upwards (so epoch 1 is
    best), a checkpoint every epoch."""
    return digits_run(tmp_path_factory.mktemp("three") / "saved", "trainer.epochs=3",
                      "trainer.save_period=1", "trainer.monitor=max loss")


def test_a_kill_between_model_best_and_the_epoch_checkpoint_resumes_from_model_best(
        tmp_path):
    """model_best.pth is written first: killed before checkpoint-epoch3.pth was, the run goes
    on from model_best.pth (epoch 3), in its own folder."""
    save = digits_run(tmp_path / "saved", "trainer.epochs=3", "trainer.save_period=1",
                      "trainer.monitor=min loss")
    run = only_run(save, "digits_mlp")
    assert history_best(run / "checkpoint-epoch3.pth") == 3  # the training loss falls
    (run / "checkpoint-epoch3.pth").unlink()  # as if killed right after model_best.pth
    r = run_script("train.py", "-r", run, "trainer.epochs=4")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {run / 'model_best.pth'} (epoch 3)" in r.stdout
    assert only_run(save, "digits_mlp") == run
    assert load(run / "checkpoint-epoch4.pth")["epoch"] == 4
    assert_best_is_true(run)


def test_a_stale_model_best_is_repaired_on_resume_and_by_test(three_epochs, tmp_path):
    """A model_best.pth older than the epoch the history names best (a kill between the two
    writes of an older version) is copied again from that epoch's checkpoint by train.py -r
    of the finished run ("nothing to train") and by test.py; when that checkpoint is gone,
    both say so."""
    save = tmp_path / "saved"
    shutil.copytree(three_epochs, save)
    run = only_run(save, "digits_mlp")
    assert history_best(run / "checkpoint-epoch3.pth") == 1  # max loss: the first epoch
    stale = (run / "checkpoint-epoch2.pth").read_bytes()

    (run / "model_best.pth").write_bytes(stale)
    r = train("-r", run, save_dir=save)
    assert r.returncode == 0, r.stderr
    assert "nothing to train" in r.stdout and "repaired" in r.stdout + r.stderr
    assert (run / "model_best.pth").read_bytes() == (run / "checkpoint-epoch1.pth").read_bytes()

    (run / "model_best.pth").write_bytes(stale)
    r = run_script("test.py", "-r", save / "models" / "digits_mlp" / "latest")
    assert r.returncode == 0, r.stderr
    assert "repaired" in r.stderr and load(run / "model_best.pth")["epoch"] == 1

    (run / "model_best.pth").write_bytes(stale)
    (run / "checkpoint-epoch1.pth").unlink()  # as trainer.keep_last would
    r = run_script("test.py", "-r", run)
    assert r.returncode == 0, r.stderr
    assert "checkpoint-epoch1.pth is gone" in r.stderr and "keep_last" in r.stderr


def test_a_best_model_planted_as_a_link_to_dev_zero_is_replaced_by_the_best_epoch(
        one_epoch, tmp_path):
    save, run, _ = copied_run(one_epoch, tmp_path)
    (run / "model_best.pth").unlink()
    (run / "model_best.pth").symlink_to("/dev/zero")
    r = run_script("test.py", "-r", run)
    assert r.returncode == 0, r.stderr
    assert "repaired" in r.stderr
    assert not (run / "model_best.pth").is_symlink()
    assert (run / "model_best.pth").read_bytes() == (run / "checkpoint-epoch1.pth").read_bytes()


def deflated(source: Path, dest: Path) -> None:
    """`source` (a zip written by torch.save) with every entry recompressed with deflate."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), compresslevel=9)


def peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """test.py run from a small wrapper that reports the child's peak resident memory."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "file=sys.stderr); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, str(REPO / "test.py"),
                        *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    return r, int(r.stderr.strip().splitlines()[-1]) / 1024


def test_a_deflate_recompressed_checkpoint_is_refused_before_loading(one_epoch, tmp_path):
    """A checkpoint holding 64 MB of zeros, deflated to a few hundred KB: refused on its
    central directory (exit 2, one line naming it), with no more memory than a plain test."""
    ckpt = load(next(one_epoch.glob("models/digits_mlp/*/checkpoint-epoch1.pth")))
    ckpt["model_state_dict"]["padding"] = torch.zeros(16 * 2**20)
    torch.save(ckpt, tmp_path / "big.pth")
    deflated(tmp_path / "big.pth", tmp_path / "bomb.pth")
    (tmp_path / "big.pth").unlink()
    size = (tmp_path / "bomb.pth").stat().st_size
    assert size < 2**20
    r, bomb_mb = peak_rss_mb("-r", str(tmp_path / "bomb.pth"))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(tmp_path / "bomb.pth") in lines[0], r.stderr
    assert "uncompressed" in lines[0] and "10x" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "test_metrics.json").exists()
    plain = next(one_epoch.glob("models/digits_mlp/*/checkpoint-epoch1.pth"))
    shutil.copy(plain, tmp_path / "plain.pth")
    r, plain_mb = peak_rss_mb("-r", str(tmp_path / "plain.pth"))
    assert r.returncode == 0, r.stderr
    assert bomb_mb < plain_mb + 32, (bomb_mb, plain_mb)
