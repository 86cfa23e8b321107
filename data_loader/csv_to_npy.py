"""Convert a CSV table into the .npy pair NumpyDataLoader reads, in chunks:

    python -m data_loader.csv_to_npy data.csv OUT_DIR --target y [--task regression]

Writes OUT_DIR/features.npy (float32, N x F), OUT_DIR/targets.npy (int64 class ids, or
float32 N x 1 for regression) and OUT_DIR/columns.json (feature and class names). The file
is read twice (rows and labels first, then the values), never whole: memory stays flat.
Bad cells are errors naming the file, row (and line) and column, as for CsvDataLoader.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from utils.csv_table import cell_place, parse_number
from utils.errors import ConfigError, RunError, report

CHUNK_ROWS = 65536


def data_rows(path: Path, delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    """(row number, line number, cells) of every non-blank row below the header."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader, None)
        row = 0
        for cells in reader:
            if any(c.strip() for c in cells):
                row += 1
                yield row, reader.line_num, cells


def scan(path: Path, target: str, task: str, delimiter: str) -> tuple[list[str], int, list[str]]:
    """Header, number of rows and (classification) the sorted class labels; checks shapes."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f, delimiter=delimiter), [])]
    if target not in header:
        raise ValueError(f"{path}: target column '{target}' not found "
                         f"(columns: {', '.join(header)})")
    t_col, n, labels = header.index(target), 0, set()
    for row, line, cells in data_rows(path, delimiter):
        if len(cells) != len(header):
            raise ValueError(f"{path}: row {row} (line {line}) has {len(cells)} fields, "
                             f"the header has {len(header)}")
        if task == "classification":
            labels.add(cells[t_col].strip())
        n = row
    return header, n, sorted(labels)


def convert(path: Path, out: Path, target: str, task: str, delimiter: str = ",") -> int:
    """Write the .npy pair; the number of rows."""
    header, n, labels = scan(path, target, task, delimiter)
    t_col = header.index(target)
    f_cols = [i for i in range(len(header)) if i != t_col]
    numeric = all(label.isdigit() for label in labels)
    class_id = {label: (int(label) if numeric else i) for i, label in enumerate(labels)}
    out.mkdir(parents=True, exist_ok=True)
    x = np.lib.format.open_memmap(out / "features.npy", "w+", np.float32, (n, len(f_cols)))
    y_shape, y_type = ((n,), np.int64) if task == "classification" else ((n, 1), np.float32)
    y = np.lib.format.open_memmap(out / "targets.npy", "w+", y_type, y_shape)
    for row, line, cells in data_rows(path, delimiter):
        x[row - 1] = [parse_number(cells[c], cell_place(path, row, line, f"'{header[c]}'"))
                      for c in f_cols]
        value = cells[t_col]
        y[row - 1] = class_id[value.strip()] if task == "classification" else parse_number(
            value, cell_place(path, row, line, f"'{target}'"))
        if row % CHUNK_ROWS == 0:
            x.flush()
            y.flush()
    x.flush()
    y.flush()
    names = {"features": [header[c] for c in f_cols], "target": target, "task": task,
             "classes": [] if numeric else labels}
    (out / "columns.json").write_text(json.dumps(names, indent=2) + "\n", encoding="utf-8")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_loader.csv_to_npy",
                                     description="Convert a CSV table into features.npy and "
                                                 "targets.npy for NumpyDataLoader.")
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path, help="folder for features.npy and targets.npy")
    parser.add_argument("--target", required=True, help="the target column")
    parser.add_argument("--task", choices=["classification", "regression"],
                        default="classification")
    parser.add_argument("--delimiter", default=",")
    args = parser.parse_args(argv)
    try:
        print(f"saved {convert_file(args)} rows to {args.out / 'features.npy'} and "
              f"{args.out / 'targets.npy'}")
    except (ConfigError, RunError) as e:
        return report(e)
    return 0


def convert_file(args: argparse.Namespace) -> int:
    """convert() for the command line: its failures as ConfigError (the CSV) or RunError."""
    if not args.csv.is_file():
        raise ConfigError(f"{args.csv}: CSV file not found")
    try:
        return convert(args.csv, args.out, args.target, args.task, args.delimiter)
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise RunError(f"cannot write {args.out}: {e.strerror or e}") from None


if __name__ == "__main__":
    sys.exit(main())
