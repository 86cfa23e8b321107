"""Learning curves without a server:  python -m logger.plot <run folder or metrics.csv> [more ...]

One PNG with a panel for the loss and for each metric: training (solid) and
validation (dashed) per epoch, the best epoch marked. Several runs are
overlaid, one colour per run. A sweep folder (one holding summary.csv, one
row per trial) gives instead the best monitored value against each swept
value. Needs matplotlib (the `plot` extra: pip install matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import ConfigError, RunError, report
from utils.files import read_json, write_figure
from utils.run_pointer import is_pointer, read_latest
from utils.schema import parse_monitor

PANEL_INCHES = (4.0, 3.2)  # width, height of one panel
MAX_COLUMNS = 3
DPI = 100
NOT_CURVES = ("epoch", "lr", "seconds")


@dataclass
class Run:
    label: str
    columns: list[str]
    rows: list[dict[str, float]]
    monitor: tuple[str, str] | None = None  # (mode, column) of the best epoch
    best_epoch: int | None = None
    curves: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading

def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None


def find_metrics_csv(path: Path) -> Path:
    """metrics.csv of a run: the file itself, a log run folder, or a models run folder (or its
    experiment's `latest` pointer)."""
    if is_pointer(path):
        path = read_latest(path)
    if path.is_file():
        return path
    if (path / "metrics.csv").is_file():
        return path / "metrics.csv"
    # saved/models/<name>/<run_id>  ->  saved/log/<name>/<run_id>/metrics.csv
    if len(path.resolve().parts) >= 4:
        run = path.resolve()
        log = run.parent.parent.parent / "log" / run.parent.name / run.name / "metrics.csv"
        if log.is_file():
            return log
    raise ConfigError(f"{path}: no metrics.csv found (give a run folder under saved/log or "
                      f"saved/models, a metrics.csv file, or a sweep folder with summary.csv)")


def _run_label(csv_path: Path) -> str:
    run = csv_path.resolve().parent
    if run.parent.parent.name == "log":
        return f"{run.parent.name}/{run.name}"
    return str(csv_path.parent)


def _configured_monitor(csv_path: Path) -> tuple[str, str] | None:
    """The run's trainer.monitor, from saved/models/<name>/<run_id>/config.json if found."""
    run = csv_path.resolve().parent
    for config_path in (run / "config.json",
                        run.parent.parent.parent / "models" / run.parent.name / run.name
                        / "config.json"):
        try:
            monitor = json.loads(config_path.read_text(encoding="utf-8"))["trainer"]["monitor"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        mode, metric = parse_monitor(str(monitor))
        return (mode, metric) if mode in ("min", "max") and metric else None
    return None


def best_epoch(run: Run) -> int | None:
    """The epoch with the best monitored value (the config's monitor, else val_loss or loss)."""
    monitor = run.monitor
    if monitor is None or monitor[1] not in run.columns:
        key = "val_loss" if "val_loss" in run.columns else "loss"
        monitor = ("min", key)
    mode, key = monitor
    scored = [(r[key], int(r["epoch"])) for r in run.rows if not math.isnan(r.get(key, math.nan))]
    if not scored:
        return None
    run.monitor = monitor
    value, epoch = (min if mode == "min" else max)(scored, key=lambda t: t[0])
    return epoch


def load_run(path: Path) -> Run:
    csv_path = find_metrics_csv(path)
    columns, raw = _read_csv(csv_path)
    if "epoch" not in columns or "loss" not in columns:
        raise ConfigError(f"{csv_path}: not a metrics.csv of this project "
                          f"(expected the columns epoch and loss, got {', '.join(columns)})")
    rows = [{k: _float(v) for k, v in r.items() if k is not None} for r in raw]
    rows = [r for r in rows if not math.isnan(r["epoch"])]
    if not rows:
        raise ConfigError(f"{csv_path}: no epochs recorded yet")
    run = Run(_run_label(csv_path), columns, rows, _configured_monitor(csv_path))
    run.curves = [c for c in columns if c not in NOT_CURVES and not c.startswith(("val_", "lr/"))]
    run.best_epoch = best_epoch(run)
    return run


# ---------------------------------------------------------------- figures

def _new_figure(n_panels: int):
    """A figure of n panels, at most MAX_COLUMNS wide; its size is fixed by the panel count."""
    from matplotlib.figure import Figure

    cols = min(n_panels, MAX_COLUMNS)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(cols * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def plot_runs(runs: list[Run], out: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    curves: list[str] = []
    for run in runs:
        curves += [c for c in run.curves if c not in curves]
    fig, axes = _new_figure(len(curves))
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, name in zip(axes, curves):
        for run, color in zip(runs, colors):
            _plot_curve(ax, run, name, color)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    axes[0].legend(handles=_legend_handles(runs, colors), fontsize="x-small")
    if len(runs) == 1:
        fig.suptitle(runs[0].label, fontsize="medium")
    fig.tight_layout()
    return _save(fig, out)


def _legend_handles(runs: list[Run], colors: list[str]) -> list:
    """One legend for the figure: line styles (train, valid, best epoch), then one entry per run."""
    from matplotlib.lines import Line2D

    single = len(runs) == 1
    ink = colors[0] if single else "black"
    handles = [Line2D([], [], color=ink, linestyle="-", label="train"),
               Line2D([], [], color=ink, linestyle="--", label="valid")]
    if single and runs[0].best_epoch is not None:
        mode, key = runs[0].monitor
        handles.append(Line2D([], [], color=ink, linestyle=":", marker="*",
                              label=f"best epoch {runs[0].best_epoch} ({mode} {key})"))
    elif not single:
        handles.append(Line2D([], [], color=ink, linestyle=":", marker="*",
                              label="best epoch (monitored)"))
        for run, color in zip(runs, colors):
            best = f", best epoch {run.best_epoch}" if run.best_epoch is not None else ""
            handles.append(Line2D([], [], color=color, linewidth=3, label=f"{run.label}{best}"))
    return handles


def _plot_curve(ax, run: Run, name: str, color: str) -> None:
    for key, style in ((name, "-"), (f"val_{name}", "--")):
        if key not in run.columns:
            continue
        points = [(r["epoch"], r[key]) for r in run.rows if not math.isnan(r[key])]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, style, color=color, marker="o" if len(xs) == 1 else None)
    if run.best_epoch is None:
        return
    ax.axvline(run.best_epoch, color=color, linestyle=":", linewidth=1)
    best_row = next(r for r in run.rows if int(r["epoch"]) == run.best_epoch)
    for key in (name, f"val_{name}"):
        if key == run.monitor[1]:
            ax.plot([run.best_epoch], [best_row[key]], "*", color=color, markersize=12)


def _save(fig, out: Path) -> Path:
    write_figure(fig, out, dpi=DPI, format="png")  # RunError naming the file
    return out


# ---------------------------------------------------------------- sweeps

SCORED_STATUSES = ("finished", "pruned")  # trials with a best value (sweep/records.py)


@dataclass
class SweepTable:
    """A sweep's summary.csv as sweep/records.py writes it, and its sweep.json's metric."""
    label: str
    value_column: str  # best_<metric>
    mode: str  # min or max, from the sweep's metric
    params: list[str]  # the swept keys: the columns between status and best_<metric>
    trials: list[dict]  # the scored trials' rows (strings), value parsed as 'value'
    n_rows: int


def _sweep_mode(folder: Path) -> str:
    """min or max: the sweep's metric ('max val_accuracy') from its sweep.json."""
    definition = read_json(folder / "sweep.json")
    metric = definition.get("metric") if isinstance(definition, dict) else None
    mode, _ = parse_monitor(metric) if isinstance(metric, str) else ("off", None)
    if mode not in ("min", "max"):
        raise ConfigError(f"{folder}: no sweep.json with the sweep's metric beside summary.csv")
    return mode


def load_sweep_table(path: Path) -> SweepTable:
    summary = path / "summary.csv" if path.is_dir() else path
    columns, rows = _read_csv(summary)
    values = [c for c in columns if c.startswith("best_") and c != "best_epoch"]
    if "status" not in columns or len(values) != 1:
        raise ConfigError(f"{summary}: not a sweep summary of this project (expected the "
                          f"columns status and best_<metric>; got {', '.join(columns)})")
    value_column = values[0]
    params = columns[columns.index("status") + 1:columns.index(value_column)]
    trials = []
    for row in rows:
        value = _float(row.get(value_column))
        if row.get("status") in SCORED_STATUSES and math.isfinite(value):
            trials.append({**row, "value": value})
    if not trials:
        raise ConfigError(f"{summary}: no finished trial with a value in '{value_column}' yet")
    folder = summary.resolve().parent
    label = f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name
    return SweepTable(label, value_column, _sweep_mode(folder), params, trials, len(rows))


def _numeric(values: list[str]) -> list[float] | None:
    out = [_float(v) for v in values]
    if any(math.isnan(v) for v in out) or any(str(v).strip().lower() in ("true", "false")
                                              for v in values):
        return None
    return out


def plot_sweep(sweep: SweepTable, out: Path) -> Path:
    fig, axes = _new_figure(len(sweep.params))
    pick = min if sweep.mode == "min" else max
    best = pick(sweep.trials, key=lambda t: t["value"])
    ys = [t["value"] for t in sweep.trials]
    for ax, param in zip(axes, sweep.params):
        raw = [str(t.get(param, "")) for t in sweep.trials]
        xs = _numeric(raw)
        if xs is None:  # categorical values: one position each, in order of appearance
            names = list(dict.fromkeys(raw))
            xs = [float(names.index(v)) for v in raw]
            ax.set_xticks(range(len(names)), names, rotation=30, fontsize="small")
            best_x = float(names.index(str(best.get(param, ""))))
        else:
            best_x = _float(best.get(param))
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(xs) / min(xs) >= 20:
                ax.set_xscale("log")
        ax.plot(xs, ys, "o", color="C0", alpha=0.7, label="trial")
        ax.plot([best_x], [best["value"]], "*", color="C3", markersize=14,
                label=f"best ({sweep.mode}) {best['value']:.4g}")
        ax.set_xlabel(param)
        ax.set_ylabel(sweep.value_column)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"{sweep.label}: {len(sweep.trials)} of {sweep.n_rows} trials",
                 fontsize="medium")
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------- command line

def is_sweep(path: Path) -> bool:
    return (path.is_dir() and (path / "summary.csv").is_file()) or path.name == "summary.csv"


def default_output(paths: list[Path]) -> Path:
    first = paths[0]
    if is_sweep(first):
        return (first if first.is_dir() else first.parent) / "sweep.png"
    if len(paths) > 1:
        return Path("learning_curves.png")
    return find_metrics_csv(first).parent / "learning_curve.png"  # the run's log folder


def plot(paths: list[Path], out: Path | None = None) -> Path:
    """Write the PNG for `paths` (runs, or one sweep folder) and return its path."""
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or folder")
    sweeps = [p for p in paths if is_sweep(p)]
    if sweeps and len(paths) > 1:
        raise ConfigError(f"{sweeps[0]}: a sweep folder is plotted on its own, not with other runs")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("plotting needs matplotlib, which is not installed; install it with: "
                          "pip install matplotlib") from None
    out = out or default_output(paths)
    if sweeps:
        return plot_sweep(load_sweep_table(sweeps[0]), out)
    return plot_runs([load_run(p) for p in paths], out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logger.plot",
        description="Plot learning curves of runs (overlaid), or a sweep's results, to a PNG.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="run folder (saved/log/<name>/<run_id> or saved/models/...; "
                             "saved/models/<name>/latest: the newest), "
                             "metrics.csv, or a sweep folder holding summary.csv")
    parser.add_argument("-o", "--output", type=Path,
                        help="PNG to write (default: learning_curve.png in the run's log "
                             "folder, saved/log/<name>/<run_id>, beside its metrics.csv; "
                             "learning_curves.png here for several runs; sweep.png in a sweep "
                             "folder)")
    args = parser.parse_args(argv)
    try:
        out = plot(args.paths, args.output)
    except (ConfigError, RunError) as e:
        return report(e)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
