"""Checks of an exact resume (-r) made up front, before anything is written:

- a mid-epoch checkpoint needs the data order it was taken in (utils/data_order.py);
- the run's config.json must not have been edited since the run wrote it: -r resumes with
  the checkpoint's config and would write over the edit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from logger.logger import get_logger
from trainer.config.parse_config import ConfigParser
from trainer.run.run_folder import resumable_run_dir
from utils import dist
from utils.data_order import check_resume_order, data_order
from utils.errors import ConfigError

_MISSING = object()


def check_resume(config: ConfigParser, data_loader: Any) -> None:
    """ConfigError when resuming `config.checkpoint` as asked would go wrong; a warning
    when an epoch checkpoint resumes in another data order."""
    if config.checkpoint is None or config.finetune:
        return
    current = data_order(data_loader, config["seed"], config.trainer["accumulate_steps"],
                         dist.get_world_size(), config.trainer["len_epoch"])
    changes = check_resume_order(config.checkpoint, current, str(config.resume))
    if changes:
        get_logger().warning(f"warning: the data order changes from epoch "
                             f"{config.checkpoint['epoch'] + 1} on: {'; '.join(changes)}")
    if dist.is_main():
        check_config_json(config)


def flat_keys(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a.b.c': leaf} of a nested mapping (lists are leaves)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, sub in value.items():
        out.update(flat_keys(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def differing_keys(a: dict, b: dict) -> list[str]:
    fa, fb = flat_keys(a), flat_keys(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, _MISSING) != fb.get(k, _MISSING))


def check_config_json(config: ConfigParser) -> None:
    """ConfigError when the run folder -r goes on in holds a config.json that is neither the
    checkpoint's config nor the one this resume writes (so a user edited it)."""
    run_dir = resumable_run_dir(config)
    path = run_dir / "config.json" if run_dir is not None else None
    if path is None or not path.is_file():
        return
    stored = config.checkpoint["config"]
    try:
        on_disk = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        on_disk = None
    if on_disk in (stored, config.config):
        return
    keys = differing_keys(on_disk, stored) if isinstance(on_disk, dict) else []
    what = f"the keys that differ: {', '.join(keys)}" if keys else "it is no longer valid JSON"
    if config.allow_changed:
        get_logger().warning(f"warning: --allow-changed: {path} differs from the checkpoint's "
                             f"config ({what}); it is rewritten with this run's config")
        return
    raise ConfigError(f"{path} was edited since the run wrote it ({what}); -r resumes with the "
                      f"checkpoint's config and would overwrite the edit: to train with the "
                      f"edited config, fine-tune with -c {path} -r {config.resume}, or restore "
                      f"the file, or add --allow-changed to resume with the edited file")


def check_weights_fit(config: ConfigParser, model: torch.nn.Module) -> None:
    """ConfigError when an exact resume's weights do not fit the model its config builds
    (an override such as arch.args.hidden=64 changed it), naming the parameter and both
    shapes; fine-tuning (-c with -r) is the way to start another model from them."""
    if config.checkpoint is None or config.finetune:
        return
    own, stored = model.state_dict(), config.checkpoint["model_state_dict"]
    hint = (f"; -r resumes the same model: to start a changed model from these weights, "
            f"fine-tune with -c CONFIG -r {config.resume}")
    for key, tensor in own.items():
        if key in stored and stored[key].shape != tensor.shape:
            raise ConfigError(f"{config.resume}: the checkpoint's weights do not fit the model "
                              f"of this config: {key} is {list(stored[key].shape)} in the "
                              f"checkpoint and {list(tensor.shape)} in the model{hint}")
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or unexpected:
        what = "; ".join(part for part in (
            f"the model has {', '.join(missing[:5])} that the checkpoint lacks" if missing else "",
            f"the checkpoint has {', '.join(unexpected[:5])} that the model lacks"
            if unexpected else "") if part)
        raise ConfigError(f"{config.resume}: the checkpoint's weights do not fit the model "
                          f"of this config: {what}{hint}")


def check_groups_fit(config: ConfigParser, optimizer: torch.optim.Optimizer) -> None:
    """ConfigError when an exact resume's optimizer state does not fit the parameter groups
    its config builds (an override of optimizer.param_groups or no_decay changed them)."""
    if config.checkpoint is None or config.finetune or \
            config.checkpoint["config"]["optimizer"]["type"] != config["optimizer"]["type"]:
        return
    state = config.checkpoint["optimizer_state_dict"]
    stored = [len(g["params"]) for g in state["param_groups"]]
    built = [len(g["params"]) for g in optimizer.param_groups]
    if stored != built:
        raise ConfigError(f"{config.resume}: the checkpoint's optimizer state does not fit the "
                          f"parameter groups of this config: {stored} parameters per group in "
                          f"the checkpoint, {built} here (optimizer.param_groups, no_decay); "
                          f"to change them, fine-tune with -c CONFIG -r {config.resume}")
