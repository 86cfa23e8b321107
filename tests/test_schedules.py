"""Issue 14 (items 1, 2, 5): per-step and nested LR schedules with `auto` lengths, class
weights and the balanced sampler."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, load, only_run, read_csv, read_json, train

DIGITS = REPO / "config/digits_mlp.yaml"
# digits with a 0.2 test and 0.1 validation split: 1797 - 359 - 179 training samples
N_TRAIN = 1797 - int(1797 * 0.2) - int(1797 * 0.1)
SMALL = ["arch.args.hidden=16", "arch.args.depth=1", "trainer.verbosity=1",
         "trainer.save_period=100", "trainer.monitor=off", "trainer.early_stop=0"]


def steps_per_epoch(batch_size: int, accumulate: int) -> int:
    return math.ceil(math.ceil(N_TRAIN / batch_size) / accumulate)


def log_dir(run: Path) -> Path:
    return run.parents[2] / "log" / run.parent.name / run.name


def tensorboard_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir(run)))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def warmup_cosine(t: int, base: float, start: float, warmup: int, t_max: int,
                  eta_min: float) -> float:
    """The closed form of LinearLR(start, warmup) then CosineAnnealingLR(t_max, eta_min)."""
    if t < warmup:
        return base * (start + (1 - start) * t / warmup)
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t - warmup) / t_max)) / 2


WARMUP_COSINE = [  # ~ first: a mapping value merges into the file's StepLR, as in Hydra
    "~lr_scheduler", "+lr_scheduler={type: SequentialLR, interval: step, args: {schedulers: ["
    "{type: LinearLR, args: {start_factor: 0.1, total_iters: 5}}, "
    "{type: CosineAnnealingLR, args: {T_max: auto, eta_min: 0.001}}], milestones: [5]}}",
    "optimizer.args.lr=0.05"]


def test_warmup_cosine_per_step_follows_the_closed_form(save_dir):
    epochs, bs, accumulate = 3, 128, 3
    r = train("-c", DIGITS, *SMALL, *WARMUP_COSINE, f"trainer.epochs={epochs}",
              f"data_loader.args.batch_size={bs}", f"trainer.accumulate_steps={accumulate}",
              "trainer.tensorboard=true", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(save_dir, "digits_mlp")
    per_epoch = steps_per_epoch(bs, accumulate)  # 10 batches in groups of 3, 3, 3, 1: 4 steps
    total = epochs * per_epoch
    t_max = total - 5
    children = read_json(run / "config.json")["lr_scheduler"]["args"]["schedulers"]
    assert children[1]["args"]["T_max"] == t_max  # resolved and stored
    assert load(run / f"checkpoint-epoch{epochs}.pth")["config"]["lr_scheduler"] == \
        read_json(run / "config.json")["lr_scheduler"]

    def lr(t):
        return warmup_cosine(t, 0.05, 0.1, 5, t_max, 0.001)

    rows = read_csv(log_dir(run) / "metrics.csv")
    assert [float(row["lr"]) for row in rows] == pytest.approx(
        [lr((e - 1) * per_epoch) for e in range(1, epochs + 1)], rel=1e-12)
    steps = tensorboard_scalars(run, "lr_step")
    assert [s for s, _ in steps] == list(range(1, total + 1))
    assert [v for _, v in steps] == pytest.approx([lr(s - 1) for s in range(1, total + 1)],
                                                  rel=1e-6)  # TensorBoard stores float32


@pytest.mark.slow
@pytest.mark.parametrize("accumulate", [1, 3])
def test_onecycle_total_steps_auto_runs_to_its_last_step(save_dir, accumulate):
    epochs, bs, max_lr = 2, 256, 0.05
    r = train("-c", DIGITS, *SMALL, f"trainer.epochs={epochs}", f"trainer.accumulate_steps="
              f"{accumulate}", f"data_loader.args.batch_size={bs}", "trainer.tensorboard=true",
              "~lr_scheduler", "+lr_scheduler={type: OneCycleLR, interval: step, "
              "args: {max_lr: 0.05, total_steps: auto}}", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert "Tried to step" not in r.stderr
    run = only_run(save_dir, "digits_mlp")
    total = epochs * steps_per_epoch(bs, accumulate)
    assert read_json(run / "config.json")["lr_scheduler"]["args"]["total_steps"] == total
    state = load(run / f"checkpoint-epoch{epochs}.pth")["lr_scheduler_state_dict"]
    assert state["last_epoch"] == total == state["total_steps"]
    steps = tensorboard_scalars(run, "lr_step")
    assert len(steps) == total
    # the first step at max_lr / div_factor, the last at that / final_div_factor
    assert steps[0][1] == pytest.approx(max_lr / 25, rel=1e-6)
    assert steps[-1][1] == pytest.approx(max_lr / 25 / 1e4, rel=1e-5)


@pytest.mark.slow
def test_chained_scheduler_and_epoch_interval_auto(save_dir):
    r = train("-c", DIGITS, *SMALL, "trainer.epochs=4",
              "~lr_scheduler", "+lr_scheduler={type: ChainedScheduler, args: {schedulers: ["
              "{type: CosineAnnealingLR, args: {T_max: auto}}, "
              "{type: ExponentialLR, args: {gamma: 0.5}}]}}", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(save_dir, "digits_mlp")
    spec = read_json(run / "config.json")["lr_scheduler"]
    assert spec["args"]["schedulers"][0]["args"]["T_max"] == 4  # interval epoch: the epochs
    rows = read_csv(log_dir(run) / "metrics.csv")
    expected = [0.001 * (1 + math.cos(math.pi * t / 4)) / 2 * 0.5 ** t for t in range(4)]
    assert [float(row["lr"]) for row in rows] == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------- exact resume, step scheduler

# a train.py that sends itself SIGINT after the STOP_AT-th training batch of the run
STOPPER = """
import os, signal, sys
sys.path.insert(0, os.getcwd())
import train
from trainer.loop.trainer import Trainer
stop_at, seen, step = int(os.environ["STOP_AT"]), [0], Trainer._train_step
def stopping_step(self, *args):
    out = step(self, *args)
    seen[0] += 1
    if seen[0] == stop_at:
        os.kill(os.getpid(), signal.SIGINT)
    return out
