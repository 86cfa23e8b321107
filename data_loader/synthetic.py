"""A generated tabular classification set of any size (for benchmarks and tests)."""

from __future__ import annotations

import torch

from base import BaseDataLoader
from data_loader.datasets import TensorDataset

CHUNK_ROWS = 4096


def make_classification(n_samples: int, n_features: int, n_classes: int, data_seed: int = 0):
    """Gaussian features labelled by a fixed random linear teacher (plus noise)."""
    g = torch.Generator().manual_seed(data_seed)
    x = torch.randn(n_samples, n_features, generator=g)
    teacher = torch.randn(n_features, n_classes, generator=g)
    labels = torch.empty(n_samples, dtype=torch.int64)
    for start in range(0, n_samples, CHUNK_ROWS):  # the same draws as one (N, C) draw, but
        rows = slice(start, start + CHUNK_ROWS)    # never N x C logits in memory at once
        noise = torch.randn(len(labels[rows]), n_classes, generator=g)
        labels[rows] = (x[rows] @ teacher + 0.5 * noise).argmax(dim=1)
    return x, labels


class SyntheticDataLoader(BaseDataLoader):
    """`n_samples` rows of `n_features` float32 features, `n_classes` int64 labels.

    The data is a pure function of `data_seed`; nothing is downloaded.
    """

    def __init__(self, n_samples: int = 10000, n_features: int = 50, n_classes: int = 10,
                 batch_size: int = 256, shuffle: bool = True, validation_split=0.1,
                 test_split=0.1, num_workers: int = 0, standardize: bool = True,
                 data_seed: int = 0, split_seed: int = 0, training: bool = True, seed: int = 0):
        x, y = make_classification(n_samples, n_features, n_classes, data_seed)
        super().__init__(TensorDataset(x, y), batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)
