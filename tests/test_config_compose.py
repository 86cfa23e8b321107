"""Issue 16: Hydra's override forms, _base_ composition with _delete_, ${} interpolation."""

from __future__ import annotations

import pytest
from conftest import REPO  # noqa: F401  (puts the checkout on sys.path)

from utils.config_io import apply_overrides, load_config_file
from utils.errors import ConfigError

BASE = {"name": "x", "trainer": {"epochs": 3}, "arch": {"type": "MLP", "args": {"hidden": 4}}}

# (override, expected (path, value) or None for deleted, or the error text), per Hydra's docs
TABLE = [
    ("trainer.epochs=5", ("trainer.epochs", 5)),
    ("trainer.epochz=5", "did you mean 'trainer.epochs'?"),
    ("arch.args.foo=1", "+arch.args.foo="),
    ("+arch.args.foo=1", ("arch.args.foo", 1)),
    ("+trainer.epochs=5", "already in the config"),
    ("++trainer.epochs=5", ("trainer.epochs", 5)),
    ("++arch.args.foo=1", ("arch.args.foo", 1)),
    ("~arch.args.hidden", ("arch.args.hidden", None)),
    ("~arch.args.hidden=4", ("arch.args.hidden", None)),
    ("~arch.args.hidden=5", "not deleted"),
    ("~arch.args.nope", "no such key"),
    ("arch.args.hidden=1,2", "add -m"),
    ("arch.args.hidden=[1,2]", ("arch.args.hidden", [1, 2])),
    ("arch.args.hidden='1,2'", ("arch.args.hidden", "1,2")),
]


def get(config, path):
    for part in path.split(".")[:-1]:
        config = config[part]
    return config.get(path.split(".")[-1], None)


@pytest.mark.parametrize(("item", "expected"), TABLE)
def test_override_forms(item, expected):
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=None) as e:
            apply_overrides(BASE, [item])
        assert expected in str(e.value) and "\n" not in str(e.value)
        if "epochz" in item:
            assert "+trainer" not in str(e.value)
    else:
        assert get(apply_overrides(BASE, [item]), expected[0]) == expected[1]


def test_base_chain_delete_and_interpolation(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\noptimizer: {type: Adam, args: {lr: 0.1, eps: 1}}\n"
                                     "arch: {type: MLP, args: {hidden: 8, depth: 2}}\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\narch: {args: {hidden: 16}}\n"
                                     "optimizer: {_delete_: true, type: SGD, args: {lr: 0.5}}\n")
    (tmp_path / "c.yaml").write_text("_base_: [b.yaml]\nname: h${arch.args.hidden}\n"
                                     "width: ${arch.args.hidden}\n")
    config = apply_overrides(load_config_file(tmp_path / "c.yaml"), [])
    assert config["arch"] == {"type": "MLP", "args": {"hidden": 16, "depth": 2}}
    assert config["optimizer"] == {"type": "SGD", "args": {"lr": 0.5}}
    assert config["name"] == "h16" and config["width"] == 16 and "_base_" not in config


def test_cycle_and_missing_interpolation(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="_base_ cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_config_file(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match=r"name: interpolation \$\{nope\}: no such key"):
        apply_overrides({"name": "${nope}"}, [])
    with pytest.raises(ConfigError, match="interpolation cycle"):
        apply_overrides({"a": "${b}", "b": "${a}"}, [])
