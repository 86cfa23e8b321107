"""Reading a user's CSV file into feature and target tensors, with errors that say where."""

from __future__ import annotations

from pathlib import Path

import torch

from base import BaseDataLoader
from data_loader.datasets import TensorDataset
from utils.csv_table import cell_place, parse_number, read_rows
from utils.errors import ArgError

REPO = Path(__file__).resolve().parent.parent
TASKS = ("classification", "regression")


def resolve_path(path: str) -> Path:
    """A relative path is read from the current folder, else from the repository root
    (so the shipped data_loader/data/*.csv files work from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not (REPO / p).exists():
        return p
    return REPO / p


def _read_table(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) of every non-blank data row."""
    if not path.is_file():
        raise ArgError("path", f"CSV file not found: {path}")
    rows = read_rows(path, delimiter)
    if not rows or not any(h.strip() for h in rows[0][1]):
        raise ValueError(f"{path}: the file is empty; expected a header row of column names")
    header = [h.strip() for h in rows.pop(0)[1]]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise ValueError(f"{path}: column '{dup}' appears twice in the header")
    if not rows:
        raise ValueError(f"{path}: no data rows below the header")
    for i, (line, r) in enumerate(rows, start=1):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {i} (line {line}) has {len(r)} fields, "
                             f"the header has {len(header)}")
    return header, rows


def _column_index(header: list[str], name: str, arg: str, path: Path) -> int:
    if not isinstance(name, str) or name not in header:
        raise ArgError(arg, f"column '{name}' not found in {path} (columns: {', '.join(header)})")
    return header.index(name)


def _column_numbers(rows: list[tuple[int, list[str]]], col: int, name: str,
                    path: Path) -> list[float]:
    return [parse_number(r[col], cell_place(path, i, line, f"'{name}'"))
            for i, (line, r) in enumerate(rows, start=1)]


def class_ids(values: list[str]) -> tuple[list[int], list[str]]:
    """Labels as class ids: non-negative integers stay as they are; any other labels
    (names) become 0..K-1 in sorted order. Returns (ids, names in id order or [])."""
    stripped = [v.strip() for v in values]
    if all(v.isdigit() for v in stripped):
        return [int(v) for v in stripped], []
    names = sorted(set(stripped))
    index = {n: i for i, n in enumerate(names)}
    return [index[v] for v in stripped], names


def read_csv_table(path: str, target: str, task: str, features: list[str] | None = None,
                   delimiter: str = ","):
    """(features float32 (N, F), targets, feature names, class names).

    Targets: int64 (N,) for classification, float32 (N, 1) for regression.
    `features` None takes every column except the target.
    """
    if task not in TASKS:
        raise ArgError("task", f"expected 'classification' or 'regression', got {task!r}")
    file = resolve_path(path)
    header, rows = _read_table(file, delimiter)
    t_col = _column_index(header, target, "target", file)
    if features is None:
        names = [h for h in header if h != target]
    elif isinstance(features, list) and features:
        names = list(features)
    else:
        raise ArgError("features", f"expected a list of column names or null (all columns "
                                   f"but the target), got {features!r}")
    if target in names:
        raise ArgError("features", f"the target column '{target}' is also listed as a feature")
    if not names:
        raise ValueError(f"{file}: no feature columns besides the target '{target}'")
    cols = [_column_index(header, n, "features", file) for n in names]

    x = [[parse_number(r[c], cell_place(file, i, line, f"'{header[c]}'")) for c in cols]
         for i, (line, r) in enumerate(rows, start=1)]  # row by row: the first bad cell is named
    x_t = torch.tensor(x, dtype=torch.float32)
    if task == "regression":
        y = _column_numbers(rows, t_col, target, file)
        return x_t, torch.tensor(y, dtype=torch.float32).unsqueeze(1), names, []
    for i, (line, r) in enumerate(rows, start=1):
        if not r[t_col].strip():
            place = cell_place(file, i, line, f"'{target}'")
            raise ValueError(f"{place}: expected a class label, got an empty value")
    ids, class_names = class_ids([r[t_col] for _, r in rows])
    return x_t, torch.tensor(ids, dtype=torch.int64), names, class_names


class CsvDataLoader(BaseDataLoader):
    """A CSV file with a header row: `target` names the label column, `features` the input
    columns (null: all the others), `task` 'classification' or 'regression'.

    Every feature value must be a number. Class labels are non-negative integers
    or names (names become ids 0..K-1 in sorted order). Relative paths are read
    from the current folder, else from the repository root.
    """

    def __init__(self, path: str, target: str, task: str = "regression",
                 features: list[str] | None = None, delimiter: str = ",", batch_size: int = 64,
                 shuffle: bool = True, validation_split=0.1, test_split=0.2,
                 num_workers: int = 0, standardize: bool = True, split_seed: int = 0,
                 training: bool = True, seed: int = 0):
        try:
            x, y, self.feature_names, self.class_names = read_csv_table(path, target, task,
                                                                       features, delimiter)
        except ArgError:
            raise
        except ValueError as e:  # the file's content: named by the key that points at it
            raise ArgError("path", str(e)) from None
        self.task, self.target = task, target
        self.n_classes = (len(self.class_names) or int(y.max()) + 1) \
            if task == "classification" and len(y) else None  # for the check of out_features
        super().__init__(TensorDataset(x, y), batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed, standardize=standardize)
