"""Issue 14 (item 6): train.py --find-lr [--apply], the LR range test."""

from __future__ import annotations

import math
import re
import shutil
import sys

import numpy as np
import pytest
from conftest import REPO, read_csv, run_script

from trainer.run.lr_finder import (
    END_LR,
    START_LR,
    SWEEP_STEPS,
    apply_lr,
    check_plotting,
    lr_schedule,
    smooth,
    suggest,
)
from utils.config_io import read_config_file
from utils.errors import ConfigError


def test_find_lr_on_digits_suggests_writes_and_applies(tmp_path):
    shutil.copy(REPO / "config/digits_mlp.yaml", tmp_path / "digits.yaml")
    before = (tmp_path / "digits.yaml").read_text()
    r = run_script("train.py", "-c", "digits.yaml", "--find-lr", "--apply",
                   f"trainer.save_dir={tmp_path / 'saved'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lr = float(re.search(r"^suggested lr: (\S+)$", r.stdout, re.M).group(1))
    assert 1e-4 < lr < 1
    assert not (tmp_path / "saved").exists()  # no run folder, no log folder
    assert (tmp_path / "digits.yaml").read_text() == before  # the config untouched

    rows = read_csv(tmp_path / "lr_find.csv")
    assert list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"]
    lrs = [float(row["lr"]) for row in rows]
    assert 20 < len(rows) <= SWEEP_STEPS and lrs[0] == START_LR
    assert all(b > a for a, b in zip(lrs, lrs[1:], strict=False))  # exponential: increasing
    assert lrs[0] < lr < lrs[-1]
    from matplotlib.image import imread
    image = imread(tmp_path / "lr_find.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas

    applied = tmp_path / "digits_lr.yaml"
    assert f"wrote {applied.name}" in r.stdout
    assert applied.read_text().splitlines()[0] == before.splitlines()[0]  # the schema line
    assert before.startswith("# yaml-language-server: $schema=")
    new, old = read_config_file(applied), read_config_file(tmp_path / "digits.yaml")
    assert new["optimizer"]["args"]["lr"] == lr
    new["optimizer"]["args"]["lr"] = old["optimizer"]["args"]["lr"]
    assert new == old


def test_apply_keeps_json_and_only_changes_the_lr(tmp_path):
    source = tmp_path / "digits.json"
    shutil.copy(REPO / "config/digits_mlp.json", source)
    out = apply_lr(source, 0.0123)
    assert out == tmp_path / "digits_lr.json"
    assert out.read_text().splitlines()[1].strip() == '"$schema": "../docs/config.schema.json",'
    new, old = read_config_file(out), read_config_file(source)
    assert new["optimizer"]["args"] == {**old["optimizer"]["args"], "lr": 0.0123}
    assert {k: v for k, v in new.items() if k != "optimizer"} == \
        {k: v for k, v in old.items() if k != "optimizer"}


def test_suggestion_is_the_steepest_descent_of_the_smoothed_loss():
    lrs = lr_schedule()
    assert math.isclose(lrs[0], START_LR) and math.isclose(lrs[-1], END_LR)
    # a loss falling fastest around lr = 1e-3 (a logistic in log10 lr)
    losses = list(2.0 / (1.0 + np.exp(3.0 * (np.log10(lrs) + 3.0))) + 0.1)
    suggested = suggest(list(lrs), smooth(losses, beta=0.0))
    assert 10 ** -3.2 < suggested < 10 ** -2.8
    assert smooth([4.0, 2.0], beta=0.5) == [4.0, (0.5 * 2.0 + 0.5 * 2.0) / 0.75]


def test_find_lr_usage_errors_are_one_line(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(REPO))
    import train

    config = str(REPO / "config/digits_mlp.yaml")
    assert train.main(["-c", config, "--apply"]) == 2
    assert "--apply goes with --find-lr" in capsys.readouterr().err
    assert train.main(["-c", config, "--find-lr", "trainer.epoch=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "trainer.epoch" in err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plot extra were missing
    with pytest.raises(ConfigError, match=r"pip install matplotlib"):
        check_plotting()
    monkeypatch.chdir(tmp_path)
    assert train.main(["-c", config, "--find-lr", f"trainer.save_dir={tmp_path}/s"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
