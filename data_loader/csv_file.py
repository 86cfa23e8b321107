"""Reading a user's CSV file into feature and target tensors, with errors that say where."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from utils.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TASKS = ("classification", "regression")


def resolve_path(path: str) -> Path:
    """A relative path is read from the current folder, else from the repository root
    (so the shipped data_loader/data/*.csv files work from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not (REPO / p).exists():
        return p
    return REPO / p


def _read_rows(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) of every non-blank data row."""
    if not path.is_file():
        raise ConfigError(f"data_loader.args.path: CSV file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            rows = [(reader.line_num, r) for r in reader if any(v.strip() for v in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: not a readable CSV text file ({e})") from None
    if not header or not any(h.strip() for h in header):
        raise ConfigError(f"{path}: the file is empty; expected a header row of column names")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise ConfigError(f"{path}: column '{dup}' appears twice in the header")
    if not rows:
        raise ConfigError(f"{path}: no data rows below the header")
    for i, (line, r) in enumerate(rows, start=1):
        if len(r) != len(header):
            raise ConfigError(f"{path}: row {i} (line {line}) has {len(r)} fields, "
                              f"the header has {len(header)}")
    return header, rows


def _column_index(header: list[str], name: str, key: str, path: Path) -> int:
    if not isinstance(name, str) or name not in header:
        raise ConfigError(f"{key}: column '{name}' not found in {path} "
                          f"(columns: {', '.join(header)})")
    return header.index(name)


def _number(text: str, path: Path, row: int, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan if text.strip() == "" else None
        what = "an empty value" if value is not None else f"'{text}'"
        raise ConfigError(f"{path}: row {row} (line {line}), column '{column}': expected a "
                          f"number, got {what}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{path}: row {row} (line {line}), column '{column}': expected a "
                          f"finite number, got '{text}'")
    return value


def _class_ids(values: list[str]) -> tuple[list[int], list[str]]:
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
        raise ConfigError(f"data_loader.args.task: expected 'classification' or 'regression', "
                          f"got {task!r}")
    file = resolve_path(path)
    header, rows = _read_rows(file, delimiter)
    t_col = _column_index(header, target, "data_loader.args.target", file)
    if features is None:
        names = [h for h in header if h != target]
    elif isinstance(features, list) and features:
        names = list(features)
    else:
        raise ConfigError(f"data_loader.args.features: expected a list of column names or null "
                          f"(all columns but the target), got {features!r}")
    if target in names:
        raise ConfigError(f"data_loader.args.features: the target column '{target}' is also "
                          f"listed as a feature")
    if not names:
        raise ConfigError(f"{file}: no feature columns besides the target '{target}'")
    cols = [_column_index(header, n, "data_loader.args.features", file) for n in names]

    x = [[_number(r[c], file, i, line, header[c]) for c in cols]
         for i, (line, r) in enumerate(rows, start=1)]
    x_t = torch.tensor(x, dtype=torch.float32)
    if task == "regression":
        y = [_number(r[t_col], file, i, line, target) for i, (line, r) in enumerate(rows, start=1)]
        return x_t, torch.tensor(y, dtype=torch.float32).unsqueeze(1), names, []
    for i, (line, r) in enumerate(rows, start=1):
        if not r[t_col].strip():
            raise ConfigError(f"{file}: row {i} (line {line}), column '{target}': expected a "
                              f"class label, got an empty value")
    ids, class_names = _class_ids([r[t_col] for _, r in rows])
    return x_t, torch.tensor(ids, dtype=torch.int64), names, class_names
