"""DigitsDataLoader: the 8x8 digits that ship inside scikit-learn, read straight from its
data file so that a digits run imports neither scikit-learn nor SciPy (about a second of
start-up); the values equal `sklearn.datasets.load_digits` (tests/test_models_data.py)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from base import BaseDataLoader
from data_loader.datasets import TensorDataset
from utils.errors import ArgError


def digits_file() -> Path:
    """scikit-learn's bundled datasets/data/digits.csv.gz, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets/data/digits.csv.gz"


def load_digits(n_class: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(features float64 (N, 64), labels int (N,)) of the digits 0..n_class-1."""
    if isinstance(n_class, bool) or not isinstance(n_class, int) or not 1 <= n_class <= 10:
        raise ArgError("n_class", f"expected an integer from 1 to 10, got {n_class!r}")
    with gzip.open(digits_file(), "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    target = data[:, -1].astype(int)
    keep = target < n_class
    return data[keep, :-1], target[keep]


class DigitsDataLoader(BaseDataLoader):
    """scikit-learn's bundled 8x8 digits (as `load_digits(n_class=...)`), 64 features."""

    def __init__(self, n_class: int = 10, batch_size: int = 64, shuffle: bool = True,
                 validation_split=0.1, test_split=0.2, num_workers: int = 0,
                 standardize: bool = True, split_seed: int = 0, training: bool = True,
                 seed: int = 0):
        x, y = load_digits(n_class)
        dataset = TensorDataset(torch.tensor(x, dtype=torch.float32),
                                torch.tensor(y, dtype=torch.int64))
        super().__init__(dataset, batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)
