"""Issue 16 item 3: --print-config, --print-schema and the committed JSON Schema.

Every shipped config, sweep configs included (a run's config plus a `sweep` section, which
the schema types only as a mapping: sweep/spec.py checks it), validates against the schema
after composition; the committed docs/config.schema.json is what --print-schema prints.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, load_config, only_run, read_json, run_script, train

from trainer.config.json_schema import build_schema
from utils.config_io import apply_overrides, load_config_file

jsonschema = pytest.importorskip("jsonschema")  # the dev extra; not among the core floors
SCHEMA_FILE = REPO / "docs/config.schema.json"
SHIPPED = sorted(p for p in (REPO / "config").rglob("*") if p.suffix in (".json", ".yaml"))
GOOD = load_config(REPO / "config/digits_mlp.json")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return jsonschema.Draft202012Validator(schema)


def errors(validator, config: dict) -> list[tuple[str, str]]:
    return sorted((".".join(map(str, e.absolute_path)), e.message)
                  for e in validator.iter_errors(config))


def test_committed_schema_is_what_print_schema_prints():
    r = run_script("train.py", "--print-schema")
    assert r.returncode == 0, r.stderr
    assert r.stdout == SCHEMA_FILE.read_text(), (
        "docs/config.schema.json is stale: python -m trainer.config.generate")
    assert json.loads(r.stdout) == build_schema()


def test_shipped_configs_are_found():
    names = {p.relative_to(REPO).as_posix() for p in SHIPPED}
    assert {"config/digits_mlp.json", "config/wine_mlp.yaml",
            "config/sweeps/digits_grid.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_shipped_config_validates(validator, path):
    composed = apply_overrides(load_config_file(path), [])
    assert errors(validator, composed) == []
    assert errors(validator, load_config(path)) == []  # validated: defaults filled in


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.suffix == ".yaml"],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_yaml_configs_name_the_schema(path):
    first = path.read_text().splitlines()[0]
    target = Path(first.split("$schema=", 1)[1])
    assert first.startswith("# yaml-language-server: $schema=")
    assert (path.parent / target).resolve() == SCHEMA_FILE


def test_a_json_configs_schema_key_is_dropped():
    assert json.loads((REPO / "config/digits_mlp.json").read_text())["$schema"] == \
        "../docs/config.schema.json"
    assert "$schema" not in load_config_file(REPO / "config/digits_mlp.json")


def with_(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    node = config
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return config


@pytest.mark.parametrize("path, value, where", [
    ("arch.type", "MLPP", "arch.type"),
    ("arch.args.hidden", "wide", "arch.args.hidden"),
    ("arch.args.hiden", 3, "arch.args"),
    ("optimizer.type", "Adamm", "optimizer.type"),
    ("optimizer.args.betas", "x", None),  # untyped (a tuple): the schema leaves it to train.py
    ("optimizer.args.amsgrad", 1, "optimizer.args.amsgrad"),
    ("data_loader.args.sampler", "sometimes", "data_loader.args.sampler"),
    ("data_loader.args.training", True, "data_loader.args"),  # injected by the code
    ("lr_scheduler.args.step_size", 0.5, "lr_scheduler.args.step_size"),
    ("lr_scheduler.interval", "batch", "lr_scheduler.interval"),
    ("metrics", ["accuracy", "acuracy"], "metrics.1"),
    ("loss", "cross_entropyy", "loss"),
    ("trainer.amp", "fp8", "trainer.amp"),
    ("trainer.monitor", "lowest val_loss", "trainer.monitor"),
    ("trainer.epocs", 3, "trainer"),
    ("seed", -1, "seed"),
])
def test_the_schema_refuses_what_train_py_refuses(validator, path, value, where):
    found = errors(validator, with_(GOOD, path, value))
    assert [w for w, _ in found] == ([where] if where else []), found


@pytest.mark.parametrize("path, value", [
    ("optimizer.type", "torch.optim.AdamW"),
    ("arch.type", "mypkg.models.Net"),  # any args: the imported signature is checked at run time
    ("arch.args.hidden", "${trainer.epochs}"),
    ("lr_scheduler", {"type": "SequentialLR", "interval": "step", "args": {
        "schedulers": [{"type": "LinearLR", "args": {"start_factor": 0.1, "total_iters": 5}},
                       {"type": "CosineAnnealingLR", "args": {"T_max": "auto"}}],
        "milestones": [5]}}),
    ("loss", {"type": "CrossEntropyLoss", "args": {"weight": "auto"}}),
    ("trainer.ema", {"decay": 0.99}),
])
def test_the_schema_admits_paths_interpolations_and_recipes(validator, path, value):
    assert errors(validator, with_(GOOD, path, value)) == []


def test_a_file_with_a_base_need_not_be_complete(validator):
    assert errors(validator, {"_base_": ["common.yaml"], "arch": {"args": {"hidden": 8}}}) == []
    missing = errors(validator, {"arch": {"args": {"hidden": 8}}})
    assert missing == [("", f"'{k}' is a required property")
                       for k in sorted(["name", "data_loader", "optimizer", "loss", "trainer"])]


@pytest.mark.slow
def test_print_config_reloads_to_the_runs_config_json(tmp_path):
    """A composed config (_base_, ${...}, a $schema key, an override), printed as YAML and as
    JSON, then trained: both printouts read back to the run's config.json."""
    save = tmp_path / "saved"
    child = tmp_path / "child.yaml"
    child.write_text(f"# yaml-language-server: $schema=x.json\n"
                     f"_base_: {REPO}/config/wine_mlp.yaml\n"
                     "name: wine_h${arch.args.hidden}\narch: {args: {hidden: 16}}\n")
    common = ["trainer.epochs=1", f"trainer.save_dir={save}"]
    as_yaml = run_script("train.py", "-c", child, "--print-config", *common, cwd=tmp_path)
    as_json = run_script("train.py", "-c", child, *common, "--print-config", "json",
                         cwd=tmp_path)
    assert as_yaml.returncode == as_json.returncode == 0, as_yaml.stderr + as_json.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child.yaml"]  # nothing created
    printed = yaml.safe_load(as_yaml.stdout)
    assert json.loads(as_json.stdout) == printed
    assert printed["name"] == "wine_h16" and printed["trainer"]["keep_last"] == 0

    r = train("-c", child, *common, save_dir=save, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_json(only_run(save, "wine_h16") / "config.json") == printed
