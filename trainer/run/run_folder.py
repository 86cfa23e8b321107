"""A run's two folders: saved/models/<name>/<run_id>/ (checkpoints, config.json) and
saved/log/<name>/<run_id>/ (info.log, metrics.csv, TensorBoard events)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from logger.logger import get_logger
from trainer.config.parse_config import ConfigParser
from utils.best_model import repair_best
from utils.checkpoint import BEST_NAME, epoch_checkpoints
from utils.checkpoint_arg import best_ahead
from utils.errors import RunError
from utils.files import remove_stale_temporaries, write_json
from utils.run_lock import lock_run_folder, unlock_run_folder
from utils.run_pointer import write_latest


@dataclass(frozen=True)
class RunFolder:
    run_id: str
    save_dir: Path  # checkpoints and config.json
    log_dir: Path  # info.log, metrics.csv, TensorBoard events
    reused: bool = False  # an exact resume going on in the checkpoint's own folder

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "run_dir": str(self.save_dir), "log_dir": str(self.log_dir)}


def own_run_dir(config: ConfigParser) -> Path | None:
    """The resumed checkpoint's folder when it is a run folder of this run's save_dir and
    name and the resume is exact (not a fine-tune): the folder output may go on in."""
    if config.resume is None or config.finetune:
        return None
    run_dir = config.resume.parent
    save_dir = Path(config.trainer["save_dir"]).resolve()
    if run_dir.resolve().parent != save_dir / "models" / config["name"]:
        return None
    return run_dir


def resumable_run_dir(config: ConfigParser) -> Path | None:
    """The resumed checkpoint's run folder, when output may go on there.

    Only for an exact resume from a checkpoint inside its own run folder
    that holds nothing newer than it: resuming from an earlier checkpoint
    of a run that went on gets a new folder, so no run's files are lost.
    """
    run_dir = own_run_dir(config)
    if run_dir is None:
        return None
    epoch = config.checkpoint["epoch"]
    if any(n > epoch for n, _ in epoch_checkpoints(run_dir)):
        return None
    if config.resume.name != BEST_NAME and best_ahead(run_dir):
        return None
    return run_dir


def repair_own_best(config: ConfigParser) -> None:
    """An exact resume in its own run folder, a finished run's included, first repairs the
    folder's model_best.pth when it is older than the epoch the newest checkpoint's history
    names best (utils/best_model.py)."""
    run_dir = own_run_dir(config)
    if run_dir is not None:
        _, note = repair_best(run_dir)
        if note:
            get_logger().warning(note)


def create_run_folder(config: ConfigParser) -> RunFolder:
    """Create (or reuse, on resume) the run's model and log folders; save config.json."""
    try:
        return _create(config)
    except OSError as e:
        raise RunError(f"cannot create the run folder under {config.trainer['save_dir']}: "
                       f"{e.strerror or e}") from None


def _create(config: ConfigParser) -> RunFolder:
    root = Path(config.trainer["save_dir"])
    name = config["name"]
    own = own_run_dir(config)
    if own is not None:  # the one writer: taken before the folder's contents are looked at
        lock_run_folder(own)
    reuse = resumable_run_dir(config)
    if own is not None and reuse is None:
        unlock_run_folder(own)
    if reuse is not None:
        run_id, save_dir = reuse.name, reuse
        remove_stale_temporaries(reuse)  # left by a save that was killed mid-write
    else:
        stamp = datetime.now().strftime("%m%d_%H%M%S")
        while True:  # unique even for runs started in the same second
            run_id = f"{stamp}_{os.urandom(3).hex()}"
            save_dir = root / "models" / name / run_id
            try:
                save_dir.mkdir(parents=True, exist_ok=False)
                lock_run_folder(save_dir)
                break
            except FileExistsError:
                continue
    log_dir = root / "log" / name / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    write_json(config.config, save_dir / "config.json")
    write_latest(save_dir)  # saved/models/<name>/latest: this run (rank 0 alone gets here)
    return RunFolder(run_id, save_dir, log_dir, reused=reuse is not None)
