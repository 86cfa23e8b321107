"""Writes crop_yield.csv beside this script: a small synthetic regression table.

    python data_loader/data/make_crop_yield_csv.py

The file is committed; this script documents how it was made and remakes it
byte for byte (fixed seed). Yield (t/ha) depends non-linearly on the weather
and the soil, plus noise, so a small MLP beats a straight line on it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROWS = 400
SEED = 2024
COLUMNS = ["temperature", "rainfall", "sunlight_hours", "soil_ph", "fertilizer", "crop_yield"]


def make_rows(n: int = ROWS, seed: int = SEED) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    temperature = rng.uniform(10, 35, n)       # degrees C
    rainfall = rng.uniform(200, 1200, n)       # mm per season
    sunlight = rng.uniform(4, 12, n)           # hours per day
    soil_ph = rng.uniform(5.0, 8.5, n)
    fertilizer = rng.uniform(0, 200, n)        # kg per ha
    crop_yield = (
        6.0
        - 0.02 * (temperature - 24) ** 2                  # best near 24 C
        + 2.0 * np.tanh((rainfall - 500) / 250)           # too little rain hurts most
        + 0.25 * sunlight
        - 1.2 * (soil_ph - 6.5) ** 2                      # best near pH 6.5
        + 1.5 * (1 - np.exp(-fertilizer / 80))            # diminishing returns
        + rng.normal(0, 0.35, n)
    )
    table = np.column_stack([temperature, rainfall, sunlight, soil_ph, fertilizer, crop_yield])
    decimals = [1, 0, 1, 2, 0, 3]
    return [[f"{v:.{d}f}" for v, d in zip(row, decimals)] for row in table]


def write_table(out: Path, columns: list[str], rows: list[list[str]]) -> None:
    """The CSV file `out`: a header, then the rows (also used by make_species_csv.py)."""
    with open(out, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    print(f"wrote {out}")


def main() -> None:
    write_table(Path(__file__).resolve().parent / "crop_yield.csv", COLUMNS, make_rows())


if __name__ == "__main__":
    main()
