"""model_best.pth kept true to the run's history, whatever killed the run and when.

The trainer writes model_best.pth before the epoch's checkpoint (base/base_trainer.py), so a
kill between the two leaves model_best.pth the run's newest checkpoint (utils/checkpoint_arg.py
resumes from it). A run folder written otherwise (by an older version, or by hand) can hold a
model_best.pth older than the epoch its newest checkpoint's history names best: every resume
and every test.py of the run folder repairs it from that epoch's checkpoint-epoch<N>.pth, or
says why it cannot.
"""

from __future__ import annotations

from pathlib import Path

from utils.checkpoint import BEST_NAME, epoch_checkpoint_name, history_rows
from utils.checkpoint_arg import newest_checkpoint, peek, progress
from utils.errors import ConfigError
from utils.files import copy_atomic
from utils.run_lock import holds_lock, lock_run_folder, unlock_run_folder
from utils.schema import parse_monitor


def best_epoch(ckpt: dict | None) -> tuple[int, float] | None:
    """(the epoch the checkpoint's history names best, its monitored value): the first epoch
    that reached `monitor_best`, as the trainer counts an improvement; None when the run
    monitors nothing or the checkpoint does not say."""
    try:
        mode, metric = parse_monitor(ckpt["config"]["trainer"]["monitor"])
        value = float(ckpt["monitor_best"])
        if mode == "off":
            return None
        for row in history_rows(ckpt):
            if row.get(metric) == value:
                return int(row["epoch"]), value
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        pass
    return None


def _holds(ckpt: dict | None, epoch: int, value: float) -> bool:
    """Whether a peeked checkpoint is the end of epoch `epoch` with `value` as its best."""
    return isinstance(ckpt, dict) and progress(ckpt) == (epoch, 0) \
        and ckpt.get("monitor_best") == value


def repair_best(run_dir: Path) -> tuple[Path | None, str | None]:
    """Make the run folder's model_best.pth hold the epoch its newest checkpoint's history
    names best: (the file that holds that epoch, or None when no repair was due; a line to
    log, or None). Copies checkpoint-epoch<B>.pth over it under the folder's lock; when the
    folder is another process's, or cannot be written, that file is used as it is."""
    run_dir = Path(run_dir)
    best = run_dir / BEST_NAME
    newest = newest_checkpoint(run_dir)
    if newest is None or newest == best:
        return None, None
    named = best_epoch(peek(newest))
    if named is None or _holds(peek(best), *named):
        return None, None
    epoch, value = named
    source = run_dir / epoch_checkpoint_name(epoch)
    stale = f"{best} is not epoch {epoch}, the best one {newest.name}'s history names"
    if not _holds(peek(source), epoch, value):
        return None, (f"warning: {stale}, and {source.name} is gone (trainer.keep_last "
                      f"removes old checkpoints): {best.name} is left as it is")
    took = not holds_lock(run_dir)
    try:
        lock_run_folder(run_dir)
    except (ConfigError, OSError) as e:
        return source, f"warning: {stale}; not repaired ({e}): using {source}"
    try:
        copy_atomic(source, best)
    except OSError as e:
        return source, f"warning: {stale}; cannot repair it ({e.strerror or e}): using {source}"
    finally:
        if took:
            unlock_run_folder(run_dir)
    return best, f"warning: {stale}: repaired it, a copy of {source.name}"
