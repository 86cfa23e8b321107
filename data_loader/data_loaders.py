"""Built-in data loaders. Each is one BaseDataLoader subclass, found by class name."""

from __future__ import annotations

import torch

from base import BaseDataLoader
from data_loader.datasets import TensorDataset


class DigitsDataLoader(BaseDataLoader):
    """scikit-learn's bundled 8x8 digits (`load_digits(n_class=...)`), 64 features."""

    def __init__(self, n_class: int = 10, batch_size: int = 64, shuffle: bool = True,
                 validation_split=0.1, test_split=0.2, num_workers: int = 0,
                 standardize: bool = True, split_seed: int = 0, training: bool = True,
                 seed: int = 0):
        from sklearn.datasets import load_digits

        x, y = load_digits(n_class=n_class, return_X_y=True)
        dataset = TensorDataset(torch.tensor(x, dtype=torch.float32),
                                torch.tensor(y, dtype=torch.int64))
        super().__init__(dataset, batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)
