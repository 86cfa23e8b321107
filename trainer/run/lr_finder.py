"""train.py -c CFG --find-lr [--apply]: the learning-rate range test.

A copy of the configured model and a fresh optimizer of the configured type
train for up to SWEEP_STEPS optimizer steps (the loader's epochs cycled as one
stream), the lr growing exponentially from START_LR to END_LR; the sweep stops
early once the smoothed loss passes DIVERGE_FACTOR times its best (or is not
finite). The suggestion is the lr where the smoothed loss falls fastest per
decade of lr (the steepest descent). Nothing of the run is touched: no run
folder, no checkpoint, the config file as it was; the outputs are lr_find.csv
and lr_find.png in the current directory, and with --apply a new config file
beside the original (<stem>_lr.<ext>) whose only change is optimizer.args.lr; an
existing <stem>_lr.<ext> is never replaced (checked before the test runs).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from logger.logger import setup_logging
from trainer.config.class_weights import criterion_to
from trainer.config.parse_config import ConfigParser
from trainer.loop.iteration import epoch_batches
from trainer.loop.trainer import autocast, check_amp, to_device
from utils import dist
from utils.config_io import read_config_file
from utils.csv_table import write_csv
from utils.errors import ConfigError, RunError
from utils.files import write_figure, write_output

START_LR, END_LR = 1e-7, 10.0
SWEEP_STEPS = 200
SMOOTHING = 0.9  # exponential smoothing of the loss (bias-corrected; ~10 steps: little lag)
DIVERGE_FACTOR = 4.0
SKIP_START, SKIP_END = 10, 5  # points left out of the suggestion at each end of the curve
CSV_NAME, PNG_NAME = "lr_find.csv", "lr_find.png"


def lr_schedule(steps: int = SWEEP_STEPS, start: float = START_LR,
                end: float = END_LR) -> np.ndarray:
    """The sweep's lr of each step: exponential from `start` to `end`."""
    return start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average of `losses`."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> float:
    """The lr of the steepest descent of the smoothed loss over log10(lr)."""
    end = len(lrs) - SKIP_END
    if end - SKIP_START < 3:
        raise RunError(f"--find-lr: the loss diverged after {len(lrs)} steps, too early to "
                       f"suggest a learning rate; check the model and data (lr from "
                       f"{START_LR:g})")
    grad = np.gradient(np.asarray(smoothed[:end]), np.log10(np.asarray(lrs[:end])))
    return float(lrs[SKIP_START + int(np.argmin(grad[SKIP_START:]))])


def sweep(config: ConfigParser) -> tuple[list[float], list[float]]:
    """(lrs, losses) of the range test, one per optimizer step, until the end or divergence."""
    device, _ = dist.setup_device(config["n_gpu"])
    amp = config.trainer["amp"]
    check_amp(amp, device)
    parts = config.build_all()
    model = copy.deepcopy(parts.model).to(device)  # the built model and optimizer stay as built
    optimizer = config.build_optimizer(model)
    criterion = criterion_to(parts.criterion, device)
    model.train()
    lrs, losses, best = [], [], math.inf
    schedule = lr_schedule()
    batches = epoch_batches(parts.data_loader, 1, 0, len(schedule))
    for lr, batch in zip(schedule, batches, strict=False):
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        *inputs, target = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(amp, device):
            loss = criterion(model(*inputs), target)
        loss.backward()
        optimizer.step()
        lrs.append(float(lr))
        losses.append(float(loss.detach()))
        current = smooth(losses)[-1]
        if not math.isfinite(current) or current > DIVERGE_FACTOR * best:
            break
        best = min(best, current)
    return lrs, losses


def lr_table(lrs: list[float], losses: list[float], smoothed: list[float]) -> list[list]:
    """lr_find.csv's rows under step, lr, loss, smoothed_loss."""
    return [[step, *(repr(v) for v in row)]
            for step, row in enumerate(zip(lrs, losses, smoothed, strict=True), start=1)]


