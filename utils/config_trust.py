"""Which types of a config read back from a file the command line set (utils/registry.py Trust).

`train.py -r CHECKPOINT OVERRIDES...` builds from the checkpoint's config: data. A
type an override sets (`arch.type=mypkg.Net`, `loss={type: ...}`) is the user's:
the stored types are marked, the overrides applied, and every place still holding
a mark is data.
"""

from __future__ import annotations

import copy
from typing import Any

from utils.config_io import apply_overrides
from utils.errors import ConfigError
from utils.registry import Trust, type_path

_STORED = "\x00a type read from a file\x00"  # marks the stored types while overrides apply


def _type_slots(config: dict) -> list[tuple[Any, Any]]:
    """(container, key) of every component type in `config`: each `type` of a mapping, at any
    depth, and the names of `loss`, `metrics` and `callbacks` given as plain strings (walked
    without recursion: a stored config may be deep)."""
    slots: list[tuple[Any, Any]] = []
    if isinstance(config.get("loss"), str):
        slots.append((config, "loss"))
    for key in ("metrics", "callbacks"):
        if isinstance(config.get(key), list):
            slots += [(config[key], i) for i, m in enumerate(config[key]) if isinstance(m, str)]
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, value in items:
            if key == "type" and isinstance(node, dict):
                slots.append((node, key))
            elif isinstance(value, dict | list):
                stack.append(value)
    return slots


def _marked_paths(config: Any) -> set[str]:
    """The places (`arch`, `loss`, `lr_scheduler.args.schedulers[0]`) whose value still holds
    the mark: types the overrides left as stored."""
    found, stack = set(), [("", config)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack += [(f"{path}[{k}]" if isinstance(node, list) else
                       f"{path}.{k}" if path else str(k), v) for k, v in items]
        elif isinstance(node, str) and _STORED in node:
            found.add(type_path(path))
    return found


def stored_trust(stored: dict, overrides: list[str], origin: str) -> Trust:
    """The Trust of a config read back from a file (`origin`: a checkpoint) that this command
    line's `overrides` apply to: its types are data, except those the overrides set (a type
    the user wrote is the user's)."""
    if not overrides:
        return Trust.data(origin)
    marked = copy.deepcopy(stored)
    for container, key in _type_slots(marked):
        container[key] = _STORED
    try:
        applied = apply_overrides(marked, overrides)
    except (ConfigError, TypeError, ValueError):  # the real pass reports it
        return Trust.data(origin)
    return Trust(frozenset(_marked_paths(applied)), origin)
