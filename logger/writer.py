"""Per-epoch metric writers: metrics.csv always, TensorBoard when enabled, and the checks of
the optional backends of trainer.loggers (MLflow: logger/mlflow_logger.py). The built-in
callbacks of trainer/callbacks/loggers.py drive them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from logger import mlflow_logger, mlflow_reach
from logger.logger import get_logger
from utils.csv_table import write_csv
from utils.errors import ConfigError, did_you_mean

LOGGERS = ("mlflow",)  # trainer.loggers: the optional backends
FLUSH_EVERY_S = 1.0  # metrics.csv: the longest a finished epoch's row waits for its write


def lr_entries(optimizer: Any) -> dict[str, float]:
    """{'lr': the first parameter group's lr}, and with several groups (optimizer.param_groups,
    no_decay: utils/param_groups.py) `lr/<n>` for each: an epoch row's lr keys."""
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    entries = {"lr": lrs[0]}
    if len(lrs) > 1:
        entries.update({f"lr/{i}": lr for i, lr in enumerate(lrs)})
    return entries


def csv_columns(metric_names: list[str], validate: bool,
                lr_columns: list[str] | None = None) -> list[str]:
    """metrics.csv's columns; `lr_columns`: `lr`, and `lr/<n>` per parameter group when
    there are several (the keys of lr_entries)."""
    cols = ["epoch", "loss", *metric_names]
    if validate:
        cols += ["val_loss", *[f"val_{m}" for m in metric_names]]
    return [*cols, *(lr_columns or ["lr"]), "seconds"]


class MetricsCSV:
    """metrics.csv, one row per epoch. On resume it is rewritten from the
    checkpoint's history first, so no epoch appears twice. The whole (small) file is written
    again to a temporary file and renamed over it, so a reader sees whole rows and a link
    planted in its place is replaced, never written through; at most every FLUSH_EVERY_S
    seconds after the fit's first row, and always on flush() (before each checkpoint and when
    the fit ends), so fast epochs do not pay a file rename each. A row with a
    key the columns lack (one a callback added: grad_norm) adds a column before `lr`."""

    def __init__(self, path: Path, columns: list[str], history: list[dict]):
        self.path = path
        self.columns = list(columns)
        self.rows = list(history)
        self._add_columns(self.rows)
        self.flush()
        self.flushed_at = -FLUSH_EVERY_S  # the fit's first row is written at once

    def write(self, row: dict) -> None:
        self.rows.append(row)
        self._add_columns([row])
        if time.monotonic() - self.flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def _add_columns(self, rows: list[dict]) -> bool:
        new = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in self.columns]
        at = self.columns.index("lr") if "lr" in self.columns else len(self.columns)
        self.columns[at:at] = new
        return bool(new)

    def flush(self) -> None:
        """Write the file now (no fsync: a resume writes it again from the checkpoint)."""
        self.flushed_at = time.monotonic()
        write_csv(self.path, self.columns,
                  [[row.get(column, "") for column in self.columns] for row in self.rows],
                  durable=False)


class TensorboardWriter:
    """TensorBoard event files in the run's log folder (trainer.tensorboard: true).

    Per epoch: scalars `loss/train`, `loss/valid`, `<metric>/train`,
    `<metric>/valid` and `lr`; with lr_scheduler.interval step also `lr_step`, the
    lr of every optimizer step at step = the run's optimizer step count; every
    `trainer.histogram_period` epochs a histogram of every parameter
    (`parameters/<name>`); once, the config as
    text. Enabled but not installed: a warning, and training goes on.
    """

    def __init__(self, log_dir: Path, enabled: bool, config: dict):
        self.writer = None
        self.histogram_period = config["trainer"]["histogram_period"]  # resolved
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            get_logger("writer").warning(
                "warning: trainer.tensorboard is true but TensorBoard is not installed; "
                "install it with: pip install tensorboard  (training goes on without it)")
            return
        # a random suffix: no link planted in the log folder can be named after the file
        self.writer = SummaryWriter(log_dir=str(log_dir),
                                    filename_suffix=f".{os.urandom(6).hex()}")
        if config is not None:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def write(self, row: dict, step: int) -> None:
        """`loss/train`, `loss/valid`, `accuracy/train`, ... and `lr`, at step = epoch."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key in ("epoch", "seconds"):
                continue
            if key == "lr" or key.startswith("lr/"):  # lr/<n>: a parameter group's
                tag = key
            elif key.startswith("val_"):
                tag = f"{key[4:]}/valid"
            else:
                tag = f"{key}/train"
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # visible in a running TensorBoard after every epoch

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar at `step` (the per-optimizer-step lr); flushed with the epoch's row."""
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def histograms(self, model, epoch: int) -> None:
        """A histogram of every parameter, on epochs that are multiples of histogram_period."""
        if self.writer is None or self.histogram_period <= 0 or epoch % self.histogram_period:
            return
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"parameters/{name}", param.detach().float().cpu(), epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def validate_loggers(loggers: object, options: object) -> tuple[list[str], dict]:
    """trainer.loggers (a list of LOGGERS names) and trainer.mlflow, resolved."""
    if not isinstance(loggers, list):
        raise ConfigError(f"trainer.loggers: expected a list such as [mlflow], got {loggers!r}")
    for i, name in enumerate(loggers):
        if name not in LOGGERS:
            raise ConfigError(f"trainer.loggers[{i}]: unknown logger {name!r}"
                              f"{did_you_mean(str(name), LOGGERS)} (available: "
                              f"{', '.join(LOGGERS)})")
    return list(dict.fromkeys(loggers)), mlflow_logger.validate_options(options)


def check_loggers_installed(trainer: dict) -> None:
    """ConfigError naming the pip command for a listed backend that is not installed."""
    if "mlflow" in trainer["loggers"]:
        mlflow_logger.check_installed()


def check_loggers(config: dict, is_main: bool) -> None:
    """Up front, before a run folder exists: every listed backend is installed and, on rank 0,
    the MLflow tracking server answers within seconds (logger/mlflow_reach.py)."""
    check_loggers_installed(config["trainer"])
    if is_main and "mlflow" in config["trainer"]["loggers"]:
        mlflow_reach.check_reachable(config)
