"""Iteration-based epochs: trainer.len_epoch and trainer.max_steps (issue 16, item 8)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_same_weights, load, only_run, read_csv, train
from test_resume import rows_without_seconds, start, wait_for

from data_loader.data_loaders import DigitsDataLoader
from trainer.loop.iteration import epoch_batches

DIGITS = REPO / "config/digits_mlp.json"
# no scheduler, no dropout: the weights depend only on the sequence of batches
PLAIN = ["lr_scheduler=null", "trainer.monitor=off", "trainer.early_stop=0",
         "trainer.verbosity=1", "trainer.save_period=1"]


def test_len_epoch_cycles_the_loader_in_single_run_order():
    loader = DigitsDataLoader(batch_size=64, seed=42)
    assert len(loader) == 20
    single = []
    for loader_epoch in (1, 2):
        loader.set_epoch(loader_epoch)
        single += [x for x, _ in loader]
    seen = [x for epoch in (1, 2, 3) for x, _ in epoch_batches(loader, epoch, 0, 7)]
    assert len(seen) == 21
    assert all(torch.equal(a, b) for a, b in zip(seen, single[:21]))
    assert len({tuple(x[:, :8].flatten().tolist()) for x in seen}) == 21  # 21 distinct batches
    # the 21st batch opens the loader's second epoch: a fresh (seed, 2) order
    loader.set_epoch(2)
    assert torch.equal(seen[20], next(iter(loader))[0])
    # mid-epoch: epoch 3 from its 5th batch is the stream's batches 19..20
    rest = [x for x, _ in epoch_batches(loader, 3, 4, 7)]
    assert len(rest) == 3 and all(torch.equal(a, b) for a, b in zip(rest, single[18:21]))


@pytest.mark.slow
def test_three_short_epochs_train_like_one_long_one(tmp_path):
    short_dir, long_dir = tmp_path / "short", tmp_path / "long"
    r = train("-c", DIGITS, *PLAIN, "trainer.epochs=3", "trainer.len_epoch=7", save_dir=short_dir)
    assert r.returncode == 0, r.stderr
    r = train("-c", DIGITS, *PLAIN, "trainer.epochs=1", "trainer.len_epoch=21", save_dir=long_dir)
    assert r.returncode == 0, r.stderr
    short, long = only_run(short_dir, "digits_mlp"), only_run(long_dir, "digits_mlp")
    assert [row["epoch"] for row in read_csv(short.parents[2] / "log/digits_mlp" / short.name
                                             / "metrics.csv")] == ["1", "2", "3"]
    a, b = load(short / "checkpoint-epoch3.pth"), load(long / "checkpoint-epoch1.pth")
    assert a["global_step"] == b["global_step"] == 21
    assert_same_weights(a["model_state_dict"], b["model_state_dict"])


@pytest.mark.slow
def test_max_steps_ends_the_run_mid_epoch(tmp_path):
    r = train("-c", DIGITS, *PLAIN, "trainer.epochs=10", "trainer.len_epoch=7",
              "trainer.max_steps=10", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path, "digits_mlp")
    assert sorted(p.name for p in run.glob("checkpoint-epoch*.pth")) == [
        "checkpoint-epoch1.pth", "checkpoint-epoch2.pth"]
    assert load(run / "checkpoint-epoch2.pth")["global_step"] == 10
    assert "trainer.max_steps reached: 10 optimizer steps" in r.stdout + r.stderr
    # ten steps of one long epoch are the same ten batches
    r = train("-c", DIGITS, *PLAIN, "trainer.epochs=1", "trainer.len_epoch=10",
              save_dir=tmp_path / "ten")
    assert r.returncode == 0, r.stderr
    assert_same_weights(load(run / "checkpoint-epoch2.pth")["model_state_dict"],
                        load(only_run(tmp_path / "ten", "digits_mlp") / "checkpoint-epoch1.pth")
                        ["model_state_dict"])
    r = train("-r", run / "checkpoint-epoch2.pth", save_dir=tmp_path)
    assert r.returncode == 0 and "nothing to train" in r.stdout


def test_bad_len_epoch_is_a_config_error(tmp_path):
    r = train("-c", DIGITS, "trainer.len_epoch=0", save_dir=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "trainer.len_epoch: expected a positive integer or null" in r.stderr


# batch size 4: 315 batches per loader epoch; epochs of 250 batches cross its boundaries
SLOW = [*PLAIN, "arch.args.dropout=0.2", "data_loader.args.batch_size=4",
        "trainer.save_period=100", "trainer.epochs=6", "trainer.len_epoch=250"]


@pytest.mark.slow
def test_interrupt_mid_epoch_with_len_epoch_resumes_exactly(tmp_path):
    straight_dir, cut_dir = tmp_path / "straight", tmp_path / "cut"
    r = train("-c", DIGITS, *SLOW, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(straight_dir, "digits_mlp")

    proc = start(["-c", DIGITS, *SLOW], cut_dir)
    metrics = lambda: list((cut_dir / "log/digits_mlp").glob("*/metrics.csv"))  # noqa: E731
    assert wait_for(lambda: metrics() and len(read_csv(metrics()[0])) >= 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    ckpt_path = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
    ckpt = load(ckpt_path)
    if ckpt["partial_epoch"] is not None:
        done = ckpt["partial_epoch"]["batches_done"]
        assert 0 < done < 250 and ckpt["global_step"] == ckpt["epoch"] * 250 + done

    r = train("-r", ckpt_path, save_dir=cut_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(cut_dir, "digits_mlp")
    final = load(run / "checkpoint-epoch6.pth")
    assert final["global_step"] == 1500
    assert_same_weights(load(straight / "checkpoint-epoch6.pth")["model_state_dict"],
                        final["model_state_dict"])
    assert rows_without_seconds(run) == rows_without_seconds(straight)
