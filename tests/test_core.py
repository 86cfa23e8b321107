"""Issue 2: the core train / test / resume path on the digits data set."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    REPO,
    assert_same_weights,
    load,
    only_run,
    read_csv,
    read_json,
    run_dirs,
    run_script,
    train,
    tree_snapshot,
)

from utils.checkpoint import history_rows

DIGITS_JSON = REPO / "config/digits_mlp.json"
DIGITS_YAML = REPO / "config/digits_mlp.yaml"
DIGITS_ML = REPO / "config/digits_mlp_modulelist.yaml"


def test_main_job_outputs_and_test_accuracy(digits_run):
    name, run_id = "digits_mlp", digits_run.name
    log_dir = digits_run.parents[2] / "log" / name / run_id
    for f in ["config.json", "model_best.pth", "checkpoint-epoch10.pth", "checkpoint-epoch20.pth",
              "checkpoint-epoch30.pth"]:
        assert (digits_run / f).is_file(), f
    info = (log_dir / "info.log").read_text()
    assert all(f"epoch {e}/30 " in info for e in range(1, 31))
    rows = read_csv(log_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 31))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "top_k_acc", "val_loss", "val_accuracy",
                             "val_top_k_acc", "lr", "seconds"]
    assert float(rows[-1]["val_accuracy"]) > 0.9

    result = run_script("test.py", "-r", digits_run / "model_best.pth")
    assert result.returncode == 0, result.stderr
    metrics = read_json(digits_run / "test_metrics.json")
    assert list(metrics) == ["loss", "accuracy", "top_k_acc"]
    assert metrics["accuracy"] >= 0.95
    assert f"accuracy: {metrics['accuracy']:.6f}" in result.stdout


def test_checkpoint_is_plain_data_with_contract_keys(digits_run):
    ckpt = load(digits_run / "checkpoint-epoch30.pth")  # weights_only=True
    for key in ["epoch", "model_state_dict", "optimizer_state_dict", "loss", "arch", "config",
                "lr_scheduler_state_dict", "monitor_best", "early_stop_count", "rng_state",
                "history"]:
        assert key in ckpt, key
    assert isinstance(ckpt["history"], str)  # JSON: one object to save, whatever the length
    assert ckpt["epoch"] == 30 and ckpt["arch"] == "MLP"
    assert isinstance(ckpt["loss"], float)
    assert ckpt["config"]["trainer"]["epochs"] == 30
    assert len(history_rows(ckpt)) == 30
    # standardization buffers sit ahead of every layer
    assert list(ckpt["model_state_dict"])[:2] == ["input_mean", "input_std"]
    best = load(digits_run / "model_best.pth")
    assert best["monitor_best"] == min(r["val_loss"] for r in history_rows(best))


def test_test_output_flag(digits_run, tmp_path):
    out = tmp_path / "sub" / "m.json"
    result = run_script("test.py", "-r", digits_run / "model_best.pth", "--output", out)
    assert result.returncode == 0, result.stderr
    assert read_json(out)["accuracy"] >= 0.95


@pytest.mark.slow
def test_json_and_yaml_configs_give_identical_weights(save_dir):
    for cfg in (DIGITS_JSON, DIGITS_YAML):
        r = train("-c", cfg, "trainer.epochs=3", save_dir=save_dir)
        assert r.returncode == 0, r.stderr
    a, b = run_dirs(save_dir, "digits_mlp")
    assert_same_weights(load(a / "checkpoint-epoch3.pth")["model_state_dict"],
                        load(b / "checkpoint-epoch3.pth")["model_state_dict"])


@pytest.mark.slow
def test_sequential_and_modulelist_agree(save_dir):
    from model.model import MLP

    torch.manual_seed(0)
    seq = MLP(64, 10, hidden=32, depth=3, container="sequential")
    torch.manual_seed(0)
    lst = MLP(64, 10, hidden=32, depth=3, container="modulelist")
    assert isinstance(seq.hidden, torch.nn.Sequential)
    assert isinstance(lst.hidden, torch.nn.ModuleList)
    assert_same_weights(seq.state_dict(), lst.state_dict())
    x = torch.randn(5, 64)
    assert torch.equal(seq(x), lst(x))
    # and the same trained result
    for cfg in (DIGITS_JSON, DIGITS_ML):
        r = train("-c", cfg, "trainer.epochs=2", save_dir=save_dir)
        assert r.returncode == 0, r.stderr
    a = only_run(save_dir, "digits_mlp")
    b = only_run(save_dir, "digits_mlp_modulelist")
    assert_same_weights(load(a / "checkpoint-epoch2.pth")["model_state_dict"],
                        load(b / "checkpoint-epoch2.pth")["model_state_dict"])


def test_mlp_depth_and_tanh_after_every_hidden_linear():
    from model.model import MLP

    m = MLP(64, 10, hidden=16, depth=2)
    kinds = [type(x).__name__ for x in m.hidden]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh"]
    assert (m.output.in_features, m.output.out_features) == (16, 10)
    assert "Trainable parameters: " + str(sum(p.numel() for p in m.parameters())) in str(m)


@pytest.mark.slow
def test_resume_continues_with_optimizer_state(save_dir):
    r = train("-c", DIGITS_JSON, "trainer.epochs=6", "trainer.save_period=1", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(save_dir, "digits_mlp")
    other = save_dir.parent / "other"
    r = train("-c", DIGITS_JSON, "trainer.epochs=3", "trainer.save_period=1", save_dir=other)
    assert r.returncode == 0, r.stderr
    first = only_run(other, "digits_mlp")
    r = train("-r", first / "checkpoint-epoch3.pth", "trainer.epochs=6", save_dir=other)
    assert r.returncode == 0, r.stderr
    assert only_run(other, "digits_mlp") == first  # continued in its own run folder
    a, b = load(straight / "checkpoint-epoch6.pth"), load(first / "checkpoint-epoch6.pth")
    assert b["epoch"] == 6 and [h["epoch"] for h in history_rows(b)] == [1, 2, 3, 4, 5, 6]
    steps = [s["step"] for s in b["optimizer_state_dict"]["state"].values()]
    assert all(int(s) == int(a_s["step"]) for s, a_s in
               zip(steps, a["optimizer_state_dict"]["state"].values()))
    assert_same_weights(a["model_state_dict"], b["model_state_dict"])
    rows = read_csv(other / "log/digits_mlp" / first.name / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_resume_of_a_finished_run_says_so(digits_run):
    before = tree_snapshot(digits_run)
    r = run_script("train.py", "-r", digits_run / "checkpoint-epoch30.pth")
    assert r.returncode == 0
    assert "nothing to train" in r.stdout
    assert tree_snapshot(digits_run) == before


def test_finetune_continues_numbering_in_new_run(digits_run, save_dir):
    r = train("-c", DIGITS_YAML, "-r", digits_run / "checkpoint-epoch30.pth",
              "trainer.epochs=32", "optimizer.args.lr=0.0001", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(save_dir, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch32.pth")
    assert ckpt["epoch"] == 32
    assert ckpt["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("override, key", [
    ("arch.type=Perceptron", "arch.type"),
    ("loss=cross_entropyy", "loss"),
    ("metrics=[accuracy,acuracy]", "metrics[1]"),
    ("optimizer.type=Adamm", "optimizer.type"),
])
def test_unknown_names_fail_before_training(save_dir, override, key):
    r = train("-c", DIGITS_JSON, override, save_dir=save_dir)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert key in lines[0] and "available:" in lines[0]
    assert "Traceback" not in r.stderr
    assert not save_dir.exists()


@pytest.mark.slow
def test_no_gpu_warns_and_uses_cpu(save_dir):
    r = train("-c", DIGITS_JSON, "n_gpu=1", "trainer.epochs=1", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert "no GPU is available" in r.stdout + r.stderr


def test_splits_are_disjoint_and_fixed():
    from data_loader.data_loaders import DigitsDataLoader

    a = DigitsDataLoader(batch_size=50, validation_split=0.1, test_split=0.2, seed=1)
    b = DigitsDataLoader(batch_size=50, validation_split=0.1, test_split=0.2, seed=2,
                         training=False)
    train_idx, valid_idx, test_idx = (set(a.train_indices.tolist()), set(a.valid_indices.tolist()),
                                      set(a.test_indices.tolist()))
    assert not train_idx & valid_idx and not train_idx & test_idx and not valid_idx & test_idx
    assert len(train_idx | valid_idx | test_idx) == 1797
    assert set(b.indices.tolist()) == test_idx  # the test split does not depend on the run seed
    x, y = next(iter(a))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (50, 64)
    seen = torch.cat([t for _, t in a.split_validation()])
    assert len(seen) == len(valid_idx)
    c = DigitsDataLoader(batch_size=50, validation_split=100, test_split=0.2)
    assert len(c.valid_indices) == 100


def test_epoch_metrics_are_exact_over_uneven_batches():
    from model.metric import Accuracy, TopKAccuracy
    from trainer.loop.epoch_stats import EpochStats

    torch.manual_seed(0)
    out, tgt = torch.randn(69, 10), torch.randint(0, 10, (69,))
    stats = EpochStats({"accuracy": Accuracy(), "top_k_acc": TopKAccuracy()})
    for o, t in zip(out.split(64), tgt.split(64)):  # a batch of 64, then one of 5
        stats.update(torch.nn.functional.cross_entropy(o, t), o, t)
    res = stats.result()
    assert res["accuracy"] == pytest.approx((out.argmax(1) == tgt).float().mean().item())
    assert res["loss"] == pytest.approx(torch.nn.functional.cross_entropy(out, tgt).item())
    summed = EpochStats(sum_reduction=True)
    for o, t in zip(out.split(64), tgt.split(64)):
        summed.update(torch.nn.functional.cross_entropy(o, t, reduction="sum"), o, t)
    assert summed.result()["loss"] == pytest.approx(res["loss"])
