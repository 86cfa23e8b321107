"""Per-epoch metric writers: metrics.csv always, TensorBoard when enabled, and the optional
backends of trainer.loggers (MLflow: logger/mlflow_logger.py) behind one Writers object."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from logger import mlflow_logger, mlflow_reach
from logger.logger import get_logger
from utils.errors import ConfigError, RunError, did_you_mean
from utils.files import write_output

LOGGERS = ("mlflow",)  # trainer.loggers: the optional backends


def csv_columns(metric_names: list[str], validate: bool,
                lr_columns: list[str] | None = None) -> list[str]:
    """metrics.csv's columns; `lr_columns`: `lr`, and `lr/<n>` per parameter group when
    there are several (utils/param_groups.py)."""
    cols = ["epoch", "loss", *metric_names]
    if validate:
        cols += ["val_loss", *[f"val_{m}" for m in metric_names]]
    return [*cols, *(lr_columns or ["lr"]), "seconds"]


class MetricsCSV:
    """metrics.csv, one row per epoch. On resume it is rewritten from the
    checkpoint's history first, so no epoch appears twice. Each epoch the whole (small)
    file is written again to a temporary file and renamed over it, so a reader sees whole
    rows and a link planted in its place is replaced, never written through."""

    def __init__(self, path: Path, columns: list[str], history: list[dict]):
        self.path = path
        self.buffer = io.StringIO()
        self.writer = csv.DictWriter(self.buffer, fieldnames=columns, extrasaction="ignore",
                                     lineterminator="\n")
        self.writer.writeheader()
        self.writer.writerows(history)
        self._flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self._flush()

    def _flush(self) -> None:
        # no fsync: a resume writes the file again from the checkpoint's history
        write_output(self.buffer.getvalue(), self.path, durable=False)


class TensorboardWriter:
    """TensorBoard event files in the run's log folder (trainer.tensorboard: true).

    Per epoch: scalars `loss/train`, `loss/valid`, `<metric>/train`,
    `<metric>/valid` and `lr`; with lr_scheduler.interval step also `lr_step`, the
    lr of every optimizer step at step = the run's optimizer step count; every
    `trainer.histogram_period` epochs a histogram of every parameter
    (`parameters/<name>`); once, the config as
    text. Enabled but not installed: a warning, and training goes on.
    """

    def __init__(self, log_dir: Path, enabled: bool, config: dict | None = None):
        self.writer = None
        trainer = (config or {}).get("trainer") or {}
        self.histogram_period = int(trainer.get("histogram_period", 0) or 0)
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
    if "mlflow" in trainer.get("loggers", []):
        mlflow_logger.check_installed()


def check_loggers(config: dict, is_main: bool) -> None:
    """Up front, before a run folder exists: every listed backend is installed and, on rank 0,
    the MLflow tracking server answers within seconds (logger/mlflow_reach.py)."""
    check_loggers_installed(config["trainer"])
    if is_main and "mlflow" in config["trainer"]["loggers"]:
        mlflow_reach.check_reachable(config)


class Writers:
    """The run's backends (TensorBoard, MLflow) as one writer; as a context manager it ends
    them, an MLflow run as FINISHED, KILLED (a stop signal) or FAILED."""

    def __init__(self, tensorboard: TensorboardWriter, others: list):
        self.tensorboard, self.others = tensorboard, others

    def write(self, row: dict, step: int) -> None:
        self.tensorboard.write(row, step)
        for backend in self.others:
            backend.write(row, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.tensorboard.scalar(tag, value, step)

    def histograms(self, model, epoch: int) -> None:
        self.tensorboard.histograms(model, epoch)

    def state(self) -> dict:
        """Plain data for the checkpoint (the MLflow run id)."""
        return {k: v for backend in self.others for k, v in backend.state().items()}

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, exc_type, exc, _tb) -> None:
        stopped = exc_type is KeyboardInterrupt or hasattr(exc, "exit_code")
        status = "FINISHED" if exc_type is None else "KILLED" if stopped else "FAILED"
        self.tensorboard.close()
        for backend in self.others:
            try:
                backend.close(status)
            except RunError as e:
                if exc_type is None:
                    raise
                get_logger("writer").warning(f"warning: {e}")  # the run's own error goes on


def open_writers(run_folder, config, is_main: bool, history: list[dict]) -> Writers:
    """The Writers of a run: TensorBoard (trainer.tensorboard) and, on rank 0, the
    trainer.loggers. An exact resume in its own folder continues the checkpoint's MLflow run."""
    trainer = config.trainer
    tensorboard = TensorboardWriter(run_folder.log_dir, trainer["tensorboard"] and is_main,
                                    config.config)
    others = []
    if is_main and "mlflow" in trainer.get("loggers", []):
        ckpt = getattr(config, "checkpoint", None) or {}
        same_run = run_folder.reused and not getattr(config, "finetune", False)
        run_id = ckpt.get(mlflow_logger.RUN_ID_KEY) if same_run else None
        name = f"{config['name']}/{run_folder.run_id}"
        others.append(mlflow_logger.MlflowLogger(config.config, name, run_folder.save_dir,
                                                 run_id, history))
    return Writers(tensorboard, others)
