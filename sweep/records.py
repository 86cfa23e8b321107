"""The sweep folder: trial records, where an interrupted trial goes on from, the summary.

    saved/sweeps/<name>/<sweep_id>/
        sweep.json            the resolved definition (base config included)
        summary.csv, summary.md
        configs/trial-003.json   the config each trial is started with
        logs/trial-003.log       its train.py (and test.py) output
        runs/trial-003.json      its run folders, as train.py --run-file writes them
        models/<name>/<run_id>/  each trial's run folder (checkpoints, config.json)
        log/<name>/<run_id>/     and its log folder (metrics.csv): trials never land among
                                 the user's own runs in saved/models/
        trials/trial-003.json    its record: status, error, run folder, test metrics
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from sweep.definition import Sweep, Trial, describe
from sweep.replicates import group_table, replicate_labels
from utils.checkpoint import BEST_NAME, latest_epoch_checkpoint
from utils.checkpoint_arg import newest_checkpoint
from utils.csv_table import write_csv
from utils.files import read_json, write_json, write_output

CONSOLE_WIDTH = 100  # the widest line of a summary printed on the terminal

# ---------------------------------------------------------------- records


def trial_file(sweep: Sweep, sub: str, number: int, suffix: str = ".json") -> Path:
    """A trial's file in one of the sweep folder's subfolders: runs/trial-003.json."""
    return sweep.folder / sub / f"trial-{number:03d}{suffix}"


def prepare_folder(sweep: Sweep, command: list[str]) -> Path:
    """The sweep folder with its subfolders and sweep.json (`command`: how it was started)."""
    folder = sweep.folder
    for sub in ("configs", "logs", "trials", "runs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    write_json(sweep.definition(command), folder / "sweep.json")
    return folder


def load_records(folder: Path) -> dict[str, dict]:
    """Earlier records of this sweep folder, by resolved-config key."""
    records = {}
    for path in sorted((folder / "trials").glob("trial-*.json")):
        record = read_json(path)
        if record and record.get("key"):
            records[record["key"]] = record
    return records


def save_record(record: dict, sweep: Sweep) -> None:
    """trials/trial-NNN.json; a RunError when it cannot be written."""
    write_json(record, trial_file(sweep, "trials", record["trial"]))


def is_done(record: dict | None, test: bool) -> bool:
    """Whether a rerun can skip the trial: finished, its run folder there (and tested)."""
    return bool(record) and record.get("status") == "finished" and \
        Path(record.get("run_dir") or "/nonexistent").is_dir() and \
        (not test or record.get("test") is not None)


def unfinished(sweep: Sweep, command: list[str],
               test: bool) -> tuple[Path, dict[str, dict], list[Trial], int]:
    """Prepare the sweep folder and read what an earlier start of it did: (folder, records
    by key, the trials still to run or test, how many of those only need their test)."""
    folder = prepare_folder(sweep, command)
    records = load_records(folder)
    todo = [t for t in sweep.plan if not is_done(records.get(t.key), test)]
    return folder, records, todo, sum(is_done(records.get(t.key), False) for t in todo)


def resume_point(record: dict) -> Path | None:
    """Where an interrupted trial goes on from: its checkpoint furthest into training (the
    interrupt checkpoint, the last epoch's, or model_best.pth when a kill came between it and
    its epoch's checkpoint)."""
    if record.get("status") not in ("interrupted", "running") or not record.get("run_dir"):
        return None
    run_dir = Path(record["run_dir"])
    return newest_checkpoint(run_dir) if run_dir.is_dir() else None


def trial_run_dir(folder: Path, run_dir: str | None) -> Path | None:
    """A trial's run folder as recorded, else found inside `folder` (a sweep folder moved, or
    shared by machines that mount it elsewhere): its path after the sweep folder's name."""
    if not run_dir:
        return None
    path = Path(run_dir)
    if path.is_dir() or folder.name not in path.parts:
        return path
    parts = path.parts
    return folder.joinpath(*parts[len(parts) - parts[::-1].index(folder.name):])


def best_checkpoint(run_dir: str | Path | None) -> Path | None:
    """The run's best checkpoint, else the checkpoint of its last epoch."""
    if not run_dir:
        return None
    run_dir = Path(run_dir)
    if (run_dir / BEST_NAME).is_file():
        return run_dir / BEST_NAME
    return latest_epoch_checkpoint(run_dir)


# ---------------------------------------------------------------- the metric of a trial

NOT_METRICS = ("epoch", "lr", "seconds")  # metrics.csv columns that are no metric


def read_metrics(log_dir: str | Path | None) -> list[dict]:
    """The complete rows of a run's metrics.csv (it may be growing)."""
    if not log_dir:
        return []
    try:
        text = (Path(log_dir) / "metrics.csv").read_text(encoding="utf-8")
    except OSError:
        return []
    text = text[:text.rfind("\n") + 1]  # a row being written is not read yet
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
        except ValueError:
            continue
    return rows


def best_of(rows: list[dict], metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best finite value of `metric` over epochs, and its epoch."""
    found = [(r[metric], int(r["epoch"])) for r in rows
             if metric in r and "epoch" in r and math.isfinite(r[metric])]
    if not found:
        return None, None
    pick = min if mode == "min" else max
    return pick(found, key=lambda ve: ve[0])


def add_best(record: dict, sweep: Sweep) -> dict:
    """best / best_epoch of the sweep's metric, from the run's metrics.csv (or test metrics)."""
    name, mode = sweep.metric_name, sweep.metric_mode
    if name.startswith("test_"):
        value = (record.get("test") or {}).get(name[len("test_"):])
        record.update(best=value, best_epoch=None)
    else:
        rows = read_metrics(record.get("log_dir"))
        record["best"], record["best_epoch"] = best_of(rows, name, mode)
        at = [r for r in rows if record["best_epoch"] is not None
              and int(r.get("epoch", -1)) == record["best_epoch"]]
        record["at_best"] = {k: v for k, v in at[-1].items()
                             if k not in NOT_METRICS and not k.startswith("lr/")} \
            if at else {}
    return record


def fmt(value: Any) -> str:
    """A value as the summary and the progress lines show it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


# ---------------------------------------------------------------- summary


def rank_rows(rows: list[dict], mode: str) -> list[dict]:
    """Finished trials by their value, then pruned ones, then the rest in trial order."""
    def scored(r: dict) -> bool:
        return r.get("status") in ("finished", "pruned") and r.get("best") is not None \
            and math.isfinite(r["best"])

    sign = 1 if mode == "min" else -1
    good = sorted((r for r in rows if scored(r)),
                  key=lambda r: (r["status"] != "finished", sign * r["best"], r["trial"]))
    rest = sorted((r for r in rows if not scored(r)), key=lambda r: r["trial"])
    for i, r in enumerate(good, 1):
        r["rank"] = i
    for r in rest:
        r["rank"] = None
    return good + rest


def summary_table(sweep: Sweep, rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """The summary's header and rows: rank, trial, status, the swept values, the metric..."""
    labels = list(dict.fromkeys(k for r in rows for k in (r.get("params") or {})))
    tests = list(dict.fromkeys(k for r in rows for k in (r.get("test") or {})))
    # folds and repeats: every metric at the best epoch too
    at_best = list(dict.fromkeys(k for r in rows for k in (r.get("at_best") or {}))) \
        if replicate_labels(labels) else []
    header = ["rank", "trial", "status", *labels, f"best_{sweep.metric_name}", "best_epoch",
              *at_best, *[f"test_{k}" for k in tests], "seconds", "run_dir", "error"]
    table = []
    for r in rows:
        params, test, best = r.get("params") or {}, r.get("test") or {}, r.get("at_best") or {}
        table.append([r.get("rank"), r["trial"], r.get("status"), *[params.get(k) for k in labels],
                      r.get("best"), r.get("best_epoch"), *[best.get(k) for k in at_best],
                      *[test.get(k) for k in tests], r.get("seconds"), r.get("run_dir"),
                      r.get("error") or None])
    return header, table


def value_columns(header: list[str], labels: list[str]) -> list[str]:
    """The summary's columns that a group averages: the metric, at-best metrics, tests."""
    skip = {"rank", "trial", "status", "best_epoch", "seconds", "run_dir", "error", *labels}
    return [h for h in header if h not in skip]


def write_table(header: list[str], table: list[list], path: Path) -> None:
    """A summary table as CSV: None empty, lists and mappings as JSON."""
    write_csv(path, header, [["" if v is None else (json.dumps(v) if isinstance(v, list | dict)
                                                    else v) for v in row] for row in table])


def write_summary(sweep: Sweep, rows: list[dict]) -> str:
    """summary.csv and summary.md in the sweep folder; returns the Markdown."""
    rows = rank_rows(rows, sweep.metric_mode)
    header, table = summary_table(sweep, rows)
    write_table(header, table, sweep.folder / "summary.csv")
    markdown = summary_markdown(sweep, rows, header, table)
    labels = header[3:header.index(f"best_{sweep.metric_name}")]
    if replicate_labels(labels):
        markdown += groups_markdown(sweep, header, table, labels)
    write_output(markdown, sweep.folder / "summary.md")
    return markdown


def groups_markdown(sweep: Sweep, header: list[str], table: list, labels: list[str]) -> str:
    """groups.csv, and summary.md's table of the groups of trials that differ only in the
    seed or the fold: n and mean ± sample std of each value."""
    cols = value_columns(header, labels)
    g_header, g_table = group_table(header, table, labels, cols, f"best_{sweep.metric_name}",
                                    sweep.metric_mode)
    write_table(g_header, g_table, sweep.folder / "groups.csv")
    keys = g_header[1:g_header.index("n")]
    over = ", ".join(replicate_labels(labels))
    lines = ["", f"## Mean ± std over {over}, ranked by mean {sweep.metric_name}", "",
             "(finished trials; sample std, ddof=1)", "",
             "| " + " | ".join(["rank", *keys, "n", *cols]) + " |",
             "|" + "---|" * (len(keys) + 2 + len(cols))]
    for row in g_table:
        cells = [fmt(v) for v in row[:len(keys) + 2]]
        stats = row[len(keys) + 2:]
        for mean, std in zip(stats[::2], stats[1::2]):
            cells.append("" if mean is None else fmt(mean) + ("" if std is None
                                                               else f" ± {fmt(std)}"))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(sweep: Sweep, rows: list[dict], header: list[str], table: list) -> str:
    """summary.md: the counts, the table (no run_dir and error columns), the best, the failed."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    shown = [i for i, h in enumerate(header) if h not in ("run_dir", "error")]
    lines = [f"# Sweep {sweep.name} ({sweep.sweep_id})", "",
             f"{sweep.method}, ranked by {sweep.metric}; {len(rows)} trials: "
             + ", ".join(f"{n} {s}" for s, n in counts.items()), "",
             "| " + " | ".join(header[i] for i in shown) + " |",
             "|" + "---|" * len(shown)]
    for row in table:
        lines.append("| " + " | ".join(fmt(row[i]).replace("|", "\\|") for i in shown) + " |")
    lines.append("")
    if rows and rows[0].get("rank") == 1:
        lines += best_lines(sweep, rows[0])
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failed:"]
        lines += [f"- trial {r['trial']} ({describe(r.get('params') or {})}): {r.get('error')}"
                  for r in failed]
    lines.append(f"\nsweep folder: {sweep.folder}")
    return "\n".join(lines) + "\n"


def best_lines(sweep: Sweep, best: dict) -> list[str]:
    """The summary's lines on the best trial: its values, config and checkpoint."""
    ckpt = best.get("checkpoint") or best_checkpoint(best.get("run_dir"))
    epoch = f" at epoch {best['best_epoch']}" if best.get("best_epoch") is not None else ""
    return [f"Best: trial {best['trial']} ({describe(best.get('params') or {})}), "
            f"{sweep.metric_name} {fmt(best['best'])}{epoch}",
            f"- config: {Path(best['run_dir']) / 'config.json' if best.get('run_dir') else ''}",
            f"- checkpoint: {ckpt or ''}"]


def for_console(markdown: str, width: int = CONSOLE_WIDTH) -> str:
    """The summary as the terminal shows it: a table wider than `width` becomes one item per
    row, `header value` pairs packed into lines of at most `width` characters (summary.md and
    the CSV files keep the tables)."""
    out, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        block = []
        while i < len(lines) and lines[i].startswith("|"):
            block.append(lines[i])
            i += 1
        if not block:
            out.append(lines[i])
            i += 1
        elif max(map(len, block)) <= width or len(block) < 2:
            out += block
        else:
            header = table_cells(block[0])
            for row in block[2:]:
                pairs = [f"{h} {v}" for h, v in zip(header, table_cells(row), strict=False) if v]
                out += packed(pairs, width)
    return "\n".join(out) + "\n"


def table_cells(line: str) -> list[str]:
    """The cells of a Markdown table line (`\\|` inside a cell kept)."""
    cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def packed(items: list[str], width: int) -> list[str]:
    """`items` joined by two spaces into lines of at most `width` (an item longer than that
    alone on its line): '- ' before the first, '  ' before the others."""
    lines, line = [], "-"
    for item in items:
        if line.strip() != "-" and len(line) + 2 + len(item) > width:
            lines.append(line)
            line = " "
        line += (" " if line in ("-", " ") else "  ") + item
    return [*lines, line]
