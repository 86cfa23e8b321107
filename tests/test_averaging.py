"""Issue 14 (items 3, 4, 6): EMA weights, torch.compile, the LR range test."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_same_weights, load, only_run, read_json, run_script, train
from test_resume import rows_without_seconds, start, wait_for

from trainer.callbacks.averaging import EMA

DIGITS = REPO / "config/digits_mlp.yaml"
EMA_ON = ["+trainer.ema={decay: 0.9, every: 1}"]
TINY = ["trainer.epochs=2", "trainer.verbosity=0", "trainer.save_period=1"]


def test_ema_equals_the_hand_computed_average():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(model, decay=0.75, every=2)
    seen = []
    for step in range(1, 5):
        with torch.no_grad():
            model.weight.fill_(float(step))
        seen.append(float(step))
        ema.after_step(model)
    # updates after steps 2 and 4: the first copies, the second averages
    expected = 0.75 * 2.0 + 0.25 * 4.0
    assert torch.equal(ema.module.weight, torch.full((1, 2), expected))
    state = ema.state()
    assert state["ema_steps"] == {"optimizer_steps": 4, "n_averaged": 2}
    other = EMA(torch.nn.Linear(2, 1, bias=False), decay=0.75, every=2)
    assert other.load(state) and other.steps == 4
    assert torch.equal(other.module.weight, ema.module.weight)


@pytest.mark.slow
def test_ema_checkpoint_and_test_weights(tmp_path):
    r = train("-c", DIGITS, *TINY, *EMA_ON, save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch2.pth")  # weights_only: plain data
    assert ckpt["ema_steps"]["optimizer_steps"] == ckpt["ema_steps"]["n_averaged"] > 0
    assert ckpt["ema_state_dict"].keys() == ckpt["model_state_dict"].keys()
    assert not torch.equal(ckpt["ema_state_dict"]["hidden.0.weight"],
                           ckpt["model_state_dict"]["hidden.0.weight"])
    losses = {}
    for which in ("ema", "raw", None):
        out = tmp_path / f"{which}.json"
        args = ["-r", run / "checkpoint-epoch2.pth", "--output", out]
        r = run_script("test.py", *args, *(["--weights", which] if which else []))
        assert r.returncode == 0, r.stderr
        losses[which] = read_json(out)["loss"]
    assert losses["ema"] != losses["raw"]
    assert losses[None] == losses["ema"]  # the monitored weights by default

    r = train("-c", DIGITS, "trainer.epochs=1", "trainer.verbosity=0", save_dir=tmp_path / "b")
    assert r.returncode == 0, r.stderr
    plain = only_run(tmp_path / "b", "digits_mlp") / "checkpoint-epoch1.pth"
    r = run_script("test.py", "-r", plain, "--weights", "ema")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error:")
    assert "no ema weights" in r.stderr


def test_ema_decay_out_of_range_is_a_config_error(tmp_path):
    r = train("-c", DIGITS, "+trainer.ema={decay: 1.5}", save_dir=tmp_path / "s")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "trainer.ema.decay" in lines[0]
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_interrupt_mid_epoch_with_ema_resumes_exactly(tmp_path):
    slow = ["arch.args.dropout=0.2", "data_loader.args.batch_size=4", "trainer.epochs=2",
            "trainer.save_period=100", "trainer.verbosity=1", *EMA_ON]
    straight_dir, cut_dir = tmp_path / "straight", tmp_path / "cut"
    r = train("-c", DIGITS, *slow, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = load(only_run(straight_dir, "digits_mlp") / "checkpoint-epoch2.pth")

    proc = start(["-c", DIGITS, *slow], cut_dir)
    metrics = lambda: list((cut_dir / "log/digits_mlp").glob("*/metrics.csv"))  # noqa: E731
    assert wait_for(lambda: metrics() and metrics()[0].read_text().count("\n") >= 2)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ckpt_path = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
    if ckpt_path.name == "checkpoint-interrupted.pth":
        assert load(ckpt_path)["partial_epoch"]["batches_done"] > 0
    r = train("-r", ckpt_path, save_dir=cut_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(cut_dir, "digits_mlp")
    resumed = load(run / "checkpoint-epoch2.pth")
    assert_same_weights(straight["model_state_dict"], resumed["model_state_dict"])
    assert_same_weights(straight["ema_state_dict"], resumed["ema_state_dict"])
    assert straight["ema_steps"] == resumed["ema_steps"]
    assert rows_without_seconds(run) == rows_without_seconds(only_run(straight_dir,
                                                                      "digits_mlp"))
