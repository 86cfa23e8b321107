"""Fine-tuning (`-c NEW -r CKPT`) and resume: the checkpoint's weights where they fit, its
optimizer state where the parameters (and their groups) still fit."""

from __future__ import annotations

from typing import Any

import torch

from utils.errors import ConfigError


def optimizer_state_for_finetune(state: dict, model: torch.nn.Module,
                                 optimizer: torch.optim.Optimizer, logger: Any) -> dict | None:
    """The checkpoint's optimizer state without the entries of parameters whose shape
    changed (a new head or width); None, with a warning, when the parameters no longer
    line up one to one (group by group, in the optimizer's order)."""
    names = {id(p): n for n, p in model.named_parameters()}
    # in the optimizer's order (its groups: utils/param_groups.py)
    params = [(names.get(id(p), "?"), p) for g in optimizer.param_groups for p in g["params"]]
    n_old = sum(len(g["params"]) for g in state["param_groups"])
    old_sizes = [len(g["params"]) for g in state["param_groups"]]
    new_sizes = [len(g["params"]) for g in optimizer.param_groups]
    if n_old != len(params):
        logger.warning(f"warning: optimizer state not restored: the checkpoint's "
                       f"optimizer held {n_old} parameters, this model trains {len(params)}")
        return None
    if old_sizes != new_sizes:
        logger.warning(f"warning: optimizer state not restored: the checkpoint's parameter "
                       f"groups hold {old_sizes} parameters, this config's {new_sizes} "
                       f"(optimizer.param_groups, no_decay)")
        return None
    order = [i for g in state["param_groups"] for i in g["params"]]
    kept, dropped = dict(state["state"]), []
    for index, (name, param) in zip(order, params):
        entry = kept.get(index, {})
        if any(isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != param.shape
               for v in entry.values()):
            del kept[index]
            dropped.append(name)
    if dropped:
        logger.warning(f"warning: optimizer state dropped for {', '.join(dropped)} "
                       f"(their shapes changed); it starts fresh for them")
    return {**state, "state": kept}


def load_weights_for_finetune(model: torch.nn.Module, ckpt: dict, config: Any,
                              logger: Any) -> None:
    """The checkpoint's weights whose names and shapes match the model's; a warning names
    the others (a new head, a changed arch)."""
    own = model.state_dict()
    loaded = {k: v for k, v in ckpt["model_state_dict"].items()
              if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(loaded))
    if ckpt["config"].get("arch") != config["arch"]:
        logger.warning("warning: the checkpoint's arch differs from the config's; "
                       "loading the weights whose names and shapes match")
    if skipped:
        logger.warning(f"warning: not restored from the checkpoint: {', '.join(skipped)}")
    model.load_state_dict(loaded, strict=False)


def restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: dict, config: Any,
                      model: torch.nn.Module, finetune: bool, logger: Any) -> None:
    """The checkpoint's optimizer state (when its type is unchanged), then the config's
    hyperparameters over it, group by group, when they differ (fine-tune, or overrides):
    each group gets the arguments the config gives it (optimizer.args, its param_groups
    entry, weight_decay 0 for no_decay)."""
    old, new = ckpt["config"]["optimizer"], config["optimizer"]
    if old["type"] != new["type"]:
        logger.warning("warning: optimizer type changed; its state starts fresh")
        return
    configured = [{k: v for k, v in g.items() if k not in ("params", "initial_lr")}
                  | {"lr": g.get("initial_lr", g["lr"])} for g in optimizer.param_groups]
    state = ckpt["optimizer_state_dict"]
    if finetune:
        state = optimizer_state_for_finetune(state, model, optimizer, logger)
    try:
        if state is not None:
            optimizer.load_state_dict(state)
    except (ValueError, KeyError) as e:
        if not finetune:
            raise ConfigError(f"cannot restore the optimizer state: {e}") from None
        logger.warning(f"warning: optimizer state not restored ({e})")
    keys = ("args", "param_groups", "no_decay")
    if finetune or any((old.get(k) or None) != (new.get(k) or None) for k in keys):
        for group, args in zip(optimizer.param_groups, configured):
            group.update(args)
            group["initial_lr"] = group["lr"]
