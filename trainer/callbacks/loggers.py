"""The run's loggers as built-in callbacks: metrics.csv (always, rank 0), TensorBoard
(trainer.tensorboard), the per-step lr (TensorBoard `lr_step`, with lr_scheduler.interval
step) and MLflow (trainer.loggers: [mlflow]). What they write is logger/writer.py's and
logger/mlflow_logger.py's; here is when: each opens when the fit starts (metrics.csv
rewritten from the history a resume brought), writes the epoch's row in on_epoch_end (after
the callbacks before it added their keys) and ends with the fit.
"""

from __future__ import annotations

from typing import Any

import torch

from base.base_callback import BuiltinCallback
from logger import mlflow_logger
from logger.logger import get_logger
from logger.writer import MetricsCSV, TensorboardWriter, csv_columns, lr_entries
from utils.errors import RunError

MLFLOW_STATUS = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


class CSVLogger(BuiltinCallback):
    """metrics.csv in the run's log folder, one row per epoch (rank 0)."""

    option = "trainer (always on)"

    def __init__(self) -> None:
        self.csv: MetricsCSV | None = None

    def on_fit_start(self, trainer: Any) -> None:
        columns = csv_columns(list(trainer.metrics), trainer.valid_data_loader is not None,
                              list(lr_entries(trainer.optimizer)))  # lr, lr/<n> per group
        self.csv = MetricsCSV(trainer.run_folder.log_dir / "metrics.csv", columns,
                              trainer.history)

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        self.csv.write(log)

    def on_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        if self.csv is not None:
            self.csv.flush()

    def on_fit_end(self, trainer: Any) -> None:
        if self.csv is not None:
            self.csv.flush()


class TensorBoardLogger(BuiltinCallback):
    """TensorBoard event files (trainer.tensorboard: true, rank 0): the epoch's scalars and,
    every trainer.histogram_period epochs, the parameters' histograms."""

    option = "trainer.tensorboard"

    def __init__(self) -> None:
        self.board: TensorboardWriter | None = None

    def on_fit_start(self, trainer: Any) -> None:
        self.board = TensorboardWriter(trainer.run_folder.log_dir, True, trainer.config.config)

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        self.board.write(log, epoch)
        self.board.histograms(trainer.plain_model, epoch)

    def on_fit_end(self, trainer: Any) -> None:
        if self.board is not None:
            self.board.close()


class LRLogger(BuiltinCallback):
    """With lr_scheduler.interval step and TensorBoard: the lr each optimizer step used, as
    `lr_step` at step = the run's optimizer steps (SWA's epochs aside: SWALR sets it)."""

    option = "lr_scheduler.interval: step with trainer.tensorboard"

    def __init__(self, tensorboard: TensorBoardLogger):
        self.tensorboard = tensorboard

    def on_step_end(self, trainer: Any, step: int, loss: torch.Tensor) -> None:
        if not trainer.lr_scheduler_paused and self.tensorboard.board is not None:
            self.tensorboard.board.scalar("lr_step", trainer.current_lr(), step)


class MLflowTracking(BuiltinCallback):
    """One MLflow run per training run (rank 0); its id is the checkpoint's `mlflow_run_id`,
    so an exact resume in the same run folder continues it."""

    option = "trainer.loggers: [mlflow]"

    def __init__(self) -> None:
        self.run: mlflow_logger.MlflowLogger | None = None
        self.stored_run_id: str | None = None  # the resumed checkpoint's

    def restore(self, trainer: Any, checkpoint: dict) -> None:
        self.stored_run_id = checkpoint.get(mlflow_logger.RUN_ID_KEY)

    def on_fit_start(self, trainer: Any) -> None:
        folder, config = trainer.run_folder, trainer.config
        run_id = self.stored_run_id if folder.reused else None
        self.run = mlflow_logger.MlflowLogger(config.config, f"{config['name']}/{folder.run_id}",
                                              folder.save_dir, run_id, trainer.history)

    def on_epoch_end(self, trainer: Any, epoch: int, log: dict) -> None:
        self.run.write(log, epoch)

    def on_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        if self.run is not None:
            checkpoint.update(self.run.state())

    def on_fit_end(self, trainer: Any) -> None:
        """End the MLflow run FINISHED, KILLED (a stop signal) or FAILED."""
        if self.run is None:
            return
        try:
            self.run.close(MLFLOW_STATUS[trainer.outcome])
        except RunError as e:
            if trainer.outcome == "finished":
                raise
            get_logger("writer").warning(f"warning: {e}")  # the run's own error goes on


def logger_callbacks(trainer: Any) -> list[BuiltinCallback]:
    """The loggers `trainer`'s config turns on (rank 0 writes every file): metrics.csv,
    TensorBoard and its per-step lr, MLflow."""
    if not trainer.is_main:
        return []
    cfg = trainer.config["trainer"]
    found: list[BuiltinCallback] = [CSVLogger()]
    if cfg["tensorboard"]:
        board = TensorBoardLogger()
        found.append(board)
        if trainer.lr_scheduler is not None and trainer.step_interval:
            found.append(LRLogger(board))
    if "mlflow" in cfg["loggers"]:
        found.append(MLflowTracking())
    return found
