"""Datasets. TensorDataset is the fast path: a batch is one indexing of each tensor."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorDataset(Dataset):
    """In-memory tensors of equal length (features float32, class labels int64).

    `__getitems__` takes a whole batch of indices and returns the batch, so a
    loader does one tensor indexing per batch instead of one call per sample
    plus default_collate.
    """

    def __init__(self, *tensors: torch.Tensor):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorDataset needs tensors of equal length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices):
        if not isinstance(indices, torch.Tensor):
            indices = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[indices] for t in self.tensors)
