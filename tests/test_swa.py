"""Issue 14 (item 3): trainer.swa, stochastic weight averaging with SWALR and update_bn."""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import (
    REPO,
    assert_same_weights,
    load,
    load_config,
    only_run,
    read_csv,
    read_json,
    run_dirs,
    run_script,
    train,
)
from test_resume import log_dir, rows_without_seconds

from utils.errors import ConfigError

DIGITS = REPO / "config/digits_mlp.yaml"
SWA = "+trainer.swa={start_epoch: 2, swa_lr: 0.01, anneal_epochs: 2, anneal_strategy: linear}"
# BatchNorm (update_bn has statistics to recompute), dropout, shuffling; a checkpoint per epoch
RUN = ["arch.args.batch_norm=true", "arch.args.dropout=0.2", "trainer.epochs=4",
       "trainer.save_period=1", "trainer.verbosity=0", "trainer.monitor=off", SWA]


@pytest.mark.slow
def test_swa_resumes_exactly_and_test_picks_its_weights(tmp_path):
    r = train("-c", DIGITS, *RUN, save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    straight = only_run(tmp_path, "digits_mlp")
    final = load(straight / "checkpoint-epoch4.pth")
    # the lr: the configured one through epoch 2, then SWALR, linear from 0.001 to 0.01 in 2
    lrs = [float(row["lr"]) for row in read_csv(log_dir(straight) / "metrics.csv")]
    assert lrs[:2] == [0.001, 0.001]
    assert math.isclose(lrs[2], 0.0055) and math.isclose(lrs[3], 0.01)
    assert final["swa_steps"] == {"n_averaged": 3}  # epochs 2, 3 and 4
    assert final["swa_scheduler_state_dict"]["last_epoch"] == 3
    swa, raw = final["swa_state_dict"], final["model_state_dict"]
    assert swa.keys() == raw.keys()
    assert not torch.equal(swa["output.weight"], raw["output.weight"])
    # update_bn: one pass over the training loader, statistics of the averaged weights
    assert 4 * int(swa["hidden.1.num_batches_tracked"]) == int(raw["hidden.1.num_batches_tracked"])
    assert not torch.equal(swa["hidden.1.running_mean"], raw["hidden.1.running_mean"])
    assert "swa_state_dict" not in load(straight / "checkpoint-epoch1.pth")  # not started yet

    # resumed in the middle of the averaging (SWALR running), into a new run folder
    r = train("-r", straight / "checkpoint-epoch3.pth", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    (branch,) = [p for p in run_dirs(tmp_path, "digits_mlp") if p != straight]
    resumed = load(branch / "checkpoint-epoch4.pth")
    assert_same_weights(raw, resumed["model_state_dict"])
    assert_same_weights(swa, resumed["swa_state_dict"])
    assert final["swa_steps"] == resumed["swa_steps"]
    assert final["swa_scheduler_state_dict"] == resumed["swa_scheduler_state_dict"]
    assert_same_weights(final["optimizer_state_dict"]["state"][0],
                        resumed["optimizer_state_dict"]["state"][0])
    assert rows_without_seconds(branch) == rows_without_seconds(straight)

    losses = {}
    for which in ("swa", "raw"):
        out = tmp_path / f"{which}.json"
        r = run_script("test.py", "-r", straight / "checkpoint-epoch4.pth", "--weights", which,
                       "--output", out)
        assert r.returncode == 0, r.stderr
        losses[which] = read_json(out)["loss"]
    assert losses["swa"] != losses["raw"]
    r = run_script("test.py", "-r", straight / "checkpoint-epoch1.pth", "--weights", "swa")
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1
    assert "no swa weights" in r.stderr and "start_epoch" in r.stderr


@pytest.mark.parametrize("value, message", [
    ("5", "trainer.swa: expected null (off) or a mapping"),
    ("{swa_lr: 0.01}", "trainer.swa.start_epoch: required key is missing"),
    ("{start_epoch: 0, swa_lr: 0.01}",
     "trainer.swa.start_epoch: expected an epoch in 1..trainer.epochs (30), got"),
    ("{start_epoch: 31, swa_lr: 0.01}",
     "trainer.swa.start_epoch: expected an epoch in 1..trainer.epochs (30), got"),
    ("{start_epoch: 2, swa_lr: -1}", "trainer.swa.swa_lr: expected a positive number"),
    ("{start_epoch: 2, swa_lr: 0.1, anneal_strategy: exp}", "trainer.swa.anneal_strategy"),
    ("{start_epoch: 2, swa_lr: 0.1, start: 3}", "trainer.swa.start: unknown key"),
])
def test_invalid_swa_values_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(DIGITS, [f"+trainer.swa={value}"])


def test_invalid_swa_is_a_one_line_exit_2(tmp_path):
    r = train("-c", DIGITS, "+trainer.swa={start_epoch: 2, swa_lr: 0}", save_dir=tmp_path / "s")
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and r.stderr.count("\n") == 1
    assert "trainer.swa.swa_lr" in r.stderr and not (tmp_path / "s").exists()
    assert load_config(DIGITS)["trainer"]["swa"] is None  # the default: off
