"""Fine-tuning (`-c NEW -r CKPT`): keep the optimizer state only where the parameters still fit."""

from __future__ import annotations

from typing import Any

import torch


def optimizer_state_for_finetune(state: dict, model: torch.nn.Module,
                                 optimizer: torch.optim.Optimizer, logger: Any) -> dict | None:
    """The checkpoint's optimizer state without the entries of parameters whose shape
    changed (a new head or width); None, with a warning, when the parameters no longer
    line up one to one. The optimizer lists parameters in the model's order."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_old = sum(len(g["params"]) for g in state["param_groups"])
    if n_old != len(params) or len(state["param_groups"]) != len(optimizer.param_groups):
        logger.warning(f"warning: optimizer state not restored: the checkpoint's "
                       f"optimizer held {n_old} parameters, this model trains {len(params)}")
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
