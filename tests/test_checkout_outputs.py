"""Issue 26 (item 15): what documented commands write in the checkout is git-ignored, and the
checkout holds no file made on another machine (a committed mlruns/ held an absolute path)."""

from __future__ import annotations

import subprocess

import pytest
from conftest import REPO

WRITTEN = ["schema.json", "digits.onnx", "digits.onnx.data", "digits.pt2",
           "digits.safetensors", "config/digits_mlp_lr.yaml", "config/digits_mlp_lr.json",
           "mlruns/0/meta.yaml", "sevens.csv", "lr_find.png", "lr_find.csv", "compare.png",
           "predictions.csv", "data/digits_png/0/0.png"]


@pytest.mark.parametrize("path", WRITTEN)
def test_documented_outputs_are_ignored(path):
    r = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert r.returncode == 0, f"{path} is not git-ignored"


def test_committed_files_are_not_ignored_and_mlruns_is_gone():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert not [f for f in tracked if f.startswith("mlruns/")]
    assert "docs/config.schema.json" in tracked and "config/digits_mlp.yaml" in tracked
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO,
                             input="\n".join(tracked), capture_output=True, text=True).stdout
    assert ignored == "", f"committed files that .gitignore covers: {ignored}"
