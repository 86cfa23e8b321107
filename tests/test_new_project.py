"""new_project.py: a fresh project from the skeleton whose own tests pass and which trains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, run_script

SKELETON = {".gitignore", "README.md", "base", "config", "data_loader", "logger", "model",
            "pyproject.toml", "saved", "test.py", "tests", "train.py", "trainer", "utils"}


def run_in(folder: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=folder, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


@pytest.mark.slow
def test_new_project_passes_its_tests_and_trains(tmp_path):
    project = tmp_path / "my_project"
    r = run_script("new_project.py", project)
    assert r.returncode == 0, r.stderr
    assert f"next: cd {project} && python train.py -c config/example.json" in r.stdout
    assert {p.name for p in project.iterdir()} == SKELETON  # no sweep/, docs/, benchmarks/
    assert sorted(p.name for p in (project / "model").glob("*.py")) == [
        "__init__.py", "loss.py", "metric.py", "model.py", "weight_init.py"]
    assert "from sweep" not in (project / "train.py").read_text()
    assert 'name = "my_project"' in (project / "pyproject.toml").read_text()
    assert "python train.py -c config/example.json" in (project / "README.md").read_text()

    r = run_in(project, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "6 passed" in r.stdout

    r = run_in(project, "train.py", "-c", "config/example.json")
    assert r.returncode == 0, r.stderr
    experiment = project / "saved" / "models" / "example"
    runs = [p for p in experiment.iterdir() if p.is_dir()]  # beside them: the `latest` pointer
    assert (experiment / "latest").read_text().strip() == runs[0].name
    assert len(runs) == 1
    assert (runs[0] / "model_best.pth").is_file()
    assert (runs[0] / "checkpoint-epoch10.pth").is_file()

    r = run_in(project, "train.py", "-c", "config/example.json", "--repeat", "2")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: this project was written by new_project.py without "
                                "sweep/: --repeat needs it (write a new project with --with "
                                "sweep, or copy sweep/ from the template)")


@pytest.mark.slow
def test_with_sweep_and_api_copies_them_with_their_imports(tmp_path):
    project = tmp_path / "full"
    r = run_script("new_project.py", project, "--with", "sweep,api")
    assert r.returncode == 0, r.stderr
    assert {p.name for p in project.iterdir()} == SKELETON | {"sweep", "api.py"}
    assert "from sweep.runner import run_sweep" in (project / "train.py").read_text()
    assert (project / "config" / "sweeps" / "digits_grid.yaml").is_file()
    r = run_in(project, "-c", "import api, sweep.runner, sweep.spec, sweep.fold_test; "
                              "print(sorted(api.__all__))")
    assert r.returncode == 0, r.stderr


def test_refuses_a_non_empty_folder_and_an_unknown_part(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    r = run_script("new_project.py", tmp_path / "taken")
    assert r.returncode == 2
    assert r.stderr == f"error: {tmp_path / 'taken'}: exists and is not an empty folder; " \
                       f"choose a new one\n"
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    r = run_script("new_project.py", tmp_path / "new", "--with", "sweeps")
    assert r.returncode == 2
    assert r.stderr == ("error: --with sweeps: unknown part; did you mean 'sweep'? (expected "
                        "any of: sweep, docs, benchmarks, api)\n")
    assert not (tmp_path / "new").exists()
