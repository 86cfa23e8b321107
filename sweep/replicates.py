"""Folds and repeats: trials that differ only in the data split or the seed.

`train.py -c CFG --folds K` sweeps `data_loader.args.fold` over 0..K-1 (with
`data_loader.args.folds: K`); `--repeat N` sweeps `seed` over seed..seed+N-1.
Both combine with each other and with -m grids. In a sweep's summary, trials
whose values differ only in these replicate keys form a group, shown with
n and the mean ± sample standard deviation (ddof 1) of each value column.
"""

from __future__ import annotations

import copy
import math
import statistics
from typing import Any

from sweep.definition import Param, describe
from utils.errors import ConfigError
from utils.options import TOP_LEVEL, value_of
from utils.schema import expect, is_int

FOLD_KEY = "data_loader.args.fold"
REPLICATE_KEYS = ("seed", FOLD_KEY)


def replicate_params(args: Any, raw: dict, cli_params: list[Param]) -> tuple[dict, list[Param]]:
    """The config with `folds` set (for --folds, or a config's folds without a fold), and the
    Params --folds / --repeat add to the command line's."""
    folds, repeat = getattr(args, "folds", None), getattr(args, "repeat", None)
    dargs = (raw.get("data_loader") or {}).get("args") or {}
    if folds is None and isinstance(dargs, dict) and dargs.get("folds") is not None \
            and dargs.get("fold") is None:
        folds = dargs["folds"]  # a config asking for k folds and no single one: all of them
    params = []
    taken = {p.key for p in cli_params}
    if folds is not None:
        expect(is_int(folds) and folds >= 2, "--folds", "an integer >= 2", folds)
        if FOLD_KEY in taken:
            raise ConfigError(f"--folds sweeps {FOLD_KEY} itself; drop its -m list")
        raw = copy.deepcopy(raw)
        raw["data_loader"].setdefault("args", {})
        raw["data_loader"]["args"]["folds"] = folds
        raw["data_loader"]["args"]["fold"] = None  # each trial sets its own
        params.append(Param(FOLD_KEY, values=list(range(folds))))
    if repeat is not None:
        expect(is_int(repeat) and repeat >= 1, "--repeat", "a positive integer", repeat)
        if "seed" in taken:
            raise ConfigError("--repeat sweeps the seed itself; drop the -m list of seed")
        seed = value_of(TOP_LEVEL, raw, "seed")
        expect(is_int(seed) and seed >= 0, "seed", "an integer >= 0", seed)
        params.append(Param("seed", values=list(range(seed, seed + repeat))))
    return raw, params


def replicate_labels(labels: list[str]) -> list[str]:
    """The summary's swept columns that are replicate keys (seed, the fold)."""
    return [label for label in labels if label.lstrip("+") in REPLICATE_KEYS]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None for fewer than two values)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def group_table(header: list[str], table: list[list], labels: list[str], value_cols: list[str],
                rank_col: str, mode: str) -> tuple[list[str], list[list]]:
    """One row per group of finished trials that differ only in replicate keys: the group's
    other values, n, then mean and std of each value column; ranked by the mean of
    `rank_col` (best first)."""
    replicates = set(replicate_labels(labels))
    keys = [label for label in labels if label not in replicates]
    col = {h: i for i, h in enumerate(header)}
    groups: dict[str, dict] = {}
    for row in table:
        if row[col["status"]] != "finished":
            continue
        values = {k: row[col[k]] for k in keys}
        group = groups.setdefault(describe(values), {"values": values, "rows": []})
        group["rows"].append(row)
    out_header = ["rank", *keys, "n", *[f"{c}_{s}" for c in value_cols for s in ("mean", "std")]]
    out = []
    for group in groups.values():
        stats = []
        for c in value_cols:
            stats += mean_std([r[col[c]] for r in group["rows"]
                               if isinstance(r[col[c]], int | float)])
        out.append([None, *group["values"].values(), len(group["rows"]), *stats])
    where = out_header.index(f"{rank_col}_mean")
    sign = 1 if mode == "min" else -1
    out.sort(key=lambda r: (r[where] is None, sign * (r[where] or 0.0)))
    for i, r in enumerate(out, 1):
        r[0] = i if r[where] is not None else None
    return out_header, out
