"""BaseTrainer: the epoch loop, monitoring, early stopping, checkpoints, resume.

A concrete trainer implements `_train_epoch` (which also validates). The
loop here owns everything that makes a run resumable exactly: the checkpoint
holds model, optimizer, scheduler, monitoring state, history and the random
generator states; data order is a function of (seed, epoch); a Ctrl-C or
SIGTERM stops after the current batch and saves that exact point.
"""

from __future__ import annotations

import json
import math
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from base.base_callback import HOOKS, Callback, fit_end, overriding, restore_callbacks
from base.finetune import load_weights_for_finetune, restore_optimizer
from logger.console import epoch_line, resume_hint
from logger.logger import get_logger
from logger.writer import lr_entries
from utils import dist
from utils.checkpoint import (
    BEST_NAME,
    INTERRUPT_NAME,
    capture_rng_state,
    epoch_checkpoint_name,
    epoch_checkpoints,
    history_rows,
    restore_rng_state,
    save_atomic,
)
from utils.data_order import data_order
from utils.options import LR_SCHEDULER, value_of
from utils.run_config import config_hash
from utils.run_limits import max_steps_reached, stop_check_interval
from utils.schema import parse_monitor
from utils.signals import exit_code, signal_name, stop_signals_handled


class StopTraining(Exception):
    """Raised by an epoch when a stop was requested; carries where it stopped."""

    def __init__(self, epoch: int, batches_done: int, stats, validating: bool = False):
        super().__init__(f"stopped in epoch {epoch} after {batches_done} batches")
        self.epoch, self.batches_done, self.stats = epoch, batches_done, stats
        self.validating = validating  # in the epoch's validation: `stats` are merged already


class Interrupted(Exception):
    """Training was stopped by a signal after saving a checkpoint."""

    def __init__(self, signum: int, path: Path | None):
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.exit_code = exit_code(signum)
        self.path = path


