"""Issue 24: a checkpoint, a run folder, a sweep folder and a config are data. Each case runs
train.py, test.py or api.py as a user (or an attacker) would and checks the outcome the
contract promises (docs/checkpoints.md, Trust; DESIGN.md section 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, read_csv, train

WINE = REPO / "config/wine_mlp.yaml"


def one_error(result, code: int, *named: str) -> str:
    """The run exited `code` with exactly one `error:` line naming each of `named`, and no
    traceback; that line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert all(n in lines[0] for n in named), (named, lines[0])
    return lines[0]


# --- sweep journals, plans, config limits (items 4, 5, 8)

def tiny_wine(path: Path) -> Path:
    """config/wine_mlp.yaml cut to one quick epoch."""
    config = yaml.safe_load(WINE.read_text())
    config["arch"]["args"]["hidden"] = 16
    config["trainer"].update(epochs=1, verbosity=0)
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_torn_journal_line_is_dropped_with_a_warning_and_the_sweep_goes_on(tmp_path):
    """A worker killed in the middle of an append leaves half a line at the end of
    study.journal: the rerun drops it (saying so), never appends onto it, and finishes."""
    optuna = pytest.importorskip("optuna", reason="the journal is Optuna's (the sweep extra)")
    save = tmp_path / "saved"
    command = ["-c", tiny_wine(tmp_path / "wine.yaml"), "-m", "optimizer.args.lr=0.003,0.01"]
    first = train(*command, save_dir=save)
    assert first.returncode == 0, first.stderr
    (journal,) = save.glob("sweeps/wine_mlp/*/study.journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    torn = lines[-1][:len(lines[-1]) // 2]  # the first half of a line a worker was writing
    journal.write_bytes(b"".join(lines) + torn)

    again = train(*command, save_dir=save)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    (warning,) = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert str(journal) in warning and f"dropped {len(torn)} bytes" in warning
    assert [json.loads(line) for line in journal.read_bytes().splitlines()]  # all whole
    rows = read_csv(journal.parent / "summary.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"finished"}
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal)))
    (study,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2

    third = train(*command, save_dir=save)  # a whole journal: nothing to drop, no warning
    assert third.returncode == 0 and "warning:" not in third.stderr, third.stderr


@pytest.mark.parametrize("extra", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_more_folds_than_the_smallest_class_stops_before_anything_runs(tmp_path, extra):
    """wine's smallest class has 37 samples outside the test split: --folds 200 is one line
    naming the limit, with or without --dry-run; no sweep folder, no trial process."""
    save = tmp_path / "saved"
    r = train("-c", WINE, "--folds", "200", *extra, save_dir=save)
    line = one_error(r, 2, "data_loader.args.folds", "200 folds", "use at most 37 folds")
    assert "class" in line
    assert not save.exists() and "trial 0" not in r.stdout


def test_as_many_folds_as_the_smallest_class_is_a_valid_plan(tmp_path):
    r = train("-c", WINE, "--folds", "37", "--dry-run", save_dir=tmp_path / "saved")
    assert r.returncode == 0, r.stderr
    assert "trial 36: data_loader.args.fold=36" in r.stdout
    assert not (tmp_path / "saved").exists()


@pytest.mark.parametrize("args, named", [
    (["--repeat", "0"], ["--repeat", "a positive integer", "got 0"]),
    (["--folds", "1"], ["--folds", "an integer >= 2", "got 1"]),
], ids=["repeat-0", "folds-1"])
def test_plans_that_cannot_run_are_one_line(tmp_path, args, named):
    save = tmp_path / "saved"
    one_error(train("-c", WINE, *args, save_dir=save), 2, *named)
    assert not save.exists()


def deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


def config_with(tmp_path: Path, suffix: str, key: str, raw_value: str) -> Path:
    """config/wine_mlp.yaml as JSON or YAML text with `key` (top level) set to the literal
    `raw_value`, written without a parser (which would refuse to build it)."""
    config = yaml.safe_load(WINE.read_text())
    config[key] = "PLACEHOLDER"
    text = json.dumps(config) if suffix == ".json" else yaml.safe_dump(config, width=1000)
    placeholder = '"PLACEHOLDER"' if suffix == ".json" else "PLACEHOLDER"
    path = tmp_path / f"c{suffix}"
    path.write_text(text.replace(placeholder, raw_value))
    return path


BIG = "9" * 5000


@pytest.mark.parametrize("suffix, key, value, named", [
    (".json", "seed", BIG, ["c.json", "seed", "5,000 digits", "64 bits"]),
    (".yaml", "seed", BIG, ["c.yaml", "seed", "5,000 digits", "64 bits"]),
    (".json", "extra", deep(200_000), ["c.json", "deeper than 100 levels"]),
    (".yaml", "extra", deep(200_000), ["c.yaml", "deeper than 100 levels"]),
    (".yaml", "extra", deep(200_000, "{a: ", "}").replace("{a: }", "{a: 1}"),
     ["c.yaml", "deeper than 100 levels"]),
], ids=["int-json", "int-yaml", "deep-json", "deep-yaml", "deep-yaml-mappings"])
def test_huge_integers_and_deep_nesting_in_a_file_are_one_line(tmp_path, suffix, key, value,
                                                                 named):
    save = tmp_path / "saved"
    r = train("-c", config_with(tmp_path, suffix, key, value), "--dry-run", save_dir=save)
    one_error(r, 2, *named)
    assert not save.exists()


@pytest.mark.parametrize("overrides, named", [
    ([f"seed={BIG}"], ["override 'seed=999", "seed: an integer of 5,000 digits"]),
    ([f"+extra={deep(3000)}"], ["override '+extra=[[[", "deeper than 100 levels"]),
    ([f"+extra={deep(3000, '{a: ', '}').replace('{a: }', '{a: 1}')}"],
     ["override '+extra={a: {a:", "deeper than 100 levels"]),
    ([f"+extra={deep(100)}"], ["extra.0.0", "deeper than 100 levels"]),  # 101 with the top
    (["seed=9223372036854775808"], ["seed", "an integer of 19 digits", "64 bits"]),
    (["-m", f"seed=1,{BIG}"], ["override 'seed=1,999", "5,000 digits"]),
], ids=["int", "deep-lists", "deep-mappings", "deep-101-in-all", "int64-max-plus-1", "sweep"])
def test_huge_integers_and_deep_nesting_in_an_override_are_one_line(tmp_path, overrides,
                                                                     named):
    save = tmp_path / "saved"
    r = train("-c", WINE, *overrides, "--dry-run", save_dir=save)
    one_error(r, 2, *named)
    assert not save.exists()


def test_a_config_at_the_limits_is_accepted(tmp_path):
    """int64's ends and 100 levels (the top-level mapping being the first) are fine."""
    r = train("-c", WINE, f"++extra={deep(99)}", "seed=9223372036854775807", "--print-config",
              "json", save_dir=tmp_path / "saved")
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)
    assert config["seed"] == 2**63 - 1 and json.dumps(config["extra"]) == deep(99)
