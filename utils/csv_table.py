"""CSV files read row by row, with errors that say where: file, row (and line), column.

One owner for training tables (data_loader/csv_file.py) and the features
given to `test.py --predict FILE` (trainer/inference/predict.py). Errors are ValueError
with the reason; callers add the config key or turn them into ConfigError. The CSV files
the project writes go through write_csv (atomic, never through a link).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from utils.files import write_output


def read_rows(path: Path, delimiter: str = ",") -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank row of a UTF-8 CSV file (a BOM is allowed)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            return [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text CSV file (cannot decode it as UTF-8)") from None
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV: {e}") from None


def is_number_text(cell: str) -> bool:
    """Whether a cell reads as a number (a header row has none)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def parse_number(cell: str, where: str) -> float:
    """A cell as a finite float; `where` ('data.csv: row 3 (line 4), column 'x'') names it."""
    try:
        value = float(cell)
    except ValueError:
        what = "an empty value" if not cell.strip() else f"'{cell}'"
        raise ValueError(f"{where}: expected a number, got {what}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got '{cell}'")
    return value


def cell_place(path: Path, row: int, line: int, column: str) -> str:
    """'data.csv: row 3 (line 4), column 'rainfall'' for error messages."""
    return f"{path}: row {row} (line {line}), column {column}"


def csv_text(header: list[str], rows: list[list]) -> str:
    """A header row and rows as CSV text (one '\\n' per row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list], durable: bool = True) -> None:
    """A CSV file written as utils.files.write_output() writes: atomically, never through a
    link, nothing partial left on failure (RunError naming the file); the one way the project
    writes a CSV file (metrics.csv, summaries, predictions, reports). `durable`: fsync it."""
    write_output(csv_text(header, rows), path, durable)
