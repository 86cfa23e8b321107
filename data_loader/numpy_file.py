"""Tables larger than memory: features and targets in .npy files, read through memory maps.

Make the files from a CSV with `python -m data_loader.csv_to_npy data.csv out_dir --target y`
(features.npy float32 (N, F), targets.npy int64 (N,) or float32 (N, 1)), or with numpy.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from base import BaseDataLoader
from data_loader.csv_file import resolve_path
from utils.errors import ArgError

RELEASE_ROWS = 64  # rows read through the map before its pages are handed back
STATS_CHUNK_BYTES = 32 * 2**20  # float64 values per chunk when streaming the statistics


def open_npy(path: Path, arg: str) -> np.memmap:
    """A read-only memory map of an .npy file; ArgError naming `arg` when it cannot be."""
    if not path.is_file():
        raise ArgError(arg, f".npy file not found: {path}")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise ArgError(arg, f"{path}: not a readable .npy file ({e})") from None


class NumpyDataset(Dataset):
    """Rows of two memory-mapped .npy files; a batch is one fancy-index per file.

    The mapping pickles as its paths (DataLoader workers reopen it). Pages
    read through it count toward the process's resident memory until
    released, and one random row can map a whole large folio of the page
    cache (megabytes on current kernels): so a batch is read in groups of
    RELEASE_ROWS rows, each one fancy-index, and after each group the mapped
    pages are handed back to the page cache (madvise DONTNEED). Resident
    memory stays flat however large the file is.
    """

    def __init__(self, features: Path, targets: Path):
        self.paths = (features, targets)
        self.x, self.y = open_npy(features, "features"), open_npy(targets, "targets")
        if self.x.ndim != 2 or len(self.y) != len(self.x):
            raise ValueError(f"features ({features}) must be (N, F) and targets ({targets}) "
                             f"hold N rows; got {self.x.shape} and {self.y.shape}")

    def __getstate__(self) -> dict:
        return {"paths": self.paths}

    def __setstate__(self, state: dict) -> None:
        self.paths = state["paths"]
        self.x, self.y = (np.load(p, mmap_mode="r") for p in self.paths)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(indices, dtype=np.int64)
        x = np.empty((len(rows), self.x.shape[1]), dtype=np.float32)
        y = np.empty((len(rows), *self.y.shape[1:]), dtype=self.y.dtype)
        for start in range(0, len(rows), RELEASE_ROWS):
            group = rows[start:start + RELEASE_ROWS]
            x[start:start + len(group)] = self.x[group]
            y[start:start + len(group)] = self.y[group]
            self.release()
        y_t = torch.from_numpy(y)
        if y_t.is_floating_point():
            y_t = y_t.float().reshape(len(rows), -1)
        return torch.from_numpy(x), y_t

    def release(self) -> None:
        """Hand the mapped pages back (they stay in the page cache, not in this process)."""
        for array in (self.x, self.y):
            m = getattr(array, "_mmap", None)
            if m is not None:
                m.madvise(mmap.MADV_DONTNEED)

    def feature_stats(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and std over `indices`, streamed in float64 chunks (sums of the
        values less the first chunk's mean, so that the variance keeps its precision)."""
        rows, n = indices.numpy(), max(len(indices), 1)
        step = max(1, STATS_CHUNK_BYTES // (8 * self.x.shape[1]))
        shift = total = squares = None
        for start in range(0, len(rows), step):
            chunk = self.x[rows[start:start + step]].astype(np.float64)
            if shift is None:
                shift = chunk.mean(axis=0)
                total, squares = np.zeros_like(shift), np.zeros_like(shift)
            chunk -= shift
            total += chunk.sum(axis=0)
            squares += (chunk * chunk).sum(axis=0)
            self.release()
        if shift is None:
            return torch.zeros(self.x.shape[1]), torch.ones(self.x.shape[1])
        mean = total / n
        var = np.maximum(squares / n - mean * mean, 0.0)
        return torch.from_numpy(shift + mean).float(), torch.from_numpy(np.sqrt(var)).float()


class NumpyDataLoader(BaseDataLoader):
    """features.npy (N, F) and targets.npy (N,) int64 class ids or (N,)/(N, 1) floats,
    memory-mapped: a table many times larger than memory trains with flat resident memory.

    Order, splits and resume work as for every loader (a pure function of seed and epoch).
    Standardization statistics are streamed over the training split (float64 chunks).
    """

    def __init__(self, features: str, targets: str, batch_size: int = 256, shuffle: bool = True,
                 validation_split=0.1, test_split=0.1, num_workers: int = 0,
                 standardize: bool = True, split_seed: int = 0, training: bool = True,
                 seed: int = 0):
        dataset = NumpyDataset(resolve_path(features), resolve_path(targets))
        super().__init__(dataset, batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.standardize:
            return None
        return self.dataset.feature_stats(self.train_indices)
