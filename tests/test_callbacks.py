"""Issue 25 (item 1): callbacks: the hooks, the `callbacks:` key, callbacks_state, GradNorm."""

from __future__ import annotations

import json
import math

import torch
from conftest import REPO, load, only_run, read_csv, train
from test_resume import log_dir

from base.base_callback import Callback, overriding
from trainer.callbacks.grad_norm import GradNorm

DIGITS = REPO / "config/digits_mlp.json"
TINY = ["trainer.epochs=2", "trainer.save_period=1", "trainer.early_stop=0"]

COUNTER = '''
from base.base_callback import Callback


class StepCounter(Callback):
    def __init__(self, every: int = 1):
        self.every, self.steps = every, 0

    def on_step_end(self, trainer, step, loss):
        self.steps += 1

    def on_epoch_end(self, trainer, epoch, log):
        log["steps_seen"] = self.steps

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]
'''


def one_error_line(r) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_only_the_overridden_hooks_are_called():
    class Steps(Callback):
        def on_step_end(self, trainer, step, loss):
            pass

    steps, plain = Steps(), Callback()
    assert overriding([plain, steps], "on_step_end") == [steps.on_step_end]
    assert overriding([plain, steps], "on_epoch_end") == []
    assert GradNorm().state_dict() == {"total": 0.0, "steps": 0}


def test_grad_norm_averages_the_finite_step_norms():
    class Trainer:
        plain_model = torch.nn.Linear(3, 2)

    trainer, norm = Trainer(), GradNorm()
    weight, bias = trainer.plain_model.weight, trainer.plain_model.bias
    for grad in (3.0, float("inf"), 1.0):  # the inf step (skipped by fp16's scaler) left out
        weight.grad, bias.grad = torch.full((2, 3), grad), torch.zeros(2)
        norm.on_step_end(trainer, 1, torch.tensor(0.0))
    assert norm.state_dict()["steps"] == 2
    log = {}
    norm.on_epoch_end(trainer, 1, log)
    assert math.isclose(log["grad_norm"], (3.0 + 1.0) * math.sqrt(6) / 2, rel_tol=1e-6)
    assert norm.state_dict() == {"total": 0.0, "steps": 0}


def test_grad_norm_is_logged_per_epoch_and_checkpointed(tmp_path):
    r = train("-c", DIGITS, *TINY, "callbacks=[GradNorm]", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path, "digits_mlp")
    rows = read_csv(log_dir(run) / "metrics.csv")
    norms = [float(row["grad_norm"]) for row in rows]
    assert len(norms) == 2 and all(0 < n < 100 and math.isfinite(n) for n in norms), rows
    assert list(rows[0])[-2:] == ["lr", "seconds"]  # the new column sits before lr
    assert "grad_norm" in r.stdout + r.stderr  # the console line shows it
    ckpt = load(run / "checkpoint-epoch2.pth")
    # the epoch's sums are reset after it logged them
    assert ckpt["callbacks_state"] == [{"type": "GradNorm", "state": {"total": 0.0, "steps": 0}}]
    assert [row["grad_norm"] for row in json.loads(ckpt["history"])] == norms


def test_a_plain_run_holds_an_empty_callbacks_state(tmp_path):
    r = train("-c", DIGITS, "trainer.epochs=1", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load(only_run(tmp_path, "digits_mlp") / "checkpoint-epoch1.pth")[
        "callbacks_state"] == []


def test_unknown_callback_name_is_one_line_listing_the_known_ones(tmp_path):
    line = one_error_line(train("-c", DIGITS, "callbacks=[GradNrom]", save_dir=tmp_path))
    assert "callbacks[0]: unknown callback 'GradNrom'" in line
    assert "did you mean 'GradNorm'" in line and "available: GradNorm" in line
    assert not (tmp_path / "models").exists()  # checked before a run folder exists


def test_bad_callback_arguments_are_one_line(tmp_path):
    line = one_error_line(train("-c", DIGITS, "callbacks=[{type: GradNorm, args: {nrm: 2}}]",
                                save_dir=tmp_path))
    assert "callbacks[0].args.nrm: unknown argument of GradNorm" in line
    line = one_error_line(train("-c", DIGITS, "callbacks=[{type: GradNorm, args: "
                                "{norm_type: 0}}]", save_dir=tmp_path))
    assert "callbacks[0].args.norm_type: expected a positive number" in line
    line = one_error_line(train("-c", DIGITS, "callbacks=[EMA]", save_dir=tmp_path))
    assert "callbacks[0]: EMA is a built-in callback: trainer.ema turns it on" in line
    line = one_error_line(train("-c", DIGITS, "callbacks=[collections.OrderedDict]",
                                save_dir=tmp_path))
    assert "is not a subclass of base.base_callback.Callback" in line


def test_a_callback_by_import_path_keeps_its_state_across_a_resume(tmp_path):
    (tmp_path / "mycb.py").write_text(COUNTER)
    env = {"PYTHONPATH": str(tmp_path)}
    spec = "callbacks=[{type: mycb.StepCounter, args: {every: 2}}]"
    r = train("-c", DIGITS, *TINY, spec, save_dir=tmp_path / "a", env=env)
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path / "a", "digits_mlp")
    steps = [int(row["steps_seen"]) for row in read_csv(log_dir(run) / "metrics.csv")]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]
    ckpt = load(run / "checkpoint-epoch1.pth")
    assert ckpt["callbacks_state"] == [{"type": "mycb.StepCounter", "state": {"steps": steps[0]}}]
    # resumed from epoch 1 (a new run folder): the counter goes on from its checkpointed state
    r = train("-r", run / "checkpoint-epoch1.pth", save_dir=tmp_path / "a", env=env)
    assert r.returncode == 0, r.stderr
    [resumed] = [p for p in (tmp_path / "a/models").rglob("checkpoint-epoch2.pth")
                 if p.parent != run]
    assert load(resumed)["callbacks_state"][0]["state"] == {"steps": steps[1]}


def test_a_checkpoint_config_names_only_callback_classes(tmp_path):
    r = train("-c", DIGITS, "trainer.epochs=1", save_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    path = only_run(tmp_path, "digits_mlp") / "checkpoint-epoch1.pth"
    ckpt = load(path)
    ckpt["config"]["callbacks"] = ["collections.OrderedDict"]
    torch.save(ckpt, path)
    line = one_error_line(train("-r", path, "trainer.epochs=2", save_dir=tmp_path))
    assert "callbacks[0]: 'collections.OrderedDict' is not a subclass of " \
           "base.base_callback.Callback" in line and "--trust-config" in line
