"""Issue 26, items 1-8: overrides read and applied as Hydra 1.3 does, sweeps as its -m does.

Hydra's own parser (hydra.core.override_parser) and OmegaConf are the oracles; they are a dev
extra only (the product never imports them). Every case either gives Hydra's result or one
line naming what this project does not support.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
from conftest import REPO

hydra_parser = pytest.importorskip("hydra.core.override_parser.overrides_parser")
hydra_types = pytest.importorskip("hydra.core.override_parser.types")
config_loader = pytest.importorskip("hydra._internal.config_loader_impl")
omegaconf = pytest.importorskip("omegaconf")

from sweep.spec import split_command_line  # noqa: E402
from utils.config_io import apply_overrides, load_config_file, with_defaults  # noqa: E402
from utils.errors import ConfigError  # noqa: E402
from utils.override_items import parse_override  # noqa: E402
from utils.override_sweeps import Choice, Interval, Range  # noqa: E402

PARSER = hydra_parser.OverridesParser.create()
OmegaConf = omegaconf.OmegaConf

# values, as Hydra's parser reads them (key a)
VALUES = [
    "1", "-1", "+1", "1_000", "007", "0x10", "1.5", ".5", "5.", "1e-3", "1.5e3", "-1.e2",
    "inf", "-inf", "nan", "true", "TrUe", "false", "null", "NULL", "yes", "no", "on", "",
    "  b c ", "hello world", "a-b_c", "1abc", "1.2.3", "/data/out", "http://host:5000/x",
    "C:\\data", "b:c", "b : c", "x\\,y", "x\\ y", "\\\\", "x\\y", "\\(x\\)", "\\[x\\]",
    "\\{x\\}", "x\\=y", "x\\:y", "\\${seed}", "${seed}", "v${t}", "${oc.env:HOME}",
    "'x\\'y'", '"x\\"y"', "'a\\\\'", "'x,y'", '"x,y"', "''", '""', "[]", "[1,2]", "[1, 2]",
    "[ 1 , 2 ]", "[a b]", "[[1,2],[3]]", "{}", "{ }", "{lr:0.1}", "{lr: 0.1}",
    "{lr: 0.1, wd: 0}", "{a:b:c}", "{a: [1,2], b: {c: d}}", "{1:x, 2: y}", "{a:'x,y'}",
    "1,2", "1 ,2", "a,b,c", "[1,2],[3]", "'a,b',c", "choice(a,b)", "choice(1)",
    "choice([1,2],[3])", "choice(choice(1,2))", "choice (1,2)", "range(1,4)", "range(5)",
    "range(1,4,2)", "range(4,1,-1)", "range(0,1,0.25)", "range(1,4,0.5)",
    "range(start=1,stop=3)", "interval(0,1)", "interval(0.001,0.1)", "int(interval(1,10))",
    "tag(log,interval(1e-4,1e-1))", "tag(x,choice(1,2))", "sort(3,1,2)",
    "sort(3,1,2,reverse=true)", "sort([3,1,2])", "sort(range(3,0,-1))",
    "sort(range(1,4),reverse=true)", "sort(choice(b,a))", "int(3.5)", "int('3')", "int(1,2)",
    "int([1.5,2.5])", "int({a:1.5})", "int(range(1,3))", "float(1)", "float(range(1,3))",
    "str(1)", "str(true)", "str(1.5)", "str(choice(1,2))", "bool(1)", "bool(false)",
    "int(choice(1.5,2.5))",
    # rejected by Hydra's grammar: rejected here too, in one line
    "b #c", "/data/out #1", "run #3", "x#", "~x", "café", "a;b", "a=b", "[1,,2]", "[1,",
    "{a}", "{${x}:1}", "' x' y", "'x'y", "choice()", "choice(x=1)", "interval(1,2,3)",
    "int(x)", "bool(x)", "foo(1)", "x(", "range(1,2,0)",
]
KEYS = ["a.b.c=1", "a.0.b=1", "0=1", "a..b=1", "a =1", "+a.b=1", "++a.b=1", "~a.b", "~a.b=1",
        "~a=", "$a=1", "a-b=1"]
# what Hydra accepts and this project refuses in one line (the line names it)
REFUSED = {"a=glob(*)": "glob", "a=choice(1,2),3": "one sweep per key",
           "db/mysql=x": "config group", "a@pkg=1": "@PACKAGE"}


def _plain(value):
    """Hydra's parsed value, or this project's, in one comparable form."""
    if type(value).__name__ == "QuotedString":
        value = value.text
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, hydra_types.ChoiceSweep):
        return ("sweep", _plain(value.list), value.shuffle)
    if isinstance(value, hydra_types.RangeSweep):
        return ("sweep", _plain(list(value.range())), value.shuffle)
    if isinstance(value, hydra_types.IntervalSweep):
        return ("interval", value.start, value.end, "log" in value.tags)
    if isinstance(value, Choice):
        return ("sweep", _plain(value.values), value.shuffled)
    if isinstance(value, Range):
        return ("sweep", _plain(Range(value.start, value.stop, value.step).expand()),
                value.shuffled)
    if isinstance(value, Interval):
        return ("interval", value.low, value.high, "log" in value.tags)
    return (type(value).__name__, value)


def hydra_reads(item: str):
    """Hydra's (op, key, value), or None where its parser refuses the item."""
    try:
        ov = PARSER.parse_overrides([item])[0]
        value = ov.value()
        if isinstance(value, hydra_types.RangeSweep):
            list(value.range())
    except Exception:  # noqa: BLE001  (any refusal of Hydra's)
        return None
    return ov.type.name, ov.key_or_group, _plain(value)


