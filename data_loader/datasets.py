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


def pad_collate(samples: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """collate_fn for (tokens, target) samples of different lengths:
    (tokens padded with 0 to the longest, lengths int64, targets)."""
    tokens = [s[0] for s in samples]
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.int64)
    padded = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=0)
    return padded, lengths, torch.stack([torch.as_tensor(s[1]) for s in samples])


class SequenceDataset(Dataset):
    """Variable-length token sequences (padding id 0) with one target each.

    Stored once as a padded (N, max_len) matrix plus lengths. `__getitems__`
    returns a whole batch (tokens cut to the batch's longest sequence,
    lengths, targets): the same as `pad_collate` over the single samples,
    without a Python call per sample.
    """

    def __init__(self, sequences: list[torch.Tensor], targets: torch.Tensor):
        if len(sequences) != len(targets):
            raise ValueError("SequenceDataset needs one target per sequence")
        if any(len(s) == 0 for s in sequences):
            raise ValueError("SequenceDataset: every sequence needs at least one token")
        self.lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
        self.tokens = torch.nn.utils.rnn.pad_sequence(
            [torch.as_tensor(s, dtype=torch.int64) for s in sequences], batch_first=True,
            padding_value=0)
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        return self.tokens[index, :self.lengths[index]], self.targets[index]

    def __getitems__(self, indices):
        if not isinstance(indices, torch.Tensor):
            indices = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[indices]
        longest = int(lengths.max()) if len(lengths) else 0
        return self.tokens[indices, :longest], lengths, self.targets[indices]
