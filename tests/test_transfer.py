"""Issue 27 items 3-5: arch.pretrained, optimizer.param_groups and no_decay, ResNet, and the
fine-tuning example (docs/transfer.md).

A tiny ResNet on the 8x8 digits (image_size 8: the loader's flat rows are reshaped), so
nothing here needs the image-folder loader.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, assert_same_weights, load, only_run, read_csv, train

from logger.writer import csv_columns
from model.resnet import ResNet
from trainer.config.parse_config import ConfigParser, validate_config
from utils.errors import ConfigError

ARCH = {"in_channels": 1, "out_features": 10, "depths": [1, 1], "width": 8, "image_size": 8}
BASE = {
    "name": "resnet_digits", "seed": 3,
    "arch": {"type": "ResNet", "args": ARCH},
    "data_loader": {"type": "DigitsDataLoader", "args": {
        "n_class": 10, "batch_size": 128, "shuffle": True, "validation_split": 0.1,
        "test_split": 0.2, "num_workers": 0}},
    "optimizer": {"type": "AdamW", "args": {"lr": 0.003, "weight_decay": 0.05},
                  "param_groups": [{"params": "stages.0.*", "lr": 3.0e-4}, {"params": "*"}],
                  "no_decay": ["bias", "norm"]},
    "lr_scheduler": {"type": "StepLR", "args": {"step_size": 1, "gamma": 0.5}},
    "loss": "cross_entropy", "metrics": ["accuracy"],
    "trainer": {"epochs": 3, "save_dir": "saved/", "save_period": 1, "verbosity": 1,
                "monitor": "min val_loss"},
}
# the groups BASE makes: stages.0 (decay, no decay), the rest (decay, no decay)
GROUP_LRS, GROUP_DECAY = [3.0e-4, 3.0e-4, 3.0e-3, 3.0e-3], [0.05, 0.0, 0.05, 0.0]


def config(**changes) -> dict:
    """BASE with dotted keys replaced (`arch__pretrained=...` sets arch.pretrained)."""
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = cfg
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def built(cfg: dict):
    return ConfigParser.from_dict(cfg, "test.yaml").build_all()


@pytest.fixture
def pretrained_log():
    """The lines the pretrained loader logs, whatever the logging setup."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("train.pretrained")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield lines
    log.removeHandler(handler)
    log.setLevel(old)


def logged(lines: list[str], what: str) -> list[str]:
    """The names listed after 'pretrained: <what>...: '."""
    line = next(line for line in lines if line.startswith(f"pretrained: {what}"))
    names = line.split(": ", 2)[2]
    return [] if names == "none" else names.split(", ")


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory) -> Path:
    """A 3-epoch run of BASE (param groups, no_decay, StepLR); its run folder."""
    root = tmp_path_factory.mktemp("grouped")
    r = train("-c", write_config(root / "base.yaml", BASE), save_dir=root / "saved")
    assert r.returncode == 0, r.stderr
    return only_run(root / "saved", "resnet_digits")