def project_reads(item: str):
    """This project's (op, key, value), or the one-line error."""
    try:
        ov = parse_override(item)
        value = ov.value if ov.text is not None else None
        if isinstance(value, Range):
            value.expand()
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"override '{item[:57]}")
        return str(e)
    op = {"=": "CHANGE", "+": "ADD", "++": "FORCE_ADD", "~": "DEL"}[ov.op]
    return op, ov.key, _plain(value)


@pytest.mark.parametrize("item", [f"a={v}" for v in VALUES] + KEYS)
def test_values_read_as_hydra_reads_them(item):
    hydra, ours = hydra_reads(item), project_reads(item)
    if hydra is None:
        assert isinstance(ours, str), f"Hydra refuses {item!r}, the project read {ours!r}"
    else:
        assert ours == hydra


@pytest.mark.parametrize("item", sorted(REFUSED))
def test_what_hydra_accepts_and_we_do_not_is_one_line_naming_it(item):
    assert hydra_reads(item) is not None
    ours = project_reads(item)
    assert isinstance(ours, str) and REFUSED[item] in ours


BASE = {"name": "run", "seed": 42, "t": True, "n": None, "f": 0.001,
        "optimizer": {"type": "Adam", "args": {"lr": 0.001, "weight_decay": 0.0}},
        "arch": {"type": "MLP", "args": {"hidden": 64, "depth": 2, "sizes": [1, 2],
                                         "inner": {"a": 1, "b": 2}}},
        "trainer": {"epochs": 3, "save_dir": "saved/"}}
APPLIED = [
    ["optimizer.args={lr: 0.1}"], ["optimizer.args={lr:0.1}"], ["optimizer.args={}"],
    ["arch.args={hidden: 32}"], ["arch.args={inner: {a: 5}}"], ["arch.args.sizes=[3]"],
    ["+optimizer.args={momentum: 0.9}"], ["++optimizer.args={lr: 0.2}"],
    ["+arch.args.sizes=[7, 8]"], ["+n=1"], ["n={a: 1}"], ["optimizer={type: SGD}"],
    ["name=v${t}"], ["name=v${n}"], ["name=v${arch.args.inner}"], ["name=v${arch.args.sizes}"],
    ["name=v${f}"], ["name=\\${seed}"], ["name=x\\\\${seed}"], ["name=${seed}"],
    ["name='x\\'y'"], ["name=x\\,y"], ["name=a b"], ["trainer.save_dir=/data/out"],
    ["trainer.epochs=int(5.7)"], ["trainer.epochs=1", "trainer.epochs=2"],
    ["name=str(42)"], ["name=yes"], ["seed=1_000"], ["~arch.args.inner"],
    ["~arch.args.hidden=64"], ["arch.args.inner.a=null"], ["arch.args.sizes.0=9"],
    ["optimizer.args.lr=1e-2"], ["name=${arch.type}_${arch.args.depth}"],
]


