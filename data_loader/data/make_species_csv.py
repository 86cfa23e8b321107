"""Writes species.csv beside this script: a small synthetic classification table.

    python data_loader/data/make_species_csv.py

The file is committed; this script documents how it was made and remakes it
byte for byte (fixed seed). Three species of bird, told apart by four
measurements whose ranges overlap a little.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from make_crop_yield_csv import write_table  # the same folder: run as a script

ROWS_PER_CLASS = 100
SEED = 7
COLUMNS = ["bill_length", "bill_depth", "wing_length", "body_mass", "species"]
# mean and standard deviation of each measurement per species
SPECIES = {
    "finch": ([12.0, 8.0, 68.0, 21.0], [1.2, 0.8, 4.0, 2.5]),
    "sparrow": ([13.5, 7.0, 75.0, 28.0], [1.2, 0.7, 4.5, 3.0]),
    "warbler": ([11.0, 5.5, 62.0, 12.0], [1.0, 0.6, 4.0, 2.0]),
}


def make_rows(per_class: int = ROWS_PER_CLASS, seed: int = SEED) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for name, (mean, std) in SPECIES.items():
        values = rng.normal(mean, std, size=(per_class, len(mean)))
        rows += [[f"{v:.1f}" for v in row] + [name] for row in values]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def main() -> None:
    write_table(Path(__file__).resolve().parent / "species.csv", COLUMNS, make_rows())


if __name__ == "__main__":
    main()