def test_resnet_names_and_shapes():
    model = ResNet(**{**ARCH, "depths": [2, 1], "width": 4})
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "stem.0.weight" and names[-2:] == ["fc.weight", "fc.bias"]
    assert {n.split(".")[1] for n in names if n.startswith("stages.")} == {"0", "1"}
    assert model.fc.in_features == 8  # width doubles per stage
    assert model(torch.randn(5, 64)).shape == (5, 10)  # flat rows, as the digits come
    assert ResNet(in_channels=3, out_features=4, depths=[1], width=4)(
        torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_pretrained_loads_skips_and_maps_as_the_log_says(tmp_path, pretrained_log):
    source = ResNet(**{**ARCH, "out_features": 5})
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    state = {(k if k.startswith("fc.") else f"backbone.{k}"): v
             for k, v in source.state_dict().items()}
    state["backbone.extra.weight"] = torch.ones(3)  # the model has no such tensor
    torch.save(state, tmp_path / "weights.pth")
    spec = {"path": str(tmp_path / "weights.pth"), "skip": ["fc.*"],
            "prefix_map": {"backbone.": ""}}
    model = built(config(arch__pretrained=spec)).model
    fresh = ResNet(**ARCH).state_dict()

    loaded, skipped = logged(pretrained_log, "loaded"), logged(pretrained_log, "skipped")
    left, ignored = logged(pretrained_log, "left"), logged(pretrained_log, "in the file")
    own = model.state_dict()
    assert loaded == [k for k in own if not k.startswith(("fc.", "input_"))]
    assert skipped == ["fc.weight", "fc.bias"] and left == ["fc.weight", "fc.bias"]
    assert ignored == ["extra.weight"]
    for name in loaded:
        assert torch.equal(own[name], state[f"backbone.{name}"]), name
    assert own["fc.weight"].shape == (10, 16)  # the new head: not the file's
    assert not torch.equal(own["stem.0.weight"], fresh["stem.0.weight"])


def test_a_state_dict_a_safetensors_file_and_a_checkpoint_all_load(tmp_path, grouped_run,
                                                                   pretrained_log):
    from safetensors.torch import save_file

    weights = load(grouped_run / "checkpoint-epoch1.pth")["model_state_dict"]
    torch.save(weights, tmp_path / "plain.pt")
    save_file(weights, str(tmp_path / "weights.safetensors"))
    files = [tmp_path / "plain.pt", tmp_path / "weights.safetensors",
             grouped_run / "checkpoint-epoch1.pth", grouped_run]  # a run folder: model_best
    best = load(grouped_run / "model_best.pth")["model_state_dict"]
    for path, expected in zip(files, [weights, weights, weights, best]):
        pretrained_log.clear()
        spec = {"path": str(path), "strict": True}
        model = built(config(arch__pretrained=spec)).model
        own = model.state_dict()
        assert logged(pretrained_log, "left") == [], path
        for name in logged(pretrained_log, "loaded"):
            assert torch.equal(own[name], expected[name]), (path, name)
        assert len(logged(pretrained_log, "loaded")) == len(own) - 2  # all but input_*


def names_of_groups(cfg: dict) -> list[list[str]]:
    """Each optimizer group's parameter names, for a model built as `cfg` builds it."""
    parts = built(cfg)
    names = {id(p): n for n, p in parts.model.named_parameters()}
    return [[names[id(p)] for p in g["params"]] for g in parts.optimizer.param_groups]


def test_param_groups_and_no_decay_in_the_checkpoint(grouped_run):
    ckpt = load(grouped_run / "checkpoint-epoch2.pth")
    groups = ckpt["optimizer_state_dict"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == GROUP_LRS
    assert [g["lr"] for g in groups] == pytest.approx([lr * 0.25 for lr in GROUP_LRS])
    assert [g["weight_decay"] for g in groups] == GROUP_DECAY
    names = names_of_groups(BASE)
    assert [len(g["params"]) for g in groups] == [len(n) for n in names]
    assert all(n.startswith("stages.0.") for n in names[0] + names[1])
    assert not any(n.startswith("stages.0.") for n in names[2] + names[3])
    # weight_decay 0: exactly the biases and the BatchNorm weights
    model = ResNet(**ARCH)
    norms = {f"{m}.{p}" for m, mod in model.named_modules()
             if isinstance(mod, torch.nn.BatchNorm2d) for p, _ in mod.named_parameters()}
    expected = {n for n, _ in model.named_parameters() if n.endswith(".bias")} | norms
    assert set(names[1] + names[3]) == expected and "fc.bias" in expected
    assert "fc.weight" in names[2] and "stem.1.weight" in names[3]


def test_lr_columns_in_metrics_csv(grouped_run):
    rows = read_csv(grouped_run.parents[2] / "log" / "resnet_digits" / grouped_run.name /
                    "metrics.csv")
    assert [k for k in rows[0] if k.startswith("lr")] == ["lr", "lr/0", "lr/1", "lr/2", "lr/3"]
    for epoch, row in enumerate(rows):
        scale = 0.5 ** epoch
        assert float(row["lr"]) == pytest.approx(GROUP_LRS[0] * scale)
        assert [float(row[f"lr/{i}"]) for i in range(4)] == pytest.approx(
            [lr * scale for lr in GROUP_LRS])
    assert "lr/0" not in csv_columns(["accuracy"], True)  # one group: lr alone


def test_resume_keeps_the_groups_bit_identically(tmp_path, grouped_run):
    short = tmp_path / "saved"
    cfg = write_config(tmp_path / "base.yaml", BASE)
    assert train("-c", cfg, "trainer.epochs=2", save_dir=short).returncode == 0
    run = only_run(short, "resnet_digits")
    r = train("-r", run / "checkpoint-epoch2.pth", "trainer.epochs=3", save_dir=short)
    assert r.returncode == 0, r.stderr
    straight, resumed = (load(d / "checkpoint-epoch3.pth") for d in (grouped_run, run))
    assert_same_weights(straight["model_state_dict"], resumed["model_state_dict"])
    a, b = straight["optimizer_state_dict"], resumed["optimizer_state_dict"]
    assert a["param_groups"] == b["param_groups"] and len(a["param_groups"]) == 4
    assert a["state"].keys() == b["state"].keys()
    for index in a["state"]:
        assert_same_weights(a["state"][index], b["state"][index])


def test_fine_tuning_keeps_the_new_configs_groups(tmp_path, grouped_run):
    groups = [{"params": "stages.*", "lr": 1.0e-4}, {"params": "*", "lr": 1.0e-3}]
    cfg = write_config(tmp_path / "ft.yaml", config(optimizer__param_groups=groups,
                                                    lr_scheduler=None))
    r = train("-c", cfg, "-r", grouped_run / "checkpoint-epoch3.pth", "trainer.epochs=4",
              save_dir=tmp_path / "saved")
    assert r.returncode == 0, r.stderr
    ckpt = load(only_run(tmp_path / "saved", "resnet_digits") / "checkpoint-epoch4.pth")
    found = ckpt["optimizer_state_dict"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in found] == [
        (1.0e-4, 0.05), (1.0e-4, 0.0), (1.0e-3, 0.05), (1.0e-3, 0.0)]


@pytest.mark.parametrize("change, message", [
    ({"arch__args__out_features": 5}, "fc.weight is [10, 16] in the file and [5, 16] in the "
                                      "model"),
    ({"arch__args__width": 4}, "stem.0.weight is [8, 1, 3, 3] in the file and [4, 1, 3, 3] "
                               "in the model"),
    ({"arch__args__depths": [1, 1, 1], "arch__pretrained__skip": ["fc.*"]},
     "(strict): the model's stages.2.0.conv1.weight is missing from the file"),
])
def test_weights_that_do_not_fit_are_one_line_before_any_run_folder(tmp_path, grouped_run,
                                                                    change, message):
    spec = {"path": str(grouped_run / "model_best.pth"), "strict": True}
    cfg = write_config(tmp_path / "c.yaml", config(arch__pretrained=spec, **change))
    r = train("-c", cfg, save_dir=tmp_path / "saved")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "arch.pretrained" in lines[0]
    assert message in lines[0], lines[0]
    assert not (tmp_path / "saved").exists()


@pytest.mark.parametrize("pretrained, message", [
    ({"path": "w.pth", "skipp": []}, "arch.pretrained.skipp: unknown key"),
    ({"strict": True}, "arch.pretrained.path: required key is missing"),
    ({"path": 3}, "arch.pretrained.path: expected the path of a weights file"),
    ({"path": "w.pth", "strict": "yes"}, "arch.pretrained.strict: expected true or false"),
    ({"path": "w.pth", "skip": "fc.*"}, "arch.pretrained.skip: expected a list"),
    ({"path": "w.pth", "prefix_map": ["a"]}, "arch.pretrained.prefix_map: expected a mapping"),
    ("w.pth", "arch.pretrained: expected a mapping"),
])
def test_pretrained_keys_are_checked_up_front(pretrained, message):
    with pytest.raises(ConfigError) as e:
        validate_config(config(arch__pretrained=pretrained))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_missing_weights_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="arch.pretrained.path: weights file not found"):
        built(config(arch__pretrained={"path": str(tmp_path / "none.pth")}))
    (tmp_path / "junk.pth").write_bytes(b"not torch")
    with pytest.raises(ConfigError, match="arch.pretrained.path: .*junk.pth: refused to load it"):
        built(config(arch__pretrained={"path": str(tmp_path / "junk.pth")}))


@pytest.mark.parametrize("optimizer, message", [
    ({"param_groups": [{"params": "stage.*"}, {"params": "*"}]},
     "optimizer.param_groups[0].params: 'stage.*' matches no parameter"),
    ({"param_groups": [{"params": "stages.*"}]},
     "optimizer.param_groups: the parameter stem.0.weight matches no group's pattern"),
])
def test_param_group_patterns_are_checked_against_the_model(optimizer, message):
    with pytest.raises(ConfigError) as e:
        built(config(optimizer=({**BASE["optimizer"], **optimizer})))
    assert message in str(e.value)


@pytest.mark.parametrize("optimizer, message", [
    ({"param_groups": []}, "optimizer.param_groups: expected a non-empty list"),
    ({"param_groups": [{"lr": 0.1}]}, "optimizer.param_groups[0]: expected a mapping with "
                                      "'params'"),
    ({"param_groups": [{"params": "*", "lrr": 0.1}]}, "optimizer.param_groups[0].lrr: "
                                                      "unknown argument of AdamW"),
    ({"param_groups": [{"params": "*", "betas": 0.9}]}, "optimizer.param_groups[0].betas"),
    ({"no_decay": "bias"}, "optimizer.no_decay: expected a list"),
    ({"groups": []}, "optimizer.groups: unknown key"),
])
def test_param_group_keys_are_checked_up_front(optimizer, message):
    with pytest.raises(ConfigError) as e:
        validate_config(config(optimizer=({**BASE["optimizer"], **optimizer})))
    assert message in str(e.value)


def test_no_decay_alone_makes_two_groups():
    optimizer = {"type": "SGD", "args": {"lr": 0.1, "weight_decay": 0.01}, "no_decay": ["bias"]}
    names = names_of_groups(config(optimizer=optimizer))
    assert len(names) == 2 and all(n.endswith(".bias") for n in names[1])
    assert "stem.1.weight" in names[0]  # a norm weight decays unless `norm` is listed


def example(name: str, save: Path, tmp_path: Path) -> Path:
    """config/<name>.yaml on the digits instead of the image folder, saving under `save`."""
    cfg = yaml.safe_load((REPO / f"config/{name}.yaml").read_text())
    cfg["data_loader"] = BASE["data_loader"]
    cfg["arch"]["args"]["image_size"] = 8
    cfg["trainer"].update(epochs=1, save_period=1)
    pretrained = cfg["arch"].get("pretrained")
    if pretrained:
        pretrained["path"] = str(save / Path(pretrained["path"]).relative_to("saved"))
    return write_config(tmp_path / f"{name}.yaml", cfg)


def test_the_finetune_example_starts_from_the_pretrain_runs_weights(tmp_path):
    save = tmp_path / "saved"
    r = train("-c", example("images_pretrain", save, tmp_path), save_dir=save)
    assert r.returncode == 0, r.stderr
    r = train("-c", example("images_finetune", save, tmp_path), save_dir=save)
    assert r.returncode == 0, r.stderr
    best = only_run(save, "images_pretrain") / "model_best.pth"
    assert f"pretrained: loaded 54 tensors from {best}" in r.stdout + r.stderr
    assert "pretrained: skipped (arch.pretrained.skip): fc.weight, fc.bias" in r.stdout + r.stderr
    run = only_run(save, "images_finetune")
    info = (save / "log" / "images_finetune" / run.name / "info.log").read_text()
    assert f"pretrained: loaded 54 tensors from {best}" in info  # the run's log has it too
    ckpt = load(run / "checkpoint-epoch1.pth")
    groups = ckpt["optimizer_state_dict"]["param_groups"]
    assert [g["lr"] for g in groups] == [1.0e-4, 1.0e-4, 1.0e-3, 1.0e-3]


def test_the_schema_knows_the_new_keys():
    jsonschema = pytest.importorskip("jsonschema")
    import json

    schema = json.loads((REPO / "docs/config.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = config(arch__pretrained={"path": "w.pth", "strict": False, "skip": ["fc.*"],
                                    "prefix_map": {"backbone.": ""}})
    assert list(validator.iter_errors(good)) == []
    for bad in (config(arch__pretrained={"path": "w.pth", "skipp": []}),
                config(arch__pretrained={"skip": []}),
                config(optimizer={**BASE["optimizer"], "param_groups": [{"lr": 0.1}]}),
                config(optimizer={**BASE["optimizer"], "no_decay": "bias"})):
        assert list(validator.iter_errors(bad)) != []
        with pytest.raises(ConfigError):  # never stricter than train.py's check, nor looser
            validate_config(bad)


def test_a_resume_that_changes_the_groups_is_one_line_before_writing(tmp_path, grouped_run):
    before = sorted(p.name for p in grouped_run.iterdir())
    r = train("-r", grouped_run / "checkpoint-epoch2.pth", "optimizer.no_decay=[]",
              save_dir=grouped_run.parents[2])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit the parameter groups" in lines[0], lines
    assert "[2, 4, 5, 9] parameters per group in the checkpoint, [6, 14] here" in lines[0]
    assert sorted(p.name for p in grouped_run.iterdir()) == before
    assert len([p for p in grouped_run.parent.iterdir() if p.is_dir()]) == 1
