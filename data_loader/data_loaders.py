"""The scikit-learn data loaders: SklearnDataLoader (the bundled sets by name, and California
housing). Each loader is one BaseDataLoader subclass, found by class name; DigitsDataLoader
lives in digits.py, CsvDataLoader in csv_file.py and SequenceDataLoader in sequence_task.py,
so that their runs never import scikit-learn."""

from __future__ import annotations

import socket
import warnings
from contextlib import contextmanager

import sklearn.datasets
import torch

from base import BaseDataLoader
from data_loader.datasets import TensorDataset
from data_loader.digits import DigitsDataLoader  # noqa: F401  (its old dotted path)
from utils.errors import ArgError, RunError, unknown_name

# scikit-learn's data sets by name: (loader function, task)
SKLEARN_SETS = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "california_housing": ("fetch_california_housing", "regression"),
}
DOWNLOAD_TIMEOUT_S = 30


def tabular_dataset(x, y, task: str) -> TensorDataset:
    """Features float32 (N, F); targets int64 (N,) for classification, float32 (N, 1)
    for regression (the shape a model with out_features=1 outputs)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if task == "classification":
        return TensorDataset(x, torch.as_tensor(y, dtype=torch.int64))
    return TensorDataset(x, torch.as_tensor(y, dtype=torch.float32).reshape(len(x), -1))


@contextmanager
def socket_timeout(seconds: float):
    """A default socket timeout for the duration, so a download cannot hang forever."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def fetch_california_housing(data_home: str | None, download: bool):
    """(X, y) of California housing from scikit-learn's cache, downloading it once if allowed.

    Without a network (or with download false and no cache) this is a RunError
    that says a network is needed and where the cached copy would be.
    """
    try:
        home = sklearn.datasets.get_data_home(data_home)  # creates the folder
    except OSError as e:
        raise RunError(f"data_loader.args.data_home: cannot use {data_home} as scikit-learn's "
                       f"data folder: {e}") from None
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's "Retry downloading" warning
            return sklearn.datasets.fetch_california_housing(
                data_home=data_home, download_if_missing=download, return_X_y=True,
                n_retries=1, delay=0.5)
    except OSError as e:  # URLError, timeouts, refused connections, no cache
        why = "download is false" if not download else f"the download failed: {e}"
        raise RunError(f"data_loader.args.dataset: california_housing is not in scikit-learn's "
                       f"cache at {home} and {why}; it needs a network connection once, to "
                       f"download (a small archive), after which it is read from that cache "
                       f"offline") from None


class SklearnDataLoader(BaseDataLoader):
    """scikit-learn's data sets by name: iris, wine, breast_cancer, digits (classification),
    diabetes and california_housing (regression).

    The bundled sets work offline; california_housing is downloaded by scikit-learn
    into `data_home` (scikit-learn's default data folder when null) on first use.
    Regression targets are float32 of shape (N, 1).
    """

    def __init__(self, dataset: str, batch_size: int = 64, shuffle: bool = True,
                 validation_split=0.1, test_split=0.2, num_workers: int = 0,
                 standardize: bool = True, split_seed: int = 0, data_home: str | None = None,
                 download: bool = True, training: bool = True, seed: int = 0):
        if dataset not in SKLEARN_SETS:
            raise ArgError("dataset", unknown_name("data set", dataset, SKLEARN_SETS))
        fn_name, self.task = SKLEARN_SETS[dataset]
        if dataset == "california_housing":
            x, y = fetch_california_housing(data_home, download)
        else:
            x, y = getattr(sklearn.datasets, fn_name)(return_X_y=True)
        super().__init__(tabular_dataset(x, y, self.task), batch_size, shuffle, validation_split,
                         num_workers, test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)
