"""Issue 26, item 10: the "train longer" line a run ends with works when pasted, after a
OneCycleLR run (a new cycle from the weights) and after an early stop (trainer.early_stop=0).
"""

from __future__ import annotations

import re
import shlex

from conftest import REPO, run_dirs, run_script, train


def pasted(output: str, cwd) -> tuple[object, str]:
    """Run the printed "train longer:" command as a user pastes it; (result, the command)."""
    (line,) = re.findall(r"^train longer: (.*?)(?:  \(.*)?$", output, re.M)
    words = shlex.split(line)
    assert words[:2] == ["python", "train.py"], line
    return run_script("train.py", *words[2:], cwd=cwd), line


def test_train_longer_after_one_cycle_runs_a_new_cycle(tmp_path, save_dir):
    first = train("-c", REPO / "config/digits_onecycle.yaml", "trainer.epochs=1",
                  "trainer.tensorboard=false", save_dir=save_dir)
    assert first.returncode == 0, first.stderr
    again, line = pasted(first.stdout + first.stderr, REPO)
    assert again.returncode == 0, line + "\n" + again.stderr
    assert "total_steps=auto" in line and "Traceback" not in again.stderr
    assert "epoch 2/2" in again.stdout + again.stderr
    assert len(run_dirs(save_dir, "digits_onecycle")) == 2  # a new run, from the weights


def test_train_longer_after_an_early_stop_names_it_and_trains_on(tmp_path, save_dir):
    first = train("-c", REPO / "config/digits_mlp.yaml", "trainer.epochs=4",
                  "trainer.early_stop=1", "trainer.monitor=max val_loss",  # never improves
                  "trainer.tensorboard=false", save_dir=save_dir)
    out = first.stdout + first.stderr
    assert first.returncode == 0, first.stderr
    assert "early stop after epoch 2" in out
    again, line = pasted(out, REPO)
    assert "trainer.early_stop=0" in line and "(trainer.early_stop=1 stopped it" in out
    assert again.returncode == 0, line + "\n" + again.stderr
    both = again.stdout + again.stderr
    assert "epoch 3/4" in both and "epoch 4/4" in both
