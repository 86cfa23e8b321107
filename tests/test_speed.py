"""Issue 8: the fast in-memory path, a quick --help, and the overhead benchmark."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ENV, REPO
from torch.utils.data import Dataset

from base.base_data_loader import IndexedLoader
from data_loader.datasets import TensorDataset


class PerSampleDataset(Dataset):
    """A user's dataset: __getitem__ only, so it goes through default_collate."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def batches(loader, epoch, start_batch=0):
    loader.set_epoch(epoch, start_batch)
    return [tuple(t.clone() for t in b) for b in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_fast_path_yields_the_same_batches_as_the_ordinary_path(workers):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(103, 5, generator=g), torch.randint(0, 3, (103,), generator=g)
    indices = torch.arange(7, 103)
    fast = IndexedLoader(TensorDataset(x, y), indices, 10, shuffle=True, seed=5,
                         num_workers=workers)
    slow = IndexedLoader(PerSampleDataset(x, y), indices, 10, shuffle=True, seed=5)
    assert fast.batched and not slow.batched
    for epoch in (1, 2, 7):
        a, b = batches(fast, epoch), batches(slow, epoch)
        assert len(a) == len(b) == len(fast) == 10
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        # a resumed epoch skips exactly the batches already done
        rest = batches(fast, epoch, start_batch=4)
        assert all(torch.equal(p[0], q[0]) for p, q in zip(rest, a[4:])) and len(rest) == 6
    assert not torch.equal(batches(fast, 1)[0][0], batches(fast, 2)[0][0])  # reshuffled per epoch


def test_data_order_is_a_function_of_seed_and_epoch_only():
    x, y = torch.randn(50, 2), torch.arange(50)
    one = IndexedLoader(TensorDataset(x, y), torch.arange(50), 8, shuffle=True, seed=3)
    two = IndexedLoader(TensorDataset(x, y), torch.arange(50), 8, shuffle=True, seed=3)
    torch.manual_seed(123)  # the global generator does not matter
    first = [b[1] for b in batches(one, 4)]
    torch.manual_seed(999)
    second = [b[1] for b in batches(two, 4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_help_imports_neither_sklearn_nor_torch():
    code = ("import runpy, sys; sys.argv = ['train.py', '--help']\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('IMPORTED', 'sklearn' in sys.modules, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=ENV, timeout=60)
    assert "usage: train.py" in r.stdout
    assert "IMPORTED False False" in r.stdout


@pytest.mark.slow  # the fast tier keeps within 3 minutes; the full suite runs it
def test_overhead_benchmark_smoke():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/overhead.py"), "-c",
                        str(REPO / "config/digits_mlp.json"), "--epochs", "1", "--reps", "1",
                        "--mem-epochs", "1", "--save-period", "1"], cwd=REPO,
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for variant in ("plain", "trainer"):
        assert any(line.startswith(f"{variant}:") and "ms/epoch" in line for line in lines)
        assert any(line.startswith(f"{variant}:") and "peak RSS" in line for line in lines)
    ratio = [line for line in lines if line.startswith("ratio trainer/plain:")]
    assert len(ratio) == 1 and float(ratio[0].split(":")[1]) > 0
    assert any(line.startswith("one checkpoint save:") for line in lines)