def write_png(lrs: list[float], losses: list[float], smoothed: list[float], suggested: float,
              path: Path) -> None:
    """Loss against lr (log x), the smoothed curve and the suggestion marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(lrs, losses, color="0.75", linewidth=1, label="loss")
    ax.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed loss")
    ax.axvline(suggested, color="C3", linestyle="--", label=f"suggested lr {suggested:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    finite = [v for v in losses + smoothed if math.isfinite(v)]
    if finite:  # the divergent tail would squash the curve
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 2 * smoothed[0]) * 1.1)
    ax.legend()
    fig.tight_layout()
    write_figure(fig, path, format="png")


def applied_path(source: Path) -> Path:
    """Where --apply writes: <stem>_lr.<ext> beside `source`."""
    return source.with_name(f"{source.stem}_lr{source.suffix}")


def check_run_options(args: Any) -> None:
    """What --find-lr cannot be combined with: -r, sweeps, and (with --apply) an existing
    <stem>_lr.<ext>, which it never replaces; checked before the range test runs."""
    if not args.find_lr:
        raise ConfigError("--apply goes with --find-lr (it writes the suggested lr)")
    if args.resume or not args.config:
        raise ConfigError("--find-lr takes a config (-c FILE) and starts from its fresh model, "
                          "without -r")
    sweeping = [flag for flag, dest in (("-m", "multirun"), ("--folds", "folds"),
                                        ("--repeat", "repeat"), ("--jobs", "jobs"),
                                        ("--test", "test"))
                if getattr(args, dest, None) not in (None, False)]
    if sweeping:
        raise ConfigError(f"--find-lr runs one range test and does not sweep: drop "
                          f"{', '.join(sweeping)}"
                          + (" (and give each override one value)" if "-m" in sweeping else ""))
    out = applied_path(Path(args.config))
    if args.apply and (out.exists() or out.is_symlink()):
        raise ConfigError(f"--apply: {out} exists and --find-lr never replaces a file: move it "
                          f"away (or delete it) and run again")


def apply_lr(source: Path, lr: float) -> Path:
    """<stem>_lr.<ext> beside `source`: the same file (same format) with optimizer.args.lr."""
    data = read_config_file(source)
    optimizer = data.setdefault("optimizer", {})
    if not isinstance(optimizer, dict):
        raise ConfigError(f"{source}: optimizer: expected a mapping to write the lr into")
    optimizer.setdefault("args", {})
    optimizer["args"] = {**(optimizer["args"] or {}), "lr": lr}
    out = applied_path(source)
    raw = source.read_text(encoding="utf-8")
    if source.suffix == ".json":
        schema = json.loads(raw).get("$schema")  # the editor's schema stays the file's first key
        text = json.dumps({**({"$schema": schema} if schema else {}), **data}, indent=2) + "\n"
    else:
        first = raw.splitlines()[0] if raw.strip() else ""
        keep = first + "\n" if first.startswith("# yaml-language-server:") else ""
        text = (keep + f"# {source.name} with the lr suggested by train.py --find-lr\n"
                + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                 default_flow_style=None, width=100))
    write_output(text, out)
    return out


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--find-lr writes lr_find.png with matplotlib, which is not installed; "
                          "install it with: pip install matplotlib (the plot extra)") from None


def find_lr(args: Any) -> int:
    """The range test of train.py's `args` (-c, overrides, --apply); prints `suggested lr: X`;
    the process exit code."""
    check_run_options(args)
    config = ConfigParser.from_args(args)
    check_plotting()
    setup_logging(config.trainer["verbosity"])
    lrs, losses = sweep(config)
    smoothed = smooth(losses)
    suggested = float(f"{suggest(lrs, smoothed):.3g}")
    write_csv(Path(CSV_NAME), ["step", "lr", "loss", "smoothed_loss"],
              lr_table(lrs, losses, smoothed))
    write_png(lrs, losses, smoothed, suggested, Path(PNG_NAME))
    print(f"lr range test: {len(lrs)} steps, lr {lrs[0]:.3g} to {lrs[-1]:.3g}"
          + (" (stopped: the loss diverged)" if len(lrs) < SWEEP_STEPS else ""))
    print(f"wrote {CSV_NAME} and {PNG_NAME}")
    print(f"suggested lr: {suggested:g}")
    if args.apply:
        out = apply_lr(Path(args.config), suggested)
        print(f"wrote {out} (optimizer.args.lr: {suggested:g}); train with: "
              f"python train.py -c {out}")
    return 0
