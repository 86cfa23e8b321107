"""The fast tier's module check (tests/conftest.py, docs/design.md "Tests") records what it
should, and the few modules no other fast test runs get a quick test of their own: the script
that made data_loader/data/crop_yield.csv, two benchmarks' building blocks, and the sweep
stand-in of projects written without sweep/."""

from __future__ import annotations

import csv
import importlib
import io
import json
import subprocess
import sys
from argparse import Namespace

import pytest
from conftest import ENV, MODULE_LOG_SITE, REPO, load_config

from utils.errors import ConfigError


def test_a_subprocess_records_the_checkout_files_it_imported(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    env = {**ENV, "PYTHONPATH": str(MODULE_LOG_SITE), "PROJECT_MODULE_LOG": str(log),
           "PROJECT_MODULE_ROOT": str(REPO)}
    script = tmp_path / "script.py"  # outside the checkout: not recorded itself
    script.write_text("import sys\nsys.path.insert(0, sys.argv[1])\nimport utils.errors\n")
    r = subprocess.run([sys.executable, str(script), str(REPO)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == r.stderr == "", r.stderr
    (written,) = log.iterdir()
    recorded = written.read_text().splitlines()
    assert {"utils/__init__.py", "utils/errors.py"} <= set(recorded)
    assert all(not name.startswith(("/", "..")) for name in recorded)
    assert not any(name.startswith("torch") for name in recorded)

    r = subprocess.run([sys.executable, str(REPO / "train.py"), "--help"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recorded = {line for f in log.iterdir() for line in f.read_text().splitlines()}
    assert "train.py" in recorded  # the script itself (its __main__ module)


@pytest.mark.parametrize("name", ["crop_yield", "species"])
def test_shipped_csv_is_remade_byte_for_byte(monkeypatch, name):
    """make_<name>_csv.py (a script: its folder is on sys.path) makes the committed file."""
    monkeypatch.syspath_prepend(str(REPO / "data_loader/data"))
    maker = importlib.import_module(f"make_{name}_csv")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(maker.COLUMNS)
    writer.writerows(maker.make_rows())
    assert out.getvalue() == (REPO / f"data_loader/data/{name}.csv").read_text()


def test_images_benchmark_builds_its_arguments():
    from benchmarks import images

    assert images.CONFIG.is_file() and images.TrainerRunner is not None


def test_class_weights_benchmark_keeps_only_some_of_class_0(tmp_path):
    from benchmarks.class_weights import CONFIG, write_imbalanced_wine

    write_imbalanced_wine(tmp_path / "wine.csv", keep=8)
    with open(tmp_path / "wine.csv", newline="") as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    assert [labels.count(c) for c in "012"] == [8, 71, 48]
    assert CONFIG.is_file()


def test_memory_benchmark_config_is_valid(tmp_path):
    from benchmarks.memory import read_json_line, synthetic_config

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(synthetic_config(1000, 10, str(tmp_path / "saved"))))
    config = load_config(path)
    assert config["data_loader"]["args"]["n_classes"] == 10
    assert read_json_line('noise\n{"peak": 1}\n') == {"peak": 1}


def test_without_sweep_stand_ins_refuse_sweeps_and_pass_plain_runs(tmp_path):
    from trainer.run import without_sweep

    assert without_sweep.load_sweep(Namespace(config=None, resume=None)) is None
    for option, args in (("-m", Namespace(multirun=True)), ("--folds", Namespace(folds=3))):
        with pytest.raises(ConfigError, match=f"{option} needs it"):
            without_sweep.load_sweep(args)
    with pytest.raises(ConfigError, match="is_sweep_folder needs it"):
        without_sweep.is_sweep_folder(tmp_path)  # test.py asks trainer/run/sweep_request.py
    with pytest.raises(ConfigError, match="run_sweep needs it"):
        without_sweep.run_sweep()
