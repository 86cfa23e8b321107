"""A generated variable-length sequence task for the LSTM models.

"Majority marker": token ids 1..n_class are markers, one per class; the
others (n_class+1 .. vocab_size-1) are noise; 0 is padding. Each sequence
hides a few markers among noise at random places; its label is the marker
that occurs most often (the label's marker occurs 2 to 4 times, every other
marker fewer times). Lengths are drawn uniformly from [min_len, max_len], so
a model must read whole sequences of very different lengths, and padding
must not disturb it. Everything is a pure function of `data_seed`.
"""

from __future__ import annotations

import numpy as np
import torch

from base import BaseDataLoader
from data_loader.datasets import SequenceDataset

MAX_LABEL_COUNT = 4


def majority_marker_task(n_samples: int, vocab_size: int, n_class: int, min_len: int,
                         max_len: int, data_seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(sequences as int64 tensors, labels int64 (n_samples,))."""
    if n_class < 2 or vocab_size < n_class + 2:
        raise ValueError(f"need n_class >= 2 and vocab_size >= n_class + 2 (markers, noise, "
                         f"padding), got n_class={n_class}, vocab_size={vocab_size}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    rng = np.random.default_rng(data_seed)
    labels = rng.integers(n_class, size=n_samples)
    top = rng.integers(2, MAX_LABEL_COUNT + 1, size=n_samples)
    counts = rng.integers(0, top[:, None], size=(n_samples, n_class))  # others: fewer than top
    counts[np.arange(n_samples), labels] = top
    lengths = np.maximum(rng.integers(min_len, max_len + 1, size=n_samples), counts.sum(1))
    markers = np.arange(1, n_class + 1)
    sequences = []
    for length, count in zip(lengths, counts):
        seq = rng.integers(n_class + 1, vocab_size, size=length)
        seq[rng.permutation(length)[:count.sum()]] = np.repeat(markers, count)
        sequences.append(torch.from_numpy(seq).long())
    return sequences, torch.from_numpy(labels).long()


class SequenceDataLoader(BaseDataLoader):
    """The generated "majority marker" sequence task (above).

    Batches are (tokens (B, T) int64 padded with 0 to the batch's longest
    sequence, lengths (B,) int64, labels (B,) int64), for models called as
    model(tokens, lengths). The data is a pure function of `data_seed`; the
    split, as everywhere, of `split_seed`.
    """

    def __init__(self, n_samples: int = 2000, vocab_size: int = 30, n_class: int = 4,
                 min_len: int = 5, max_len: int = 60, data_seed: int = 0, batch_size: int = 32,
                 shuffle: bool = True, validation_split=0.1, test_split=0.2,
                 num_workers: int = 0, split_seed: int = 0, training: bool = True,
                 seed: int = 0):
        sequences, labels = majority_marker_task(n_samples, vocab_size, n_class, min_len,
                                                 max_len, data_seed)
        super().__init__(SequenceDataset(sequences, labels), batch_size, shuffle,
                         validation_split, num_workers, test_split=test_split, training=training,
                         seed=seed, split_seed=split_seed)
