"""Issue 15: `train.py -c CFG --resume auto` continues this config's newest checkpoint or starts
fresh, a finished run is not trained again, a changed config is refused unless
--allow-changed; stop signals are honoured during validation too."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest
from conftest import REPO, load, only_run, read_json, run_dirs

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
    assert len(run_dirs(save, "digits_mlp")) == 5  # and no new run folder


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
