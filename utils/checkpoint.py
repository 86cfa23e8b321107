"""Checkpoint files: atomic writes, safe loads, and the random generator states.

A checkpoint holds plain data only (tensors, dicts, lists, strings, numbers),
so it loads with torch.load(weights_only=True) and a crafted file cannot run
code. Writes go to a temporary file in the same folder, are fsync'ed, then
renamed over the target: a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.checkpoint_fields import check_fields
from utils.errors import ConfigError, RunError
from utils.files import write_atomic

REQUIRED_KEYS = ("epoch", "model_state_dict", "optimizer_state_dict", "config", "arch")
BEST_NAME = "model_best.pth"
INTERRUPT_NAME = "checkpoint-interrupted.pth"
NOT_OURS = "not a checkpoint this project wrote"
_EPOCH_NAME = re.compile(r"checkpoint-epoch(\d+)\.pth")
MAX_EXPANSION = 10  # a checkpoint's entries may claim at most this times its size uncompressed
_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


# ---------------------------------------------------------------- names in a run folder

def epoch_checkpoint_name(epoch: int) -> str:
    return f"checkpoint-epoch{epoch}.pth"


def epoch_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run folder's checkpoint-epoch<N>.pth files as (N, path), oldest first."""
    found = []
    for p in Path(run_dir).glob("checkpoint-epoch*.pth"):
        m = _EPOCH_NAME.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_epoch_checkpoint(run_dir: Path) -> Path | None:
    found = epoch_checkpoints(run_dir)
    return found[-1][1] if found else None


# ---------------------------------------------------------------- writing and reading


def serialize(obj: Any) -> memoryview:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer()


def save_atomic(obj: Any, *paths: str | Path) -> None:
    """torch.save `obj` to each path, serialized once, so that readers see the old file or
    the whole new one. Every path gets a file of its own (never a second name for another
    file's bytes: writing over model_best.pth in place must not touch an epoch checkpoint).
    A failure to write is a RunError naming the file and the cause."""
    data = serialize(obj)
    for path in paths:
        try:
            write_atomic(data, Path(path))
        except OSError as e:  # disk full, permission denied, ...: the old file is intact
            raise RunError(f"cannot write the checkpoint {path}: {e.strerror or e} (the "
                           f"checkpoints saved before it are intact)") from None


def special_file(path: Path) -> str | None:
    """What `path` is when it exists but is neither a regular file nor a folder ('a FIFO
    (named pipe)', 'a link to /dev/zero, a character device'); None otherwise. Nothing is
    opened, so a FIFO never blocks."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # missing, or a link to nothing
    if mode is not None and (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return None
    kind = None if mode is None else next(
        (name for is_kind, name in _SPECIAL_KINDS if is_kind(mode)), "not a regular file")
    if not os.path.islink(path):
        return kind
    return f"a link to {os.readlink(path)}, " + (kind or "which does not exist")


def check_checkpoint_file(path: Path) -> None:
    """ConfigError unless `path` is a regular file whose zip entries (torch.save writes a zip
    and stores its entries uncompressed) claim at most MAX_EXPANSION times its size: checked
    on the zip's central directory, before anything is decompressed or loaded."""
    if path.is_dir():
        inside = path / BEST_NAME if (path / BEST_NAME).is_file() else latest_epoch_checkpoint(path)
        hint = f"give a checkpoint file, e.g. {inside}" if inside else "it holds no checkpoint"
        raise ConfigError(f"{path} is a folder, not a checkpoint: {hint}")
    kind = special_file(path)
    if kind is not None:
        raise ConfigError(f"{path} is {kind}, not a regular file: give a checkpoint file")
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip: torch.load says what it is (and it holds nothing compressed)
    if claimed > MAX_EXPANSION * max(size, 1):
        raise ConfigError(f"{path}: {NOT_OURS}: refused to load it, as its entries claim "
                          f"{claimed:,} bytes uncompressed, more than {MAX_EXPANSION}x the "
                          f"file's {size:,} bytes (torch.save stores them uncompressed)")


def load_plain_data(path: Path, map_location: Any, refused: str, unreadable: str) -> Any:
    """torch.load with weights_only: tensors, mappings, lists and numbers, never code.
    ConfigError(`refused`) for a file holding anything more (torch's own message suggests
    weights_only=False, which would run the file's code), ConfigError(`unreadable`) for one
    torch.save did not write, or that is truncated or corrupted."""
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for users
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(refused) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError, UnicodeDecodeError):
        raise ConfigError(unreadable) from None


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by this project, or raise ConfigError saying why not."""
    path = Path(path)
    check_checkpoint_file(path)
    ckpt = load_plain_data(
        path, map_location,
        refused=f"{path}: {NOT_OURS}: refused to load it, as it is not only the plain data "
                f"(tensors, dicts, lists, numbers) this project's checkpoints hold, and "
                f"loading anything more could run code",
        unreadable=f"{path}: {NOT_OURS} (not a file written by torch.save, or truncated or "
                   f"corrupted)")
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path}: {NOT_OURS} (it holds a {type(ckpt).__name__}, not a "
                          f"mapping of the keys {', '.join(REQUIRED_KEYS)})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: {NOT_OURS} (it lacks the key"
                          f"{'s' * (len(missing) > 1)} {', '.join(missing)}; a checkpoint "
                          f"holds {', '.join(REQUIRED_KEYS)})")
    check_fields(ckpt, path)
    return ckpt


def history_rows(ckpt: dict) -> list[dict]:
    """The checkpoint's per-epoch rows (stored as one JSON string, a list of dicts)."""
    history = ckpt.get("history") or "[]"
    return json.loads(history) if isinstance(history, str) else [dict(r) for r in history]


# ---------------------------------------------------------------- random states

def capture_rng_state() -> dict:
    """Python, numpy and torch (and CUDA) generator states as plain data."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def seed_everything(seed: int) -> None:
    """One seed drives python's random, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