def hydra_applies(overrides: list[str]) -> dict:
    cfg = OmegaConf.create(copy.deepcopy(BASE))
    parsed = PARSER.parse_overrides(overrides)
    config_loader.ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    return with_defaults(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("overrides", APPLIED, ids=" ".join)
def test_overrides_give_the_config_hydra_gives(overrides):
    assert apply_overrides(BASE, overrides) == hydra_applies(overrides)


@pytest.mark.parametrize("item", ["name=a,b", "seed=range(1,4)", "seed=choice(1,2)",
                                  "optimizer.args.lr=interval(0.1,1)", "seed=sort(2,1)"])
def test_a_sweep_without_m_is_one_line_suggesting_m(item):
    with pytest.raises(ConfigError) as e:
        apply_overrides(BASE, [item])
    assert "add -m" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("item", ["name=run #3", "trainer.save_dir=/data/out #1", "name=x#1"])
def test_hash_is_no_comment_but_an_error_as_in_hydra(item):
    assert hydra_reads(item) is None
    with pytest.raises(ConfigError, match="cannot appear in an unquoted value"):
        apply_overrides(BASE, [item])


def sweep_of(*items: str) -> tuple[list, dict]:
    args = SimpleNamespace(overrides=list(items), lr=None, bs=None)
    fixed, params = split_command_line(args, True, copy.deepcopy(BASE))
    return [item for item, _ in fixed], {p.label: p.values or
                                         (p.distribution, p.low, p.high) for p in params}


@pytest.mark.parametrize("value", ["1,2,3", "range(1,4)", "range(0,1,0.25)", "choice(a,b)",
                                   "sort(3,1,2)", "sort(range(3,0,-1))", "int(choice(1.5,2.5))",
                                   "float(range(1,3))", "str(1),str(2)", "[1,2],[3]",
                                   "{lr: 0.1},{lr: 0.2}", "choice(x\\,y,z)"])
def test_m_sweeps_the_values_hydra_sweeps(value):
    ov = PARSER.parse_overrides([f"seed={value}"])[0]
    hydra_values = [_plain(v) for v in ov.sweep_iterator()]
    _, params = sweep_of(f"seed={value}")
    assert [_plain(v) for v in params["seed"]] == hydra_values


def test_m_last_override_of_a_key_wins():
    fixed, params = sweep_of("arch.args.depth=1,2", "arch.args.depth=3")
    assert fixed == ["arch.args.depth=3"] and params == {}
    fixed, params = sweep_of("arch.args.depth=3", "arch.args.depth=1,2")
    assert fixed == [] and params == {"arch.args.depth": [1, 2]}


def test_m_shuffle_keeps_the_values_and_one_order():
    _, first = sweep_of("seed=shuffle(1,2,3,4,5)")
    _, again = sweep_of("seed=shuffle(1,2,3,4,5)")
    assert sorted(first["seed"]) == [1, 2, 3, 4, 5] and first == again


def test_m_interval_is_a_distribution():
    _, params = sweep_of("optimizer.args.lr=tag(log,interval(1e-4,1e-1))",
                         "arch.args.hidden=int(interval(16,128))")
    assert params == {"optimizer.args.lr": ("log_uniform", 1e-4, 1e-1),
                      "arch.args.hidden": ("int_uniform", 16, 128)}


def test_m_mapping_value_merges_in_each_trial():
    from sweep.plan import trial_config
    from sweep.spec import parse_params

    raw = load_config_file(REPO / "config/digits_mlp.yaml")
    args = SimpleNamespace(overrides=["optimizer.args={lr: 0.1},{lr: 0.2}"], lr=None, bs=None)
    _, params = split_command_line(args, True, raw)
    params = parse_params({}, "grid", params, set())
    config = trial_config(raw, params, {"optimizer.args": {"lr": 0.2}})
    assert config["optimizer"]["args"] == {**raw["optimizer"]["args"], "lr": 0.2}


def test_an_escaped_interpolation_in_a_file_is_literal(tmp_path):
    text = "name: 'run\\${seed}'\nseed: 3\nother: 'v${seed}'\n"
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    ours = apply_overrides(load_config_file(tmp_path / "c.yaml"), [])
    theirs = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    assert {k: ours[k] for k in theirs} == theirs == {"name": "run${seed}", "seed": 3,
                                                      "other": "v3"}
