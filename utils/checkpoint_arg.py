"""What `-r PATH` names: a checkpoint file, a run folder, or an experiment's `latest` pointer.

    train.py -r RUN_DIR_OR_LATEST   resumes the run's newest checkpoint (by training
                                    progress, a mid-epoch interrupt checkpoint included)
    test.py  -r RUN_DIR_OR_LATEST   evaluates the run's model_best.pth (else its newest
                                    checkpoint, when the run monitored nothing)

model_best.pth is written before the epoch's checkpoint, so a kill between the two leaves it
the furthest into training: it is then the run's newest checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from utils.checkpoint import (
    BEST_NAME,
    INTERRUPT_NAME,
    check_checkpoint_file,
    epoch_checkpoints,
    special_file,
)
from utils.errors import ConfigError
from utils.run_pointer import LATEST_NAME, is_pointer, read_latest

UNREADABLE = (2**62, 0)  # the progress of a file that cannot be read: picked, so that
#                          loading it says what is wrong


def peek(path: Path) -> dict | None:
    """A checkpoint's contents with its tensors left on disk (memory-mapped): for the epoch,
    history and monitor fields. None when it cannot be read."""
    try:
        check_checkpoint_file(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return ckpt if isinstance(ckpt, dict) else None
    except Exception:  # whatever the file holds, the answer is "unreadable"
        return None


def progress(ckpt: dict | None) -> tuple[int, int]:
    """(epochs completed, batches of the next epoch done) of a peeked checkpoint."""
    if not isinstance(ckpt, dict):
        return UNREADABLE
    try:
        partial = ckpt.get("partial_epoch") or {}
        return int(ckpt["epoch"]), int(partial.get("batches_done", 0))
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        return UNREADABLE


def check_best_file(run_dir: Path) -> None:
    """ConfigError when the run folder's model_best.pth is there but not a regular file (a
    link to /dev/zero, a FIFO): it is never read, and never silently passed over."""
    kind = special_file(run_dir / BEST_NAME)
    if kind is not None:
        raise ConfigError(f"{run_dir / BEST_NAME} is {kind}, not a checkpoint: remove it, or "
                          f"give a checkpoint file of the run")


def best_ahead(run_dir: Path) -> bool:
    """Whether model_best.pth got further into training than every other checkpoint of the
    run folder (killed between writing it and the epoch's checkpoint; or a best epoch that
    save_period does not save)."""
    best = run_dir / BEST_NAME
    if special_file(best) is not None or not best.is_file():
        return False
    periodic = epoch_checkpoints(run_dir)
    others = [(periodic[-1][0], 0)] if periodic else []
    if (run_dir / INTERRUPT_NAME).is_file():
        others.append(progress(peek(run_dir / INTERRUPT_NAME)))
    ahead = progress(peek(best))
    return ahead != UNREADABLE and all(ahead > other for other in others)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run folder's checkpoint furthest into training: the last checkpoint-epoch<N>.pth,
    checkpoint-interrupted.pth when it got further (it is taken mid-epoch), or model_best.pth
    when it got further than both."""
    if best_ahead(run_dir):
        return run_dir / BEST_NAME
    periodic = epoch_checkpoints(run_dir)
    interrupted = run_dir / INTERRUPT_NAME
    if interrupted.is_file() and (not periodic or progress(peek(interrupted))
                                  > (periodic[-1][0], 0)):
        return interrupted
    return periodic[-1][1] if periodic else None


def run_dir_of(path: str | Path) -> Path | None:
    """The run folder `-r PATH` names when PATH is a folder or a `latest` pointer."""
    path = Path(path)
    if is_pointer(path):
        return read_latest(path)
    return path if path.is_dir() else None


def resolve_checkpoint_arg(path: str | Path, best: bool = False) -> Path:
    """The checkpoint file `-r PATH` stands for (a file is returned as it is).

    A run folder or a `latest` pointer gives its newest checkpoint, or with `best` (test.py)
    its model_best.pth first. A folder without checkpoints is a ConfigError saying so."""
    path = Path(path)
    run_dir = run_dir_of(path)
    if run_dir is None:
        if path.parent.name == LATEST_NAME and is_pointer(path.parent):  # latest/<file>
            return read_latest(path.parent) / path.name
        return path
    check_best_file(run_dir)
    if best and (run_dir / BEST_NAME).is_file():
        return run_dir / BEST_NAME
    found = newest_checkpoint(run_dir)
    if found is not None:
        return found
    hint = ""
    if (run_dir / LATEST_NAME).is_file():
        hint = f": it holds run folders; give one, or {run_dir / LATEST_NAME} (the newest run)"
    elif any(p.is_dir() for p in run_dir.iterdir()):
        hint = ": give a run folder (saved/models/<name>/<run_id>) or a checkpoint file"
    raise ConfigError(f"{path}: the folder holds no checkpoint (no {BEST_NAME}, "
                      f"checkpoint-epoch<N>.pth or {INTERRUPT_NAME}){hint}")