class BaseTrainer(ABC):
    """Owns the state a checkpoint holds; a subclass trains one epoch (`_train_epoch`).

    `config` is the parsed config (trainer/config/parse_config.py), `run_folder`
    where checkpoints and logs go (trainer/run/run_folder.py).
    """

    def __init__(self, model: torch.nn.Module, criterion: Any, metrics: dict,
                 optimizer: torch.optim.Optimizer, config: Any, device: torch.device,
                 data_loader: Any, valid_data_loader: Any = None, lr_scheduler: Any = None,
                 *, run_folder: Any):
        self.config, self.run_folder, self.device = config, run_folder, device
        self.logger = get_logger("trainer")
        # what is trained, and how
        self.model, self.criterion, self.metrics = model, criterion, metrics
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        # the data: training batches, and validation batches after each epoch (or None)
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader

        cfg = config["trainer"]
        self.amp = cfg["amp"]
        # fp16 loss scaling; a disabled scaler passes everything through (amp off or bf16)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        self.epochs = cfg["epochs"]
        self.save_period = cfg["save_period"]
        self.keep_last = cfg["keep_last"]
        self.early_stop = cfg["early_stop"]
        # torch.distributed: rank 0 writes every file; all ranks agree on stopping
        self.distributed = dist.is_distributed()
        self.is_main = dist.is_main()
        self.verbosity = cfg["verbosity"] if self.is_main else 0
        self.stop_check_every = stop_check_interval(self.distributed, cfg["accumulate_steps"])
        self.mnt_mode, self.mnt_metric = parse_monitor(cfg["monitor"])
        # lr_scheduler.interval step: the scheduler steps after every optimizer step
        self.step_interval = value_of(LR_SCHEDULER, config["lr_scheduler"] or {},
                                      "interval") == "step"
        self.epoch_lr: dict | None = None  # the lrs the current epoch started with (lr, lr/<n>)
        self.mnt_best = {"min": math.inf, "max": -math.inf}.get(self.mnt_mode, 0.0)
        self.early_stop_count = 0
        self.start_epoch = 1
        self.start_batch = 0
        self.global_step = 0  # optimizer steps so far (trainer.max_steps)
        self.partial_stats: dict | None = None
        self.validating = False  # resuming a stop during validation: train no batch, validate
        self.history: list[dict] = []
        self._history_json: list[str] = []  # each row as JSON, made once (checkpoints)
        self.checkpoint_dir: Path = run_folder.save_dir
        self.stop_signal: int | None = None
        # callbacks (base/base_callback.py), called in this order: the built-in ones and the
        # config's `callbacks:` ((type, instance) in `configured`: checkpoints' callbacks_state)
        self.callbacks: list[Callback] = []
        self.configured: list[tuple[str, Callback]] = []
        self.hooks: dict[str, list] = {hook: [] for hook in HOOKS}  # set when a fit starts
        # what callbacks may set or read
        self.validation_model: torch.nn.Module | None = None  # validate this instead (EMA)
        self.lr_scheduler_paused = False  # the scheduler does not step (SWALR sets the lr)
        self.final_epoch = False  # in on_epoch_end: whether the run ends with this epoch
        self.batch_idx = 0  # in on_step_end: the epoch's batches done (1, 2, ...)
        self.outcome = "finished"  # in on_fit_end: finished, stopped (a signal) or failed

    @abstractmethod
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (then validate); return its metrics.

        Raises StopTraining when `self.stop_signal` is set after a batch.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ helpers

    @property
    def plain_model(self) -> torch.nn.Module:
        """The model without a DataParallel / DistributedDataParallel / torch.compile wrapper."""
        model = getattr(self.model, "module", self.model)
        return getattr(model, "_orig_mod", model)

    def _add_history(self, row: dict) -> None:
        self.history.append(row)
        self._history_json.append(json.dumps(row))

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _call(self, hook: str, *args: Any) -> None:
        for method in self.hooks[hook]:
            method(self, *args)

    def _step_scheduler(self, row: dict) -> None:
        """After an epoch: the scheduler's epoch step (unless paused: SWA owns the lr)."""
        if self.lr_scheduler_paused or self.lr_scheduler is None or self.step_interval:
            return
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            key = self.mnt_metric or ("val_loss" if "val_loss" in row else "loss")
            self.lr_scheduler.step(row[key])
        else:
            self.lr_scheduler.step()

    def _scheduler_step_done(self) -> None:
        """After an optimizer step (and its on_step_end hooks): with interval step, step the
        scheduler."""
        if self.lr_scheduler is not None and self.step_interval \
                and not self.lr_scheduler_paused:
            self.lr_scheduler.step()


    def _agree_stop(self) -> bool:
        """Whether a stop was requested; under DDP on any rank (every rank calls this
        at the same batch, and all of them get the same answer)."""
        if not self.distributed:
            return self.stop_signal is not None
        signum = dist.max_int(self.stop_signal or 0, self.device)
        if signum and self.stop_signal is None:
            self.stop_signal = signum
        return bool(signum)

    def _improved(self, row: dict) -> bool:
        if self.mnt_mode == "off":
            return False
        value = row[self.mnt_metric]
        if self.mnt_mode == "min":
            return value < self.mnt_best
        return value > self.mnt_best

    def _request_stop(self, signum: int, _frame: Any) -> None:
        """First SIGINT/SIGTERM: stop after the current batch. Second SIGINT: abort now."""
        # under torchrun the launcher forwards the terminal's Ctrl-C: not a second one
        if self.stop_signal is not None and signum == signal.SIGINT and not self.distributed:
            raise KeyboardInterrupt
        self.stop_signal = signum
        again = " (Ctrl-C again aborts)" if not self.distributed else ""
        self.logger.warning(f"{signal_name(signum)} received: stopping after the "
                            f"current batch to save a checkpoint{again}")

    # ------------------------------------------------------------ the loop

    def train(self) -> list[dict]:
        """Run epochs start_epoch..epochs; return the history of per-epoch rows."""
        self.hooks = {hook: overriding(self.callbacks, hook) for hook in HOOKS}
        self.outcome = "failed"
        try:
            self._call("on_fit_start")
            with stop_signals_handled(self._request_stop):
                self._loop()
            self.outcome = "finished"
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt) or hasattr(e, "exit_code"):  # a stop signal
                self.outcome = "stopped"
            raise
        finally:
            fit_end(self)
        return self.history

    def _loop(self) -> None:
        for epoch in range(self.start_epoch, self.epochs + 1):
            # a mid-epoch resume carries on with the lr its epoch started with
            lrs = self.epoch_lr = self.epoch_lr or lr_entries(self.optimizer)
            start = time.perf_counter()
            self._call("on_epoch_start", epoch)
            try:
                result = self._train_epoch(epoch)
            except StopTraining as stop:
                path = self._save_interrupted(stop)
                raise Interrupted(self.stop_signal, path) from None
            row = {"epoch": epoch, **result, **lrs,
                   "seconds": round(time.perf_counter() - start, 4)}
            improved = self._improved(row)
            if improved:
                self.mnt_best = row[self.mnt_metric]
                self.early_stop_count = 0
            elif self.mnt_mode != "off":
                self.early_stop_count += 1
            stop = self.early_stop > 0 and self.early_stop_count >= self.early_stop
            done = max_steps_reached(self.config["trainer"]["max_steps"], self.global_step)
            self.final_epoch = last = epoch == self.epochs or stop or done
            known = len(row)
            self._call("on_epoch_end", epoch, row)  # SWA, keys of callbacks, then the loggers
            extra = tuple(row)[known:]
            self._step_scheduler(row)
            self.epoch_lr = None
            self._add_history(row)
            periodic = epoch % self.save_period == 0 or last
            if periodic or improved:
                self._save_checkpoint(epoch, row, periodic=periodic, best=improved)
            saved = ("ckpt",) * periodic + ("best",) * improved
            self.logger.info(epoch_line(row, self.epochs, self.mnt_metric, saved, extra))
            if stop:
                self.logger.info(f"{self.mnt_metric} did not improve for {self.early_stop} "
                                 f"epochs: early stop after epoch {epoch}")
                break
            if done:
                self.logger.info(f"trainer.max_steps reached: {self.global_step} optimizer "
                                 f"steps, stopping after epoch {epoch}")
                break
            if self._agree_stop():  # arrived after the last batch: the epoch is done
                path = self._periodic_path(epoch)
                if not path.exists():
                    self._save_checkpoint(epoch, row)
                raise Interrupted(self.stop_signal, path)

    # ------------------------------------------------------------ checkpoints

    def _state(self, epoch: int, loss: float) -> dict:
        state = {
            "epoch": epoch,
            "model_state_dict": self.plain_model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "loss": float(loss),
            "arch": self.config["arch"]["type"],
            "config": self.config.config,
            "config_hash": config_hash(self.config.config),  # --resume auto's identity
            "lr_scheduler_state_dict": (self.lr_scheduler.state_dict()
                                        if self.lr_scheduler is not None else None),
            "monitor_best": float(self.mnt_best),
            "early_stop_count": self.early_stop_count,
            "rng_state": capture_rng_state(),
            # one JSON string: a single object to pickle, however long the run
            "history": "[" + ",".join(self._history_json) + "]",
            "partial_epoch": None,
            "global_step": self.global_step,
            "grad_scaler_state_dict": (self.scaler.state_dict() if self.scaler.is_enabled()
                                       else None),
            "data_order": data_order(self.data_loader, self.config["seed"],
                                     self.config.trainer["accumulate_steps"],
                                     dist.get_world_size(), self.config.trainer["len_epoch"]),
            # the config's callbacks, in order (the built-in ones add keys in on_checkpoint)
            "callbacks_state": [{"type": name, "state": cb.state_dict()}
                                for name, cb in self.configured],
        }
        return state

    def _write(self, state: dict, *paths: Path) -> None:
        """The on_checkpoint hooks, then `state` written to `paths` (rank 0)."""
        self._call("on_checkpoint", state)
        save_atomic(state, *paths)

    def _periodic_path(self, epoch: int) -> Path:
        return self.checkpoint_dir / epoch_checkpoint_name(epoch)

    def _save_checkpoint(self, epoch: int, row: dict, periodic: bool = True,
                         best: bool = False) -> None:
        """model_best.pth, then checkpoint-epoch<N>.pth, serialized once (rank 0 only): a kill
        between the two leaves model_best.pth the newest checkpoint (utils/best_model.py)."""
        if not self.is_main:
            return
        paths = ([self.checkpoint_dir / BEST_NAME] if best else []) + \
            ([self._periodic_path(epoch)] if periodic else [])
        self._write(self._state(epoch, row["loss"]), *paths)
        if periodic:
            (self.checkpoint_dir / INTERRUPT_NAME).unlink(missing_ok=True)
            self._prune_checkpoints()

    def _prune_checkpoints(self) -> None:
        """Keep the newest `keep_last` periodic checkpoints (0 keeps all)."""
        if not self.keep_last:
            return
        for _, p in epoch_checkpoints(self.checkpoint_dir)[:-self.keep_last]:
            p.unlink(missing_ok=True)

    def _save_interrupted(self, stop: StopTraining) -> Path:
        state = self._state(stop.epoch - 1, self.history[-1]["loss"] if self.history
                            else float("nan"))
        stats = stop.stats if stop.validating else stop.stats.merged()
        state["partial_epoch"] = {"epoch": stop.epoch, "batches_done": stop.batches_done,
                                  "stats": stats.state_dict(), "validating": stop.validating,
                                  "world_size": dist.get_world_size(), "lr": self.epoch_lr}
        path = self.checkpoint_dir / INTERRUPT_NAME
        if not self.is_main:
            return path
        self._write(state, path)
        hint = resume_hint(dist.launch_command(), path)
        during = ", in its validation (rerun on resume)" if stop.validating else ""
        self.logger.warning(f"stopped in epoch {stop.epoch} after {stop.batches_done} batches"
                            f"{during}; saved {path}\nresume with: {hint}")
        return path

    def resume_from(self, ckpt: dict, finetune: bool = False) -> None:
        """Restore the state of a checkpoint (exact resume) or its weights (fine-tune)."""
        model = self.plain_model
        if finetune:
            load_weights_for_finetune(model, ckpt, self.config, self.logger)
        else:
            model.load_state_dict(ckpt["model_state_dict"])
        restore_optimizer(self.optimizer, ckpt, self.config, model, finetune, self.logger)
        self.start_epoch = ckpt["epoch"] + 1
        if finetune:
            return
        self.global_step = ckpt.get("global_step", 0)
        if self.lr_scheduler is not None and ckpt.get("lr_scheduler_state_dict") is not None:
            self.lr_scheduler.load_state_dict(ckpt["lr_scheduler_state_dict"])
        if self.scaler.is_enabled() and ckpt.get("grad_scaler_state_dict"):
            self.scaler.load_state_dict(ckpt["grad_scaler_state_dict"])
        restore_callbacks(self, ckpt)
        self.mnt_best = ckpt.get("monitor_best", self.mnt_best)
        self.early_stop_count = ckpt.get("early_stop_count", 0)
        for row in history_rows(ckpt):
            self._add_history(row)
        partial = ckpt.get("partial_epoch")
        if partial:  # its data order was checked up front (trainer/run/resume_checks.py)
            self.start_batch = partial["batches_done"]
            self.validating = bool(partial.get("validating"))
            lr = partial.get("lr")  # a number in checkpoints from before parameter groups
            self.epoch_lr = {"lr": lr} if isinstance(lr, int | float) else lr
            # the stats of every rank's batches so far, merged: rank 0 carries them on
            self.partial_stats = partial["stats"] if self.is_main else None
        if ckpt.get("rng_state") is not None:
            restore_rng_state(ckpt["rng_state"])

