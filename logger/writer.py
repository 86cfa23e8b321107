"""Per-epoch metric writers: metrics.csv always, TensorBoard when enabled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from logger.logger import get_logger


def csv_columns(metric_names: list[str], validate: bool) -> list[str]:
    cols = ["epoch", "loss", *metric_names]
    if validate:
        cols += ["val_loss", *[f"val_{m}" for m in metric_names]]
    return [*cols, "lr", "seconds"]


class MetricsCSV:
    """metrics.csv, one row per epoch. On resume it is rewritten from the
    checkpoint's history first, so no epoch appears twice."""

    def __init__(self, path: Path, columns: list[str], history: list[dict]):
        self.path = path
        self.columns = columns
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)


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
        self.writer = SummaryWriter(log_dir=str(log_dir))
        if config is not None:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def write(self, row: dict, step: int) -> None:
        """`loss/train`, `loss/valid`, `accuracy/train`, ... and `lr`, at step = epoch."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key in ("epoch", "seconds"):
                continue
            if key == "lr":
                tag = "lr"
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
