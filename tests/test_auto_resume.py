"""Issue 15: `train.py -c CFG --resume auto` continues this config's newest checkpoint or starts
fresh, a finished run is not trained again, a changed config is refused unless
--allow-changed; stop signals are honoured during validation too."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess

import pytest
from conftest import REPO, assert_same_weights, load, only_run, read_csv, read_json, run_dirs

DIGITS = REPO / "config/digits_mlp.json"


def script_main(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def train(capsys):
    """train.py's main() run here (no start-up cost per command), as a CompletedProcess."""
    main = script_main("train")

    def run(*args, save_dir):
        capsys.readouterr()
        code = main([*map(str, args), f"trainer.save_dir={save_dir}"])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run


def decision(result) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("--resume auto:")]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.mark.slow
def test_auto_starts_fresh_then_finishes_and_refuses_a_changed_config(tmp_path, train):
    save = tmp_path / "saved"
    r = train("-c", DIGITS, "--resume", "auto", "trainer.epochs=2", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert decision(r) == "--resume auto: no resumable run of digits_mlp: starting fresh"
    run = only_run(save, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch2.pth")
    assert len(ckpt["config_hash"]) == 64

    r = train("-c", DIGITS, "-r", "auto", "trainer.epochs=2", save_dir=save)  # requeued
    assert r.returncode == 0, r.stderr
    assert decision(r) == (f"--resume auto: digits_mlp is finished (epoch 2 of 2 done, "
                           f"{run / 'checkpoint-epoch2.pth'}): nothing to train")
    assert only_run(save, "digits_mlp") == run and not (run / "checkpoint-epoch3.pth").exists()

    r = train("-c", DIGITS, "-r", "auto", "trainer.epochs=3", "--lr", "0.002", save_dir=save)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "--allow-changed" in line
    assert "(the keys that differ: optimizer.args.lr, trainer.epochs)" in line
    assert not (run / "checkpoint-epoch3.pth").exists()

    r = train("-c", DIGITS, "-r", "auto", "trainer.epochs=3", "--allow-changed", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert decision(r) == f"--resume auto: resuming {run / 'checkpoint-epoch2.pth'} (epoch 2)"
    assert only_run(save, "digits_mlp") == run
    assert load(run / "checkpoint-epoch3.pth")["config"]["trainer"]["epochs"] == 3
    assert read_json(run / "config.json")["trainer"]["epochs"] == 3

    r = train("-r", "auto", save_dir=save)
    assert r.returncode == 2 and r.stderr.startswith("error: --resume auto needs -c")


@pytest.mark.slow
def test_auto_takes_the_run_furthest_into_training_not_the_newest_file(tmp_path, train):
    save = tmp_path / "saved"
    r = train("-c", DIGITS, "trainer.epochs=4", "trainer.save_period=1", save_dir=save)
    assert r.returncode == 0, r.stderr
    ahead = only_run(save, "digits_mlp")
    behind = ahead.parent / "0000_000000_behind"
    shutil.copytree(ahead, behind)
    (ahead / "checkpoint-epoch4.pth").unlink()  # ahead: epoch 3; behind: epoch 2, newer files
    for n in (3, 4):
        (behind / f"checkpoint-epoch{n}.pth").unlink()
    for run in (ahead, behind):  # at epoch 4 it would be the furthest (written before epoch 4's)
        (run / "model_best.pth").unlink()
    (behind / "checkpoint-epoch2.pth").touch()
    (ahead.parent / "latest").write_text(behind.name)  # a pointer file is not a run folder
    (save / "models/digits_mlp/empty_run").mkdir()  # a run killed before its first checkpoint
    other = train("-c", DIGITS, "trainer.epochs=1", "seed=1", save_dir=save)  # another config
    assert other.returncode == 0, other.stderr

    r = train("-c", DIGITS, "-r", "auto", "trainer.epochs=4", "trainer.save_period=1",
              save_dir=save)
    assert r.returncode == 0, r.stderr
    assert decision(r) == f"--resume auto: resuming {ahead / 'checkpoint-epoch3.pth'} (epoch 3)"
    assert (ahead / "checkpoint-epoch4.pth").is_file()
    assert len(run_dirs(save, "digits_mlp")) == 4  # ahead, behind, empty, other: no new one


def test_allow_changed_resumes_with_an_edited_config_json(tmp_path, train):
    save = tmp_path / "saved"
    assert train("-c", DIGITS, "trainer.epochs=1", save_dir=save).returncode == 0
    run = only_run(save, "digits_mlp")
    path = run / "config.json"
    path.write_text(path.read_text().replace('"epochs": 1', '"epochs": 2'))
    r = train("-r", run / "checkpoint-epoch1.pth", save_dir=save)
    assert r.returncode == 2 and "add --allow-changed" in r.stderr
    r = train("-r", run / "checkpoint-epoch1.pth", "--allow-changed", save_dir=save)
    assert r.returncode == 0, r.stderr
    ckpt = load(run / "checkpoint-epoch2.pth")  # the edit took effect
    assert ckpt["config"]["trainer"]["epochs"] == 2 and ckpt["epoch"] == 2


# ---------------------------------------------------------------- preemption, requeued blindly

# shuffling, dropout and a scheduler on; small batches and a large validation split, so that
# every start below is stopped at a batch chosen in advance (a real SIGUSR1, sent to this
# process from inside the model's forward: deterministic, unlike a timer)
PREEMPTED = ["arch.args.dropout=0.2", "lr_scheduler.args.step_size=1",
             "lr_scheduler.args.gamma=0.5", "data_loader.args.batch_size=32",
             "data_loader.args.validation_split=0.4", "trainer.epochs=3",
             "trainer.save_period=100", "trainer.verbosity=1"]


@pytest.fixture
def usr1_at(monkeypatch):
    """usr1_at(mode, n): SIGUSR1 during the n-th forward call in `mode` (train or eval) of
    the next start."""
    from model.model import MLP

    forward = MLP.forward
    target = {}

    def counting(self, *args):
        mode = "train" if self.training else "eval"
        target[mode] = target.get(mode, 0) + 1
        if target.get(f"at_{mode}") == target[mode]:
            os.kill(os.getpid(), signal.SIGUSR1)
        return forward(self, *args)

    monkeypatch.setattr(MLP, "forward", counting)

    def arm(mode: str, n: int) -> None:
        target.clear()
        target[f"at_{mode}"] = n
    return arm


@pytest.mark.slow
def test_resume_auto_requeued_after_sigusr1_equals_an_unbroken_run(tmp_path, train, usr1_at):
    straight_dir, save = tmp_path / "straight", tmp_path / "saved"
    r = train("-c", DIGITS, *PREEMPTED, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(straight_dir, "digits_mlp")
    n_train = len(read_csv(log_dir(straight) / "metrics.csv"))
    assert n_train == 3

    # 720 training samples and 718 validation samples: 23 batches of each an epoch
    # counts are per start: the third start trains no batch of epoch 2, only validates it
    starts = [("train", 7), ("eval", 23 + 5), ("train", 3), (None, 0)]
    taken = []
    for mode, n in starts:
        usr1_at(mode, n)
        r = train("-c", DIGITS, "--resume", "auto", *PREEMPTED, save_dir=save)
        taken.append(decision(r))
        assert r.returncode == (138 if mode else 0), r.stdout + r.stderr
    run = only_run(save, "digits_mlp")
    interrupted = run / "checkpoint-interrupted.pth"
    assert taken == [
        "--resume auto: no resumable run of digits_mlp: starting fresh",
        f"--resume auto: resuming {interrupted} (epoch 0, 7 batches into epoch 1)",
        f"--resume auto: resuming {interrupted} (epoch 1, epoch 2 trained, stopped in its "
        f"validation)",
        f"--resume auto: resuming {interrupted} (epoch 2, 3 batches into epoch 3)"]
    log = (log_dir(run) / "info.log").read_text()
    assert "stopped in epoch 2 after 23 batches, in its validation (rerun on resume)" in log
    assert [line.split(" INFO ", 1)[1] for line in log.splitlines()
            if " INFO --resume auto:" in line] == taken

    final, expected = load(run / "checkpoint-epoch3.pth"), load(straight / "checkpoint-epoch3.pth")
    assert_same_weights(expected["model_state_dict"], final["model_state_dict"])
    assert_same_weights(expected["optimizer_state_dict"]["state"][0],
                        final["optimizer_state_dict"]["state"][0])
    assert rows(run) == rows(straight)
    assert not interrupted.exists()

    r = train("-c", DIGITS, "--resume", "auto", *PREEMPTED, save_dir=save)  # requeued once more
    assert r.returncode == 0 and "is finished (epoch 3 of 3 done" in decision(r)
    assert rows(run) == rows(straight)


def log_dir(run):
    return run.parents[2] / "log" / run.parent.name / run.name


def rows(run):
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_csv(log_dir(run) / "metrics.csv")]


def test_a_stop_signal_ends_a_test_pass_within_a_batch(tmp_path, train, usr1_at, capsys):
    save = tmp_path / "saved"
    assert train("-c", DIGITS, "trainer.epochs=1", save_dir=save).returncode == 0
    run = only_run(save, "digits_mlp")
    test_main = script_main("test")
    usr1_at("eval", 3)
    assert test_main(["-r", str(run / "model_best.pth")]) == 138
    assert "interrupted by SIGUSR1: the test pass stopped; nothing written" in \
        capsys.readouterr().err
    assert not (run / "test_metrics.json").exists()
    usr1_at(None, 0)
    assert test_main(["-r", str(run / "model_best.pth")]) == 0
    assert set(read_json(run / "test_metrics.json")) == {"loss", "accuracy", "top_k_acc"}