Trainer._train_step = stopping_step
sys.exit(train.main(sys.argv[1:]))
"""


def same_state(a, b) -> None:
    """Equal nested state dicts, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same_state(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same_state(x, y)
    else:
        assert a == b or (a != a and b != b), (a, b)  # NaN equals NaN here


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_interrupt_mid_accumulation_window_resumes_exactly(tmp_path, workers):
    common = [*SMALL, *WARMUP_COSINE, "trainer.epochs=3", "data_loader.args.batch_size=128",
              "trainer.accumulate_steps=3", "arch.args.dropout=0.3",
              "optimizer={type: SGD, args: {lr: 0.05, momentum: 0.9}}",
              f"data_loader.args.num_workers={workers}"]
    straight_dir, cut_dir = tmp_path / "straight", tmp_path / "cut"
    r = train("-c", DIGITS, *common, save_dir=straight_dir)
    assert r.returncode == 0, r.stderr
    straight = only_run(straight_dir, "digits_mlp")

    # batch 14 = epoch 2, batch 4: the first of a group of 3; the run stops after batch 6
    cut = subprocess.run([sys.executable, "-c", STOPPER, "-c", str(DIGITS), *common,
                          f"trainer.save_dir={cut_dir}"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**ENV, "STOP_AT": "14"})
    assert cut.returncode == 130, cut.stderr
    run = only_run(cut_dir, "digits_mlp")
    ckpt = load(run / "checkpoint-interrupted.pth")
    assert ckpt["epoch"] == 1
    assert ckpt["partial_epoch"]["batches_done"] == 6
    assert ckpt["lr_scheduler_state_dict"]["last_epoch"] == steps_per_epoch(128, 3) + 2

    r = train("-r", run / "checkpoint-interrupted.pth", save_dir=cut_dir)
    assert r.returncode == 0, r.stderr
    a, b = load(straight / "checkpoint-epoch3.pth"), load(run / "checkpoint-epoch3.pth")
    for key in ("model_state_dict", "optimizer_state_dict", "lr_scheduler_state_dict"):
        same_state(a[key], b[key])

    def rows(r):
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in read_csv(log_dir(r) / "metrics.csv")]
    assert rows(run) == rows(straight)


# --------------------------------------------------------------- config errors

@pytest.mark.slow
@pytest.mark.parametrize("overrides, key", [
    (["+lr_scheduler.interval=hourly"], "lr_scheduler.interval"),
    (["lr_scheduler.args.step_size=auto"], "lr_scheduler.args.step_size"),
    (["~lr_scheduler", "+lr_scheduler={type: SequentialLR, args: {schedulers: [{type: LinearLR}, "
      "{type: StepLR, args: {step_size: 2}}], milestones: []}}"], "lr_scheduler.args.milestones"),
])
def test_bad_scheduler_settings_are_one_line_errors(save_dir, overrides, key):
    r = train("-c", DIGITS, *overrides, save_dir=save_dir)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{key}:" in lines[0], lines
    assert not save_dir.exists()


# --------------------------------------------------------------- class weights, balanced sampler

WINE = REPO / "config/wine_mlp.yaml"


def test_class_weights_auto_follow_the_formula_and_wrong_length_is_an_error(save_dir):
    from data_loader.data_loaders import SklearnDataLoader
    from trainer.config.class_weights import resolved_loss

    loader = SklearnDataLoader("wine", validation_split=0.15, test_split=0.25)
    labels = loader.dataset.tensors[1][loader.train_indices].tolist()
    counts = [labels.count(c) for c in range(3)]
    spec = resolved_loss({"type": "CrossEntropyLoss", "args": {"weight": "auto"}}, loader)
    assert spec["args"]["weight"] == pytest.approx([len(labels) / (3 * n) for n in counts])
    r = train("-c", WINE, "loss={type: CrossEntropyLoss, args: {weight: [1, 2]}}",
              save_dir=save_dir)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "loss.args.weight:" in lines[0], lines


def test_balanced_sampler_draws_are_a_function_of_seed_and_epoch():
    from data_loader.data_loaders import SklearnDataLoader

    def draws(epoch, start=0):
        loader = SklearnDataLoader("wine", batch_size=16, seed=3)
        loader.balance_classes()
        loader.set_epoch(epoch, start)
        return [b[1].tolist() for b in loader]

    first = draws(2)
    assert draws(2) == first and draws(3) != first
    assert draws(2, start=4) == first[4:]  # a mid-epoch resume reads the rest
    flat = [y for batch in first for y in batch]
    assert max(flat.count(c) for c in range(3)) - min(flat.count(c) for c in range(3)) < 25
