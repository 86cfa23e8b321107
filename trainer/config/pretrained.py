"""`arch.pretrained`: start a new run's model from a weights file (docs/transfer.md).

    arch:
      type: ResNet
      args: {...}
      pretrained: {path: weights.pth, strict: false, skip: ["fc.*"], prefix_map: {"backbone.": ""}}

The file is a plain state_dict (torch.save of a mapping of names to tensors, loaded
with weights_only=True), a `.safetensors` file (extra: safetensors), or a checkpoint
of this project (its model_state_dict, with utils/checkpoint.py's checks: size, plain
data, field shapes). Nothing is downloaded. Each name of the file is first renamed by
the first `prefix_map` entry whose prefix it starts with; names matching a `skip` glob
pattern (after renaming) are not loaded. A tensor whose shape differs from the
model's is an error (naming it and both shapes); with `strict` so is a tensor the
model lacks and a model tensor the file lacks. The model's input standardization
(input_mean, input_std) always comes from this run's training data. The log lists
what was loaded, skipped and left at its initialization. Only a new run loads it: on
-r the checkpoint's weights are the model's. `path` may also name a run folder or an
experiment's `latest` pointer (saved/models/<name>/latest): its model_best.pth.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch

from logger.logger import get_logger
from utils.checkpoint import (
    REQUIRED_KEYS,
    check_checkpoint_file,
    load_plain_data,
    special_file,
)
from utils.checkpoint_arg import resolve_checkpoint_arg
from utils.checkpoint_fields import check_fields
from utils.errors import ConfigError, check_keys
from utils.schema import expect

KEY = "arch.pretrained"
PRETRAINED_KEYS = ("path", "strict", "skip", "prefix_map")
DEFAULTS = {"strict": False, "skip": [], "prefix_map": {}}
OWN_STATISTICS = ("input_mean", "input_std")  # BaseModel's standardization: this run's data
SCHEMA = {  # arch.pretrained in the JSON schema (trainer/config/json_schema.py)
    "type": ["object", "null"], "required": ["path"], "additionalProperties": False,
    "description": "start a new run from a weights file: a state_dict, .safetensors or a "
                   "checkpoint (docs/transfer.md)",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "the weights file"},
        "strict": {"type": "boolean", "default": False,
                   "description": "every tensor of the file and the model must match"},
        "skip": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": [],
                 "description": "glob patterns of names not loaded, e.g. fc.*"},
        "prefix_map": {"type": "object", "additionalProperties": {"type": "string"},
                       "default": {}, "description": "file name prefix -> model name prefix"},
    },
}


def validate_pretrained(value: Any) -> dict | None:
    """The resolved `arch.pretrained` (defaults filled in), None when absent; a
    ConfigError naming the key for anything malformed."""
    if value is None:
        return None
    expect(isinstance(value, dict), KEY, "a mapping {path: FILE, strict, skip, prefix_map}",
           value)
    check_keys(value, PRETRAINED_KEYS, KEY)
    if "path" not in value:
        raise ConfigError(f"{KEY}.path: required key is missing (the weights file)")
    resolved = {**DEFAULTS, **value}
    expect(isinstance(resolved["path"], str) and resolved["path"].strip() != "",
           f"{KEY}.path", "the path of a weights file", resolved["path"])
    expect(isinstance(resolved["strict"], bool), f"{KEY}.strict", "true or false",
           resolved["strict"])
    skip = resolved["skip"]
    expect(isinstance(skip, list) and all(isinstance(s, str) and s for s in skip),
           f"{KEY}.skip", "a list of glob patterns over parameter names", skip)
    pmap = resolved["prefix_map"]
    expect(isinstance(pmap, dict) and all(isinstance(k, str) and k and isinstance(v, str)
                                          for k, v in pmap.items()),
           f"{KEY}.prefix_map", "a mapping of name prefixes in the file to prefixes in the "
           "model", pmap)
    return resolved


# ---------------------------------------------------------------- reading the file

def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in value.items())


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ConfigError(f"{KEY}.path: {path} is a .safetensors file; reading it needs the "
                          f"safetensors package: pip install safetensors") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ConfigError(f"{KEY}.path: {path} is not a readable safetensors file "
                          f"({' '.join(str(e).split())[:200]})") from None


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    try:
        check_checkpoint_file(path)  # a folder, a special file, a size bomb: refused unread
    except ConfigError as e:
        raise ConfigError(f"{KEY}.path: {e}") from None
    data = load_plain_data(
        path, "cpu",
        refused=f"{KEY}.path: {path}: refused to load it: it is not a torch.save file of plain "
                f"data only (tensors, mappings, lists, numbers), and loading anything more "
                f"could run code",
        unreadable=f"{KEY}.path: {path} is not a file written by torch.save (or it is "
                   f"truncated or corrupted)")
    if isinstance(data, dict) and "model_state_dict" in data:  # one of our checkpoints
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ConfigError(f"{KEY}.path: {path} looks like a checkpoint but lacks "
                              f"{', '.join(missing)}")
        check_fields(data, path)
        return data["model_state_dict"], f"a checkpoint of {data['arch']}, epoch {data['epoch']}"
    if isinstance(data, dict) and _is_state_dict(data.get("state_dict")):
        return data["state_dict"], "its state_dict entry"
    if not _is_state_dict(data):
        raise ConfigError(f"{KEY}.path: {path} holds neither a state_dict (a mapping of "
                          f"parameter names to tensors) nor a checkpoint of this project")
    return data, "a state_dict"


def read_weights(path: str | Path) -> tuple[Path, dict[str, torch.Tensor], str]:
    """The file `path` names (a run folder or a `latest` pointer: its model_best.pth, as for
    test.py -r), its tensors by name, and what it was (for the log)."""
    try:
        path = resolve_checkpoint_arg(path, best=True)
    except ConfigError as e:
        raise ConfigError(f"{KEY}.path: {e}") from None
    kind = special_file(path)
    if kind is not None:
        raise ConfigError(f"{KEY}.path: {path} is {kind}, not a weights file")
    if not path.exists():
        raise ConfigError(f"{KEY}.path: weights file not found: {path}")
    if path.suffix == ".safetensors":
        if path.is_dir():
            raise ConfigError(f"{KEY}.path: {path} is a folder, not a weights file")
        return path, _read_safetensors(path), "a safetensors file"
    return (path, *_read_torch(path))


# ---------------------------------------------------------------- matching and loading

def _renamed(name: str, prefix_map: dict[str, str]) -> str:
    for old, new in prefix_map.items():
        if name.startswith(old):
            return new + name[len(old):]
    return name


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def load_pretrained(model: torch.nn.Module, spec: dict, arch: str) -> list[str]:
    """Load `spec`'s file into `model` (in place); log, and return as lines, the names
    loaded, skipped (file names after renaming), left at their initialization and ignored
    (in the file, not the model). ConfigError when the weights do not fit."""
    path, state, what = read_weights(spec["path"])
    skip = spec["skip"]
    renamed: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        new = _renamed(name, spec["prefix_map"])
        if new in renamed:
            raise ConfigError(f"{KEY}.prefix_map: two tensors of {path} become {new}")
        renamed[new] = tensor
    skipped = [n for n in renamed if any(fnmatchcase(n, p) for p in skip)]
    own = model.state_dict()
    wanted = [n for n in own if n not in OWN_STATISTICS and not any(fnmatchcase(n, p)
                                                                    for p in skip)]
    fits = f"{KEY}: the weights of {path} do not fit the model {arch}"
    for name in wanted:
        if name in renamed and renamed[name].shape != own[name].shape:
            raise ConfigError(f"{fits}: {name} is {list(renamed[name].shape)} in the file and "
                              f"{list(own[name].shape)} in the model (leave it out with "
                              f"{KEY}.skip)")
    loaded = [n for n in wanted if n in renamed]
    ignored = [n for n in renamed if n not in own and n not in skipped]
    missing = [n for n in wanted if n not in renamed]
    if spec["strict"] and (ignored or missing):
        first = f"the file has {ignored[0]}, which the model lacks" if ignored else \
            f"the model's {missing[0]} is missing from the file"
        raise ConfigError(f"{fits} (strict): {first}")
    if not loaded:
        raise ConfigError(f"{fits}: no tensor of the file matches one of the model's (the "
                          f"file has {next(iter(renamed), 'nothing')}, the model "
                          f"{next(iter(own), 'nothing')}; {KEY}.prefix_map renames prefixes)")
    model.load_state_dict({n: renamed[n] for n in loaded}, strict=False)
    left = [n for n in own if n not in loaded and n not in OWN_STATISTICS]
    lines = [f"pretrained: loaded {len(loaded)} tensors from {path} ({what}): "
             f"{_names(loaded)}",
             f"pretrained: skipped ({KEY}.skip): {_names(skipped)}",
             f"pretrained: left at their initialization: {_names(left)}"]
    if ignored:
        lines.append(f"pretrained: in the file but not in the model (ignored): "
                     f"{_names(ignored)}")
    for line in lines:
        get_logger("pretrained").info(line)
    return lines
