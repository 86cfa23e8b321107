"""Issue 13: the memory-mapped loader: same batches as the in-memory loader, exact resume,
workers, streamed standardization, and a CSV converter with located errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ENV, REPO, assert_same_weights, load, only_run, run_dirs, train

CROP = REPO / "data_loader" / "data" / "crop_yield.csv"


@pytest.fixture(scope="module")
def npy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("npy")
    r = subprocess.run([sys.executable, "-m", "data_loader.csv_to_npy", str(CROP), str(out),
                        "--target", "crop_yield", "--task", "regression"],
                       cwd=REPO, capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "saved 400 rows" in r.stdout
    return out


def batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return [tuple(b) for b in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_memory_mapped_loader_gives_the_in_memory_loaders_batches(npy, num_workers):
    from data_loader.csv_file import CsvDataLoader
    from data_loader.numpy_file import NumpyDataLoader

    common = dict(batch_size=32, shuffle=True, validation_split=0.1, test_split=0.2, seed=7)
    mem = CsvDataLoader(str(CROP), target="crop_yield", task="regression", **common)
    mapped = NumpyDataLoader(str(npy / "features.npy"), str(npy / "targets.npy"),
                             num_workers=num_workers, **common)
    for epoch in (1, 2):
        a, b = batches(mem, epoch), batches(mapped, epoch)
        assert len(a) == len(b) == 9
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    mean_a, std_a = mem.feature_stats()
    mean_b, std_b = mapped.feature_stats()  # streamed in float64 chunks
    assert torch.allclose(mean_a, mean_b, rtol=1e-6) and torch.allclose(std_a, std_b, rtol=1e-5)


@pytest.mark.slow
def test_memory_mapped_run_resumes_exactly(npy, tmp_path):
    # ~ first: a mapping value merges into the CSV loader's args, as in Hydra
    args = ["-c", REPO / "config/csv_regression.yaml", "data_loader.type=NumpyDataLoader",
            "~data_loader.args", f"+data_loader.args={{features: {npy / 'features.npy'}, targets: "
            f"{npy / 'targets.npy'}, batch_size: 32}}", "trainer.save_period=1",
            "trainer.early_stop=0"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert train(*args, "trainer.epochs=4", save_dir=straight).returncode == 0
    assert train(*args, "trainer.epochs=2", save_dir=broken).returncode == 0
    ckpt = only_run(broken, "csv_regression") / "checkpoint-epoch2.pth"
    r = train("-r", ckpt, "trainer.epochs=4", save_dir=broken)
    assert r.returncode == 0, r.stderr
    resumed = run_dirs(broken, "csv_regression")[-1] / "checkpoint-epoch4.pth"
    assert_same_weights(load(only_run(straight, "csv_regression") / "checkpoint-epoch4.pth")
                        ["model_state_dict"], load(resumed)["model_state_dict"])


@pytest.mark.slow
def test_converter_names_the_bad_cell(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,0\n3,lots,1\n")
    r = subprocess.run([sys.executable, "-m", "data_loader.csv_to_npy", str(bad),
                        str(tmp_path / "out"), "--target", "y"],
                       cwd=REPO, capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {bad}: row 2 (line 3), column 'b': expected a number, got 'lots'"]


def test_converter_classes_and_reading_in_batches(tmp_path):
    from data_loader.numpy_file import NumpyDataset

    table = tmp_path / "t.csv"
    table.write_text("x1,x2,label\n0.5,1,cat\n1.5,2,dog\n2.5,3,cat\n")
    r = subprocess.run([sys.executable, "-m", "data_loader.csv_to_npy", str(table),
                        str(tmp_path / "out"), "--target", "label"],
                       cwd=REPO, capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "out" / "targets.npy").tolist() == [0, 1, 0]
    data = NumpyDataset(tmp_path / "out" / "features.npy", tmp_path / "out" / "targets.npy")
    x, y = data.__getitems__([2, 0])
    assert x.tolist() == [[2.5, 3.0], [0.5, 1.0]] and y.tolist() == [0, 0]
    assert y.dtype == torch.int64 and x.dtype == torch.float32
