"""What `-r PATH` names: a checkpoint file, a run folder, or an experiment's `latest` pointer.

    train.py -r RUN_DIR_OR_LATEST   resumes the run's newest checkpoint (by training
                                    progress, a mid-epoch interrupt checkpoint included)
    test.py  -r RUN_DIR_OR_LATEST   evaluates the run's model_best.pth (else its newest
                                    checkpoint, when the run monitored nothing)
"""

from __future__ import annotations

from pathlib import Path

import torch

from utils.checkpoint import BEST_NAME, INTERRUPT_NAME, epoch_checkpoints
from utils.errors import ConfigError
from utils.run_pointer import LATEST_NAME, is_pointer, read_latest


def _progress(path: Path) -> tuple[int, int]:
    """(epochs completed, batches of the next epoch done) of an interrupt checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        partial = ckpt.get("partial_epoch") or {}
        return int(ckpt["epoch"]), int(partial.get("batches_done", 0))
    except Exception:  # unreadable: pick it, so that loading it says what is wrong
        return 2**62, 0


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run folder's checkpoint furthest into training: the last checkpoint-epoch<N>.pth,
    or checkpoint-interrupted.pth when it got further (it is taken mid-epoch)."""
    periodic = epoch_checkpoints(run_dir)
    interrupted = run_dir / INTERRUPT_NAME
    if interrupted.is_file() and (not periodic or _progress(interrupted) > (periodic[-1][0], 0)):
        return interrupted
    return periodic[-1][1] if periodic else None


def resolve_checkpoint_arg(path: str | Path, best: bool = False) -> Path:
    """The checkpoint file `-r PATH` stands for (a file is returned as it is).

    A run folder or a `latest` pointer gives its newest checkpoint, or with `best` (test.py)
    its model_best.pth first. A folder without checkpoints is a ConfigError saying so."""
    path = Path(path)
    if is_pointer(path):
        run_dir = read_latest(path)
    elif path.is_dir():
        run_dir = path
    elif path.parent.name == LATEST_NAME and is_pointer(path.parent):  # latest/<file>
        return read_latest(path.parent) / path.name
    else:
        return path
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
