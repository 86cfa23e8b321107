"""Up-front checks of a config that touch the machine rather than the schema: the save_dir
and the run name as file system paths, tuple-shaped optimizer arguments, and a model too
large to allocate. Each raises ConfigError naming the key (docs/errors.md)."""

from __future__ import annotations

import inspect
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.errors import ConfigError
from utils.schema import is_number

DEFAULT_NAME_MAX = 255  # bytes in one file name, where the file system does not say


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system holding `folder` allows."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def existing_ancestor(path: Path) -> Path | None:
    """The path itself or its nearest parent that exists (a name too long does not)."""
    return next((p for p in [path, *path.parents] if _exists(p)), None)


def _exists(path: Path) -> bool:
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False


def check_save_dir(save_dir: str) -> None:
    """ConfigError when save_dir cannot hold run folders: a NUL byte, a name longer than the
    file system allows, a file where a folder should be, or a folder this user cannot write."""
    if "\0" in save_dir:
        raise ConfigError("trainer.save_dir: the path contains a NUL byte")
    path = Path(save_dir)
    folder = existing_ancestor(path.absolute())
    limit = name_max(folder) if folder is not None else DEFAULT_NAME_MAX
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise ConfigError(f"trainer.save_dir: the name '{part[:40]}...' is "
                              f"{len(os.fsencode(part))} bytes long; the file system allows "
                              f"{limit}")
    if folder is None:
        return
    if not folder.is_dir():
        raise ConfigError(f"trainer.save_dir: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only(folder) else "no write permission"
        raise ConfigError(f"trainer.save_dir: cannot create folders in {folder} ({why})")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_name(name: str, save_dir: str) -> None:
    """The run name becomes a folder name: no NUL byte, within the file system's limit."""
    if "\0" in name:
        raise ConfigError("name: contains a NUL byte; a folder name cannot")
    folder = existing_ancestor(Path(save_dir).absolute()) if "\0" not in save_dir else None
    limit = name_max(folder) if folder is not None else DEFAULT_NAME_MAX
    size = len(os.fsencode(name))
    if size > limit:
        raise ConfigError(f"name: {size} bytes long; it names a folder and the file system "
                          f"allows {limit} bytes")


def check_tuple_args(cls: Any, args: dict, where: str) -> None:
    """An argument whose default is a tuple of numbers (Adam's betas) must be a list of as
    many numbers: torch would fail later with an IndexError."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    for key, value in args.items():
        default = params[key].default if key in params else None
        if not isinstance(default, tuple) or not all(map(is_number, default)):
            continue
        if not isinstance(value, list | tuple) or len(value) != len(default) or \
                not all(map(is_number, value)):
            raise ConfigError(f"{where}.{key}: expected a list of {len(default)} numbers like "
                              f"the default {list(default)}, got {value!r}")


# ---------------------------------------------------------------- model size

def physical_memory() -> int | None:
    """Bytes of memory of this machine, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def _gib(n: float) -> str:
    """'23.5 GiB', '3.5 EiB': bytes in binary units."""
    for unit in ("GiB", "TiB", "PiB"):
        n /= 1024 if unit != "GiB" else 2**30
        if n < 1024:
            return f"{n:,.1f} {unit}"
    return f"{n / 1024:,.1f} EiB"


def meta_size(fn: Any, args: dict) -> tuple[int, int] | None:
    """(elements, bytes) of the parameters and buffers of fn(**args), built on the meta
    device (no memory, random generators left as they were); None when it cannot be built
    there."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        with torch.device("meta"):
            model = fn(**args)
        tensors = [*model.parameters(), *model.buffers()]
        return (sum(t.numel() for t in tensors),
                sum(t.numel() * t.element_size() for t in tensors))
    except Exception:  # the real build reports what is wrong
        return None
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def build_sized_model(fn: Any, args: dict, arch: str) -> torch.nn.Module:
    """fn(**args), refused up front when its parameters alone exceed this machine's memory;
    an allocation failure while building is a ConfigError that says how much was asked."""
    size = meta_size(fn, args)
    memory = physical_memory()
    asked = f"{size[0]:,} parameters and buffers ({_gib(size[1])})" if size else \
        "more memory than there is"
    if size is not None and memory is not None and size[1] > memory:
        raise ConfigError(f"arch.args: the model {arch} asks for {asked}, more than this "
                          f"machine's {_gib(memory)} of memory; make it smaller")
    try:
        return fn(**args)
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "alloc" not in str(e) and \
                "overflow" not in str(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"arch.args: the model {arch} asks for {asked} and allocating it "
                          f"failed ({first}); make it smaller") from None
