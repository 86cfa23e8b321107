"""A contributor adds a trainer option: one row (and its check) in utils/options.py, then
`python -m trainer.config.generate`. Nothing else is edited, and the option validates,
trains, refuses a bad value in one line, shows in --print-schema and in docs/config.md.
Everything happens in a copy of the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, copy_checkout

DOC = "snapshot every N epochs into the log; an even number, 0 = off"
ROW = f'''    Option("snapshot_every", 2, "{DOC}", NON_NEGATIVE, "an integer >= 0",
           check=check_even),
'''
CHECK = '''def check_even(value: Any, ctx: Context) -> Any:
    """trainer.snapshot_every: an even number."""
    if value % 2:
        raise ConfigError(f"trainer.snapshot_every: expected an even number, got {value!r}")
    return value


'''


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True,
                          env=ENV, timeout=300)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the checkout with the new option written into utils/options.py alone and
    the generated files regenerated."""
    repo = copy_checkout(tmp_path_factory.mktemp("repo"))
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    options = repo / "utils/options.py"
    text = options.read_text()
    table = "TRAINER: dict[str, Option] = {o.name: o for o in (\n"
    assert table in text and "\n)}\n\nDATA_LOADER" in text
    head, tail = text.split(table)
    trainer, rest = tail.split("\n)}\n\nDATA_LOADER", 1)
    options.write_text(head.replace("# ---------------------------------------------------"
                                    "------------- the tables", CHECK + "# ---------------"
                                    "------------------------------------------------- the "
                                    "tables") + table + trainer + "\n" + ROW.rstrip("\n")
                       + "\n)}\n\nDATA_LOADER" + rest)
    stale = run(repo, "-m", "trainer.config.generate", "--check")
    assert stale.returncode == 1 and "docs/config.md" in stale.stderr, stale.stderr
    r = run(repo, "-m", "trainer.config.generate")
    assert r.returncode == 0, r.stderr
    assert run(repo, "-m", "trainer.config.generate", "--check").returncode == 0
    changed = sorted(str(p.relative_to(repo)) for p in repo.rglob("*")
                     if p.is_file() and before.get(p) != p.read_bytes()
                     and "__pycache__" not in p.parts)
    assert changed == ["docs/config.md", "docs/config.schema.json", "utils/options.py"]
    return repo


def test_a_config_setting_it_validates_and_trains(repo, tmp_path):
    r = run(repo, "train.py", "-c", "config/digits_mlp.json", "trainer.epochs=1",
            "trainer.snapshot_every=4", f"trainer.save_dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    (config_json,) = (tmp_path / "models/digits_mlp").glob("*/config.json")
    assert json.loads(config_json.read_text())["trainer"]["snapshot_every"] == 4
    r = run(repo, "train.py", "-c", "config/digits_mlp.json", "--print-config", "json")
    assert json.loads(r.stdout)["trainer"]["snapshot_every"] == 2  # the default, filled in


@pytest.mark.parametrize("value, message", [
    ("3", "trainer.snapshot_every: expected an even number, got 3"),
    ("-2", "trainer.snapshot_every: expected an integer >= 0, got -2"),
    ("often", "trainer.snapshot_every: expected an integer >= 0, got 'often'"),
])
def test_a_bad_value_is_one_line_naming_the_key(repo, tmp_path, value, message):
    r = run(repo, "train.py", "-c", "config/digits_mlp.json", f"trainer.snapshot_every={value}",
            f"trainer.save_dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: config/digits_mlp.json: {message}"]
    assert not (tmp_path / "models").exists()


def test_print_schema_shows_it_with_its_description(repo):
    r = run(repo, "train.py", "--print-schema")
    assert r.returncode == 0, r.stderr
    prop = json.loads(r.stdout)["properties"]["trainer"]["properties"]["snapshot_every"]
    assert prop["description"] == DOC and prop["default"] == 2
    assert {"type": "integer", "minimum": 0} in prop["anyOf"]
    assert json.loads((repo / "docs/config.schema.json").read_text()) == json.loads(r.stdout)


def test_the_docs_table_has_its_row(repo):
    page = (repo / "docs/config.md").read_text()
    assert f"| `trainer.snapshot_every` | `2` | {DOC} |" in page.splitlines()
