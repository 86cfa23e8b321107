"""Class weights of the loss: `loss.args.weight: auto` or a list, one number per class.

`auto` is the inverse class frequency of the training split, normalised so that
the mean weight over the training samples is 1:

    weight[c] = n_train / (n_classes * count[c])

(scikit-learn's `compute_class_weight("balanced")`). It is computed once, when
the run is built, and the list is what config.json and the checkpoints hold, so
test.py rebuilds the same loss without counting anything.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch

from utils.errors import ConfigError
from utils.schema import expect, is_number

AUTO = "auto"
KEY = "loss.args.weight"


def validate_weight(args: dict) -> None:
    """`weight` absent, null, 'auto' or a non-empty list of numbers >= 0."""
    weight = args.get("weight")
    if weight is None or weight == AUTO:
        return
    expect(isinstance(weight, list) and len(weight) > 0
           and all(is_number(w) and w >= 0 for w in weight), KEY,
           "'auto' or a list of numbers >= 0, one per class", weight)


def balanced_weights(counts: torch.Tensor) -> list[float]:
    """n / (k * count[c]) for the k classes with `counts` training samples each."""
    if bool((counts == 0).any()):
        missing = ", ".join(str(c) for c in (counts == 0).nonzero().flatten().tolist())
        raise ConfigError(f"{KEY}: auto: class {missing} has no training samples, so its "
                          f"inverse frequency is infinite; give the weights as a list")
    counts = counts.double()
    return (counts.sum() / (len(counts) * counts)).tolist()


def resolved_loss(spec: Any, loader: Any) -> Any:
    """The `loss` section with `weight: auto` computed from `loader`'s training split, and a
    weight list checked against its number of classes."""
    if not isinstance(spec, dict) or (spec.get("args") or {}).get("weight") is None:
        return spec
    counts_of = getattr(loader, "class_counts", None)
    counts = counts_of() if callable(counts_of) else None
    spec = copy.deepcopy(spec)
    weight = spec["args"]["weight"]
    if weight == AUTO:
        if counts is None:
            raise ConfigError(f"{KEY}: auto needs class labels, and {type(loader).__name__} "
                              f"gives none (a regression or custom data set); give a list")
        spec["args"]["weight"] = balanced_weights(counts)
    elif counts is not None and len(weight) != len(counts):
        raise ConfigError(f"{KEY}: {len(weight)} weights for the {len(counts)} classes of "
                          f"the data; give one per class")
    return spec


def criterion_args(args: dict) -> dict:
    """The loss arguments as the loss takes them: a weight list becomes a float32 tensor."""
    if isinstance(args.get("weight"), list):
        return {**args, "weight": torch.tensor(args["weight"], dtype=torch.float32)}
    return args


def criterion_to(criterion: Any, device: torch.device) -> Any:
    """The criterion with its tensors (a class weight) on `device`."""
    if isinstance(criterion, torch.nn.Module):
        return criterion.to(device)
    if isinstance(criterion, functools.partial) and any(
            isinstance(v, torch.Tensor) for v in criterion.keywords.values()):
        keywords = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                    for k, v in criterion.keywords.items()}
        return functools.partial(criterion.func, *criterion.args, **keywords)
    return criterion
