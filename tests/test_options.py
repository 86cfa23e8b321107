"""One definition per config key (utils/options.py): the generated files are current, no
code reads a key of those sections with a default of its own, and the definitions are what
validation, defaults and the schema follow."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from conftest import ENV, REPO, copy_checkout, run_mains, run_script
from test_layers import project_modules

from utils.options import ABSENT, REQUIRED, TABLES, TRAINER, defaults

KNOWN_KEYS = {key for table in TABLES.values() for key in table}
LITERALS = (ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.Set, ast.UnaryOp)


def literal_default_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) of every `x.get("<known key>", <literal>)` in `tree`."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" and len(node.args) == 2):
            continue
        key, default = node.args
        if isinstance(key, ast.Constant) and key.value in KNOWN_KEYS \
                and isinstance(default, LITERALS):
            found.append((node.lineno, key.value))
    return found


def test_the_check_finds_a_hand_written_default():
    code = 'a = cfg.get("heartbeat_s", 60)\nb = cfg.get("epochs")\nc = d.get("other", 1)\n' \
           'e = cfg.get("metrics", [])\n'
    assert literal_default_reads(ast.parse(code)) == [(1, "heartbeat_s"), (4, "metrics")]


def test_no_code_reads_a_defined_key_with_a_default_of_its_own():
    """Defaults live in utils/options.py only: the resolved config holds them, and a section
    kept as written is read with utils.options.value_of."""
    bad = [f"{path.relative_to(REPO)}:{line} .get({key!r}, ...)"
           for path in project_modules().values()
           for line, key in literal_default_reads(ast.parse(path.read_text()))]
    assert not bad, "defaults written outside utils/options.py:\n" + "\n".join(bad)


def test_generated_files_are_current():
    r = subprocess.run([sys.executable, "-m", "trainer.config.generate", "--check"], cwd=REPO,
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr


def test_check_names_a_stale_file(tmp_path):
    """--check in a copy whose docs table lost a row: exit 1 naming docs/config.md."""
    copy_checkout(tmp_path)
    page = tmp_path / "docs/config.md"
    page.write_text(page.read_text().replace("| `trainer.keep_last` |", "| `trainer.kept` |"))
    r = subprocess.run([sys.executable, "-m", "trainer.config.generate", "--check"],
                       cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "stale: docs/config.md (regenerate: python -m trainer.config.generate)"]
    r = subprocess.run([sys.executable, "-m", "trainer.config.generate"], cwd=tmp_path,
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "wrote docs/config.md"
    assert "| `trainer.keep_last` |" in page.read_text()


def test_print_config_holds_every_trainer_default():
    r = run_script("train.py", "-c", "config/digits_mlp.json", "--print-config", "json")
    assert r.returncode == 0, r.stderr
    trainer = json.loads(r.stdout)["trainer"]
    written = json.loads((REPO / "config/digits_mlp.json").read_text())["trainer"]
    assert set(trainer) == set(TRAINER)
    for key, value in defaults(TRAINER).items():
        if key != "mlflow":  # its check resolves null to {tracking_uri: null, experiment: null}
            assert trainer[key] == written.get(key, value), key
    assert trainer["heartbeat_s"] == 30


def test_every_option_has_a_description_and_a_default_that_passes_its_check():
    from utils.options import check_value
    for prefix, table in TABLES.items():
        for key, option in table.items():
            assert option.doc and "\n" not in option.doc, prefix + key
            if option.default not in (REQUIRED, ABSENT) and not option.section:
                assert check_value(option, option.default_value(), prefix + key) \
                    == option.default_value() or option.off


BAD_VALUES = [  # (override, the message after the config's name)
    ("trainer.heartbeat_s=-1",
     "trainer.heartbeat_s: expected a number of seconds >= 0 (0 = off), got -1"),
    ("trainer.verbosity=true", "trainer.verbosity: expected 0, 1 or 2, got True"),
    ("trainer.len_epoch=0", "trainer.len_epoch: expected a positive integer or null (off), "
                            "got 0"),
    ("+data_loader.args.folds=1", "data_loader.args.folds: expected an integer >= 2 (or null), "
                                  "got 1"),
    ("+lr_scheduler.interval=batch", "lr_scheduler.interval: expected step or epoch, got "
                                     "'batch'"),
    ("n_gpu=-2", "n_gpu: expected an integer >= 0, got -2"),
]


@pytest.fixture(scope="module")
def bad_value_runs(tmp_path_factory) -> dict[str, object]:
    """train.py --print-config of each override of BAD_VALUES, all through train.py's main()
    in one process (conftest.run_mains)."""
    save = tmp_path_factory.mktemp("bad-values")
    results = run_mains([("train.py", ["-c", "config/digits_mlp.json", override,
                                       "--print-config", f"trainer.save_dir={save}"])
                         for override, _ in BAD_VALUES])
    return {override: r for (override, _), r in zip(BAD_VALUES, results)}


@pytest.mark.parametrize("override, message", BAD_VALUES)
def test_a_bad_value_is_one_line_naming_the_key(override, message, bad_value_runs):
    r = bad_value_runs[override]
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"error: config/digits_mlp.json: {message}"
