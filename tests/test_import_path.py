"""Issue 16 item 4: components named by import path (a `type` with a dot is imported)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import (
    REPO,
    assert_same_weights,
    load,
    load_config,
    only_run,
    read_json,
    run_dirs,
    train,
)

from trainer.config.parse_config import validate_config
from trainer.config.schedulers import resolve_auto
from utils.config_io import apply_overrides
from utils.errors import ConfigError

NET = '''
import torch.nn as nn


class Net(nn.Module):
    """A model from outside the project: a plain nn.Module, no BaseModel."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 32):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),
                                    nn.Dropout(0.2), nn.Linear(hidden, out_features))

    def forward(self, x):
        return self.layers(x)
'''

# every kind of component by import path, the scheduler's children included
IMPORTED = {
    "name": "imported",
    "seed": 3,
    "arch": {"type": "extmodels.nets.Net", "args": {"in_features": 64, "out_features": 10}},
    "data_loader": {"type": "data_loader.data_loaders.DigitsDataLoader",
                    "args": {"batch_size": 64, "shuffle": True, "validation_split": 0.1,
                             "test_split": 0.2}},
    "optimizer": {"type": "torch.optim.AdamW", "args": {"lr": 0.003, "weight_decay": 0.01}},
    "loss": {"type": "torch.nn.CrossEntropyLoss", "args": {"label_smoothing": 0.1}},
    "metrics": ["model.metric.Accuracy", {"type": "model.metric.TopKAccuracy", "args": {"k": 3}}],
    "lr_scheduler": {"type": "torch.optim.lr_scheduler.SequentialLR", "interval": "step", "args": {
        "schedulers": [
            {"type": "torch.optim.lr_scheduler.LinearLR",
             "args": {"start_factor": 0.1, "total_iters": 10}},
            {"type": "torch.optim.lr_scheduler.CosineAnnealingLR", "args": {"T_max": "auto"}}],
        "milestones": [10]}},
    "trainer": {"epochs": 4, "save_period": 1, "monitor": "max val_model.metric.Accuracy"},
}


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory) -> Path:
    """A package outside the project (one folder for the session: Python caches imports)."""
    root = tmp_path_factory.mktemp("ext")
    (root / "extmodels").mkdir()
    (root / "extmodels" / "__init__.py").write_text("")
    (root / "extmodels" / "nets.py").write_text(NET)
    (root / "extmodels" / "broken.py").write_text("import not_installed_x\n")
    return root


@pytest.fixture
def ext(ext_dir: Path, monkeypatch) -> dict:
    """The package on PYTHONPATH for subprocesses and on sys.path here."""
    monkeypatch.syspath_prepend(str(ext_dir))
    return {"PYTHONPATH": str(ext_dir)}


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "imported.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_imported_components_train_and_resume_exactly(tmp_path, ext):
    """An unbroken 4-epoch run against a branch resumed from its epoch-2 checkpoint."""
    cfg = write_config(tmp_path, IMPORTED)
    save = tmp_path / "saved"
    r = train("-c", cfg, save_dir=save, env=ext)
    assert r.returncode == 0, r.stderr
    straight = only_run(save, "imported")
    final = load(straight / "checkpoint-epoch4.pth")
    assert "layers.0.weight" in final["model_state_dict"]  # the external Net was trained
    saved = read_json(straight / "config.json")
    assert saved["optimizer"]["type"] == "torch.optim.AdamW"
    cosine = saved["lr_scheduler"]["args"]["schedulers"][1]["args"]["T_max"]
    assert isinstance(cosine, int) and cosine > 1  # auto resolved for an imported child

    r = train("-r", straight / "checkpoint-epoch2.pth", save_dir=save, env=ext)
    assert r.returncode == 0, r.stderr
    branch = [p for p in run_dirs(save, "imported") if p != straight]
    assert len(branch) == 1
    resumed = load(branch[0] / "checkpoint-epoch4.pth")
    assert_same_weights(final["model_state_dict"], resumed["model_state_dict"])
    assert_same_weights(final["optimizer_state_dict"]["state"][0],
                        resumed["optimizer_state_dict"]["state"][0])
    assert final["lr_scheduler_state_dict"] == resumed["lr_scheduler_state_dict"]


@pytest.mark.parametrize("override, message", [
    ("arch.type=nopkg.models.Net",
     "arch.type: cannot import 'nopkg.models.Net': no module named 'nopkg' (is it installed, "
     "or its folder on PYTHONPATH?)"),
    ("arch.type=extmodels.missing.Net",
     "arch.type: cannot import 'extmodels.missing.Net': no module named 'extmodels.missing'"),
    ("arch.type=extmodels.nets.Nett",
     "arch.type: cannot import 'extmodels.nets.Nett': module 'extmodels.nets' has no "
     "attribute 'Nett'; did you mean 'Net'?"),
    ("arch.type=extmodels.broken.Net",
     "arch.type: cannot import 'extmodels.broken.Net': importing module 'extmodels.broken' "
     "failed: ModuleNotFoundError: No module named 'not_installed_x'"),
    ("optimizer.type=torch.optim.AdamWW",
     "optimizer.type: cannot import 'torch.optim.AdamWW': module 'torch.optim' has no "
     "attribute 'AdamWW'; did you mean 'AdamW'?"),
    ("optimizer.type=torch.nn.Linear",
     "optimizer.type: 'torch.nn.Linear' is not a subclass of torch.optim.Optimizer"),
    ("data_loader.type=extmodels.nets.Net",
     "data_loader.type: 'extmodels.nets.Net' is not a subclass of base.BaseDataLoader"),
    ("loss.type=torch.nn.NoSuchLoss",
     "loss.type: cannot import 'torch.nn.NoSuchLoss': module 'torch.nn' has no attribute"),
    ("metrics.0=nopkg.acc", "metrics[0]: cannot import 'nopkg.acc': no module named 'nopkg'"),
    ("lr_scheduler.args.schedulers.0.type=nopkg.Sched",
     "lr_scheduler.args.schedulers[0].type: cannot import 'nopkg.Sched': no module named"),
    ("lr_scheduler.type=torch.optim.Adam",
     "lr_scheduler.type: 'torch.optim.Adam' is not a subclass of "
     "torch.optim.lr_scheduler.LRScheduler or torch.optim.lr_scheduler.ReduceLROnPlateau"),
    ("+arch.args.depth=2", "arch.args.depth: unknown argument of Net (expected one of: "
     "in_features, out_features, hidden)"),
])
def test_import_failures_name_the_module(ext, override, message):
    with pytest.raises(ConfigError) as e:
        validate_config(apply_overrides(copy.deepcopy(IMPORTED), [override]))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_an_import_failure_is_one_line_exit_2(tmp_path, ext):
    save = tmp_path / "saved"
    r = train("-c", write_config(tmp_path, IMPORTED), "arch.type=extmodels.nets.Nett",
              save_dir=save, env=ext)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: {tmp_path / 'imported.json'}: arch.type: cannot import 'extmodels.nets.Nett': "
        "module 'extmodels.nets' has no attribute 'Nett'; did you mean 'Net'?")
    assert not save.exists()


def test_auto_resolves_in_imported_children():
    spec = resolve_auto(IMPORTED["lr_scheduler"], 40)
    assert spec["args"]["schedulers"][1]["args"]["T_max"] == 30  # 40 steps minus the milestone


def test_names_without_a_dot_are_unchanged():
    by_path = load_config(REPO / "config/digits_mlp.json", ["optimizer.type=torch.optim.Adam"])
    assert by_path["optimizer"]["type"] == "torch.optim.Adam"
    with pytest.raises(ConfigError, match="unknown optimizer 'AdamWW'; did you mean 'AdamW'"):
        load_config(REPO / "config/digits_mlp.json", ["optimizer.type=AdamWW"])
