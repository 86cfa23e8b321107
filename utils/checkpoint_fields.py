"""What each key of a checkpoint must hold: a hand-edited file (epoch a string, the optimizer
state a list) is refused when loaded, naming the key, instead of failing deep inside a
resume. Only the shapes of the values are checked; their contents are the trainer's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from utils.errors import ConfigError


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _tensors(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                       for k, t in v.items())


def _optimizer(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("state"), dict) and \
        isinstance(v.get("param_groups"), list) and \
        all(isinstance(g, dict) and isinstance(g.get("params"), list)
            for g in v["param_groups"])


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, kind)


# key: (check, what it must be); the first five are required (utils/checkpoint.REQUIRED_KEYS)
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epoch": (_int, "an integer >= 0"),
    "model_state_dict": (_tensors, "a mapping of parameter names to tensors"),
    "optimizer_state_dict": (_optimizer, "an optimizer state_dict (a mapping with 'state' "
                                         "and a list 'param_groups')"),
    "config": (_is(dict), "a mapping (the run's config)"),
    "arch": (_is(str), "the model's type name"),
    "loss": (_number, "a number"),
    "monitor_best": (_number, "a number"),
    "early_stop_count": (_int, "an integer >= 0"),
    "global_step": (_int, "an integer >= 0"),
    "history": (lambda v: isinstance(v, str | list), "a JSON string of the epochs' rows"),
    "partial_epoch": (_optional(lambda v: isinstance(v, dict) and _int(v.get("epoch")) and
                                _int(v.get("batches_done"))),
                      "null or a mapping with the integers 'epoch' and 'batches_done'"),
    "lr_scheduler_state_dict": (_optional(_is(dict)), "null or a mapping"),
    "grad_scaler_state_dict": (_optional(_is(dict)), "null or a mapping"),
    "rng_state": (_optional(_is(dict)), "null or a mapping of generator states"),
    "data_order": (_optional(_is(dict)), "null or a mapping"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def check_fields(ckpt: dict, path: Any) -> None:
    """ConfigError naming the first key whose value has the wrong type."""
    for key, (check, what) in FIELDS.items():
        if key in ckpt and not check(ckpt[key]):
            raise ConfigError(f"{path}: the checkpoint's '{key}' holds {_shown(ckpt[key])}, "
                              f"expected {what}; the file was changed after this project "
                              f"wrote it")
