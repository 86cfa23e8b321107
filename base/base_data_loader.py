"""BaseDataLoader: a torch DataLoader that holds out test and validation splits.

Data order is a pure function of (seed, epoch): every epoch draws its own
permutation from a generator seeded with both, so resuming needs no sampler
state, and a mid-epoch resume only skips the batches already done.

Fast path: a dataset with `__getitems__` (see data_loader.datasets.TensorDataset)
is indexed with a whole batch of indices at once, and with num_workers 0 the
DataLoader machinery is bypassed entirely. Datasets with only `__getitem__`
go through the ordinary per-sample path and default_collate.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate

from utils.errors import ArgError


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63)


class EpochBatchSampler:
    """Yields batches of indices from `indices`, reshuffled per epoch from (seed, epoch).

    With world_size > 1 each rank takes a disjoint shard of the epoch's order.
    `even=True` (training) pads the order so that every rank gets the same
    number of batches, and deals it out sample by sample, so the ranks' first
    batches together are the first world_size * batch_size samples.
    `even=False` (evaluation) never repeats a sample and deals out whole
    batches (rank r gets batches r, r + world_size, ...), so every batch is
    the one a single process would see and merged sums equal its sums.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, as_list: bool = False, rank: int = 0,
                 world_size: int = 1, even: bool = True):
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.as_list = as_list
        self.rank, self.world_size, self.even = rank, world_size, even
        self.weights: torch.Tensor | None = None  # per-sample draw weights (balanced sampler)
        self.epoch = 1
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_order(self) -> torch.Tensor:
        """This rank's sample order for the current epoch."""
        order = self.indices
        if self.weights is not None:  # len(order) draws with replacement, by weight
            g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
            order = order[torch.multinomial(self.weights, len(order), True, generator=g)]
        elif self.shuffle:
            g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
            order = order[torch.randperm(len(order), generator=g)]
        if self.world_size > 1 and self.even:
            if len(order) % self.world_size:
                pad = self.world_size - len(order) % self.world_size
                order = torch.cat([order, order[:pad]])
            order = order[self.rank::self.world_size]
        return order

    def samples(self) -> int:
        """Samples this rank reads in one epoch (padding included)."""
        n = len(self.indices)
        if self.world_size > 1 and self.even:
            n = -(-n // self.world_size)
        return n

    def __len__(self) -> int:
        n = self.samples()
        n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.world_size > 1 and not self.even:
            n = len(range(self.rank, n, self.world_size))
        return n

    def __iter__(self) -> Iterator:
        batches = self.epoch_order().split(self.batch_size)
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        if self.world_size > 1 and not self.even:
            batches = batches[self.rank::self.world_size]
        for batch in batches[self.start_batch:]:
            yield batch.tolist() if self.as_list else batch


def batch_identity(batch):
    """collate_fn for datasets whose __getitems__ already returns a whole batch."""
    return batch


def ignore_sigint_in_worker(_worker_id: int) -> None:
    """Ctrl-C is handled by the main process, which saves a checkpoint first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _count(value, n: int, key: str) -> int:
    """A split given as a fraction of n or as a count of samples."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgError(key, f"expected a fraction in [0, 1) or a count, got {value!r}")
    if isinstance(value, float):
        if not 0.0 <= value < 1.0:
            raise ArgError(key, f"expected a fraction in [0, 1) or a count, got {value}")
        return int(n * value)
    if not 0 <= value < n:
        raise ArgError(key, f"a count must be smaller than the {n} samples, got {value}")
    return value


def split_indices(n: int, validation_split, test_split, split_seed: int = 0):
    """Deterministic (train, valid, test) index tensors; fractions are of all n samples."""
    n_test = _count(test_split, n, "test_split")
    n_valid = _count(validation_split, n, "validation_split")
    if n - n_test - n_valid < 1:
        raise ValueError(
            f"validation_split and test_split leave no training samples out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    test, valid, train = perm[:n_test], perm[n_test:n_test + n_valid], perm[n_test + n_valid:]
    return train.sort().values, valid.sort().values, test.sort().values


def check_fold_count(folds: int, pool: int, labels: torch.Tensor | None) -> None:
    """`folds` must split the `pool` samples outside the test split; with class labels, as
    many folds as the smallest class there has samples at most (each fold holds them all)."""
    if labels is None or len(labels) == 0 or folds < 2:
        if not 2 <= folds <= pool:
            raise ArgError("folds", f"expected 2 to {pool} (the samples outside the test "
                                    f"split), got {folds}")
        return
    counts = torch.bincount(labels)
    present = counts.nonzero().flatten()
    smallest = int(present[counts[present].argmin()])
    limit = int(counts[smallest])
    if limit < folds:
        advice = f"use at most {limit} folds" if limit >= 2 else "too few for any folds"
        raise ArgError("folds", f"{folds} folds, but class {smallest} has only {limit} "
                                f"sample(s) outside the test split (stratified folds need one "
                                f"per fold): {advice}")


def fold_indices(pool: torch.Tensor, labels: torch.Tensor | None, folds: int, fold: int,
                 split_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, valid) of k-fold cross-validation over `pool` (the samples outside the test
    split): fold `fold` of `folds` is the validation part, the others train.

    Stratified by class when `labels` (one int64 label per pool sample) is given, so every
    class needs at least `folds` samples there; plain k-fold otherwise (regression);
    shuffled, a pure function of `split_seed`.
    """
    check_fold_count(folds, len(pool), labels)
    from sklearn.model_selection import KFold, StratifiedKFold  # only k-fold runs need it
    if labels is not None:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=split_seed)
        parts = splitter.split(pool.numpy(), labels.numpy())
    else:
        parts = KFold(folds, shuffle=True, random_state=split_seed).split(pool.numpy())
    train, valid = list(parts)[fold]
    return pool[torch.as_tensor(train)].sort().values, pool[torch.as_tensor(valid)].sort().values


def class_labels(dataset, indices: torch.Tensor) -> torch.Tensor | None:
    """The class label of each sample in `indices` when the dataset keeps its targets as an
    int64 vector (`tensors[1]`, classification); None otherwise."""
    tensors = getattr(dataset, "tensors", None)
    if not tensors or len(tensors) < 2:
        return None
    y = tensors[-1]
    if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(dataset) or bool((y < 0).any()):
        return None
    return y[indices]


class IndexedLoader(DataLoader):
    """A DataLoader over a subset of `dataset`, in (seed, epoch)-determined order."""

    def __init__(self, dataset, indices: torch.Tensor, batch_size: int, shuffle: bool,
                 num_workers: int = 0, collate_fn: Callable | None = None, seed: int = 0,
                 drop_last: bool = False, even: bool = True, pin_memory: bool = False):
        self.batched = callable(getattr(dataset, "__getitems__", None))
        sampler = EpochBatchSampler(indices, batch_size, shuffle, seed, drop_last,
                                    as_list=not self.batched, even=even)
        if collate_fn is None:
            collate_fn = batch_identity if self.batched else default_collate
        self.loader_args = dict(num_workers=num_workers, collate_fn=collate_fn, seed=seed,
                                pin_memory=pin_memory)
        super().__init__(dataset, batch_sampler=sampler, num_workers=num_workers,
                         collate_fn=collate_fn, pin_memory=pin_memory,
                         generator=torch.Generator().manual_seed(seed),
                         worker_init_fn=ignore_sigint_in_worker if num_workers > 0 else None)
        self.indices = indices
        self.n_samples = len(indices)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order (and skip `start_batch` batches of it)."""
        self.batch_sampler.set_epoch(epoch, start_batch)
        self.generator.manual_seed(_epoch_seed(self.batch_sampler.seed, epoch))

    def shard(self, rank: int, world_size: int) -> None:
        """Read only this rank's share of every epoch (torch.distributed)."""
        self.batch_sampler.rank, self.batch_sampler.world_size = rank, world_size

    def __iter__(self):
        if self.num_workers == 0 and self.batched and not self.pin_memory:
            get = self.dataset.__getitems__
            return (get(idx) for idx in self.batch_sampler)
        return super().__iter__()


class BaseDataLoader(IndexedLoader):
    """Splits `dataset` into train / validation / test and loads one of them.

    training=True loads the training split and `split_validation()` returns a
    loader over the validation split; training=False loads the held-out test
    split. The split is fixed by `split_seed`, independent of the run's seed,
    so test.py sees exactly the samples training never saw. `validation_split`
    and `test_split` are fractions of the whole data set or sample counts.

    `seed` (the run's seed) and `training` are passed by the training code.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool, validation_split=0.0,
                 num_workers: int = 0, collate_fn: Callable | None = None, *,
                 test_split=0.0, training: bool = True, seed: int = 0, split_seed: int = 0,
                 standardize: bool = False, drop_last: bool = False, pin_memory: bool = False):
        self.dataset_size = len(dataset)
        train_idx, valid_idx, test_idx = split_indices(self.dataset_size, validation_split,
                                                       test_split, split_seed)
        self.training = training
        self.train_indices, self.valid_indices, self.test_indices = train_idx, valid_idx, test_idx
        self.standardize = standardize
        self.split_seed = split_seed
        self.eval_batch_size = batch_size
        if training:
            super().__init__(dataset, train_idx, batch_size, shuffle, num_workers, collate_fn, seed,
                             drop_last, pin_memory=pin_memory)
        else:
            super().__init__(dataset, test_idx, batch_size, False, num_workers, collate_fn, seed,
                             even=False, pin_memory=pin_memory)

    def select_fold(self, folds: int, fold: int) -> None:
        """k-fold cross-validation: the samples outside the test split (training and
        validation together) in `folds` folds; fold `fold` validates, the rest train.
        The test split is untouched."""
        pool = torch.cat([self.train_indices, self.valid_indices]).sort().values
        train, valid = fold_indices(pool, class_labels(self.dataset, pool), folds, fold,
                                    self.split_seed)
        self.train_indices, self.valid_indices = train, valid
        if self.training:
            self.indices = self.batch_sampler.indices = train
            self.n_samples = len(train)

    def split_validation(self) -> IndexedLoader | None:
        """A loader over the validation split, or None when there is none."""
        if not self.training or len(self.valid_indices) == 0:
            return None
        return IndexedLoader(self.dataset, self.valid_indices, self.eval_batch_size, False,
                             even=False, **self.loader_args)

    def class_labels(self) -> torch.Tensor | None:
        """The int64 class label of every sample (the dataset's `targets`, or the last of its
        `tensors`), or None when the dataset has no such labels (regression, custom data)."""
        labels = getattr(self.dataset, "targets", None)
        tensors = getattr(self.dataset, "tensors", None)
        if labels is None and tensors:
            labels = tensors[-1]
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 \
                or labels.dim() != 1:
            return None
        return labels

    def class_counts(self) -> torch.Tensor | None:
        """Samples per class in the training split (int64, one entry per class 0..K-1 of the
        whole data set), or None without class labels."""
        labels = self.class_labels()
        if labels is None:
            return None
        return torch.bincount(labels[self.train_indices], minlength=int(labels.max()) + 1)

    def balance_classes(self) -> None:
        """Draw training samples with probability 1 / (their class's count): every class
        equally often in expectation, each epoch's draws a pure function of (seed, epoch)."""
        counts = self.class_counts()
        if counts is None:
            raise ArgError("sampler", f"balanced needs class labels, and {type(self).__name__}"
                                      f" has none")
        labels = self.class_labels()[self.train_indices]
        self.batch_sampler.weights = 1.0 / counts[labels].double()

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-feature mean and std over the training split only, or None.

        Used when `standardize` is on and the dataset exposes its feature
        tensor as `tensors[0]` (data_loader.datasets.TensorDataset does).
        """
        tensors = getattr(self.dataset, "tensors", None)
        if not self.standardize or not tensors or not tensors[0].is_floating_point():
            return None
        x = tensors[0][self.train_indices].double()
        return x.mean(0).float(), x.std(0, unbiased=False).float()
