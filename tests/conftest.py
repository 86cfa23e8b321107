"""Shared helpers: run train.py / test.py as a user would, in a temporary save_dir."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from utils.run_pointer import LATEST_NAME  # noqa: E402  (the checkout's own modules)

# keep subprocesses light on the 2-core CI machine
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: float = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)],
                          cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


def train(*args: str, save_dir: Path, **kw) -> subprocess.CompletedProcess:
    """train.py with outputs under `save_dir` (an override appended to the command line)."""
    return run_script("train.py", *args, f"trainer.save_dir={save_dir}", **kw)


def run_dirs(save_dir: Path, name: str) -> list[Path]:
    """The experiment's run folders, oldest first (its `latest` pointer is none, nor the
    .lock of --resume auto)."""
    return sorted((p for p in (save_dir / "models" / name).iterdir()
                   if p.is_dir() and p.name != LATEST_NAME),
                  key=lambda p: p.stat().st_mtime)


def trial_run_dirs(save_dir: Path, name: str) -> list[Path]:
    """The run folders of sweep (fold, repeat) trials: they live in their sweep folder,
    saved/sweeps/<name>/<sweep_id>/models/<config name>/<run_id>/, not in saved/models/."""
    return sorted(p for p in (save_dir / "sweeps" / name).glob("*/models/*/*") if p.is_dir())


def only_run(save_dir: Path, name: str) -> Path:
    runs = run_dirs(save_dir, name)
    assert len(runs) == 1, runs
    return runs[0]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def tree_snapshot(root: Path) -> dict:
    """{relative path: (size, mtime)} of every file under root (a run folder's .lock aside:
    a resume takes it before it looks inside the folder, and leaves the run's files alone)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


def copy_checkout(dest: Path) -> Path:
    """The checkout's tracked (and untracked, not ignored) files copied to `dest`, outputs
    excluded: a place where commands run as printed without touching this checkout."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture
def save_dir(tmp_path: Path) -> Path:
    return tmp_path / "saved"


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One full run of the README's main job (config/digits_mlp.json); its run folder."""
    save = tmp_path_factory.mktemp("digits") / "saved"
    result = train("-c", REPO / "config/digits_mlp.json", save_dir=save)
    assert result.returncode == 0, result.stderr
    return only_run(save, "digits_mlp")


def load_config(path: Path, overrides: list[str] | None = None) -> dict:
    """The validated config of a file plus overrides, as train.py reads it."""
    from trainer.config.parse_config import validate_config
    from utils.config_io import apply_overrides, load_config_file

    return validate_config(apply_overrides(load_config_file(path), overrides or []))[0]
