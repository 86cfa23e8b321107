"""Issue 17 (first part): run folders that defend themselves: model_best.pth is a file of its
own, files follow the user's umask, config files with duplicate keys or runaway YAML aliases
are one-line errors, fine-tuning drops the optimizer state of reshaped parameters."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, load, only_run, run_dirs, train

DIGITS = REPO / "config/digits_mlp.json"
SHORT = ["trainer.epochs=3", "trainer.save_period=1", "trainer.early_stop=0"]


@pytest.mark.slow
def test_overwriting_model_best_in_place_leaves_every_checkpoint_intact(tmp_path):
    save = tmp_path / "saved"
    assert train("-c", DIGITS, *SHORT, save_dir=save).returncode == 0
    run = only_run(save, "digits_mlp")
    best = run / "model_best.pth"
    epochs = sorted(run.glob("checkpoint-epoch*.pth"))
    assert len(epochs) == 3 and all(os.stat(p).st_nlink == 1 for p in [best, *epochs])
    before = {p: p.read_bytes() for p in epochs}
    torch.save({"slim": torch.zeros(1)}, best)  # a user's script writes over it in place
    assert {p: p.read_bytes() for p in epochs} == before
    for p in epochs:
        assert load(p)["epoch"] in (1, 2, 3)
    r = train("-r", run / "checkpoint-epoch3.pth", "trainer.epochs=4", save_dir=save)
    assert r.returncode == 0, r.stderr


def test_files_follow_the_umask(tmp_path):
    save = tmp_path / "saved"
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(DIGITS), "trainer.epochs=1",
           f"trainer.save_dir={save}"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=ENV, timeout=300,
                       preexec_fn=lambda: os.umask(0o002))
    assert r.returncode == 0, r.stderr
    run = only_run(save, "digits_mlp")
    for name in ("checkpoint-epoch1.pth", "model_best.pth", "config.json"):
        mode = stat.S_IMODE(os.stat(run / name).st_mode)
        assert mode == 0o664, (name, oct(mode))


def run_config(tmp_path: Path, text: str, suffix: str = ".yaml") -> subprocess.CompletedProcess:
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    return subprocess.run([sys.executable, str(REPO / "train.py"), "-c", str(path),
                           f"trainer.save_dir={tmp_path / 'saved'}"], cwd=REPO,
                          capture_output=True, text=True, env=ENV, timeout=60)


def one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr
    return lines[0]


@pytest.mark.slow
def test_duplicate_keys_are_errors_naming_the_key_and_both_lines(tmp_path):
    yaml_text = (REPO / "config/digits_mlp.yaml").read_text() + "trainer: {epochs: 1}\n"
    first = next(i for i, line in enumerate(yaml_text.splitlines(), 1)
                 if line.startswith("trainer:"))
    last = len(yaml_text.splitlines())
    line = one_error(run_config(tmp_path, yaml_text))
    assert "duplicate key 'trainer'" in line and f"line {first}" in line and f"line {last}" in line
    json_text = '{\n  "name": "a",\n  "seed": 1,\n  "seed": 2\n}\n'
    line = one_error(run_config(tmp_path, json_text, ".json"))
    assert "duplicate key 'seed'" in line and "line 3" in line and "line 4" in line
    assert not (tmp_path / "saved").exists()


@pytest.mark.slow
def test_yaml_alias_bombs_and_recursive_aliases_are_errors(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    assert len(bomb) < 1500
    line = one_error(run_config(tmp_path, bomb))
    assert "alias" in line and "nodes" in line
    line = one_error(run_config(tmp_path, "a: &a [1, *a]\n"))
    assert "alias" in line
    assert not (tmp_path / "saved").exists()


@pytest.mark.slow
@pytest.mark.parametrize("change", [["arch.args.out_features=5", "data_loader.args.n_class=5"],
                                    ["arch.args.hidden=64"]])
def test_fine_tuning_a_new_head_or_width_trains(tmp_path, change):
    save = tmp_path / "saved"
    assert train("-c", DIGITS, "trainer.epochs=2", save_dir=save).returncode == 0
    ckpt = only_run(save, "digits_mlp") / "checkpoint-epoch2.pth"
    before = {d.name for d in run_dirs(save, "digits_mlp")}
    r = train("-c", DIGITS, "-r", ckpt, "trainer.epochs=4", *change, save_dir=save)
    assert r.returncode == 0, r.stderr
    assert "optimizer state dropped for" in r.stdout + r.stderr
    assert "output.weight" in r.stdout + r.stderr
    new = [d for d in run_dirs(save, "digits_mlp") if d.name not in before]
    assert len(new) == 1 and (new[0] / "checkpoint-epoch4.pth").is_file()
    assert load(new[0] / "checkpoint-epoch4.pth")["epoch"] == 4
