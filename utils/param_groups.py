"""Optimizer parameter groups from the config (docs/transfer.md).

    optimizer:
      type: AdamW
      args: {lr: 1.0e-3, weight_decay: 0.05}
      param_groups: [{params: "stages.0.*", lr: 1.0e-4}, {params: "*"}]
      no_decay: [bias, norm]

Each parameter that trains (requires_grad) goes to the first group whose glob
pattern (fnmatch, over `named_parameters()` names; `params` may also be a list of
patterns) matches it; a group's other keys override `optimizer.args`. A parameter
no pattern matches, or a pattern that matches nothing, is an error. `no_decay`
moves the matching parameters of every group into a companion group right after it
with weight_decay 0: `bias` (parameters named bias), `norm` (the parameters of
normalization layers: BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm), or
any other glob pattern over the names. The optimizer's groups are numbered in that
order; metrics.csv gets the lr of each (`lr/<n>`) when there are several
(logger/writer.py's lr_entries, written by trainer/callbacks/loggers.py).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import torch
import torch.nn as nn

from utils.errors import ConfigError
from utils.schema import check_args, expect

NO_DECAY_WORDS = ("bias", "norm")
PATTERNS = {"anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "minItems": 1, "items": {"type": "string"}}]}
SCHEMA = {  # the optimizer section's extra keys in the JSON schema (trainer/config/json_schema.py)
    "param_groups": {
        "type": ["array", "null"], "minItems": 1,
        "description": "parameter groups, first match wins: {params: GLOB, <optimizer "
                       "argument>: value} (docs/transfer.md)",
        "items": {"type": "object", "required": ["params"],
                  "properties": {"params": {**PATTERNS, "description": "glob pattern(s) over "
                                            "named_parameters()"}}}},
    "no_decay": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1},
                 "description": "bias, norm or glob patterns: weight_decay 0 for these"},
}
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
               *([nn.RMSNorm] if hasattr(nn, "RMSNorm") else []))


def _patterns(value: Any, key: str) -> list[str]:
    patterns = [value] if isinstance(value, str) else value
    expect(isinstance(patterns, list) and patterns != [] and
           all(isinstance(p, str) and p for p in patterns), key,
           "a glob pattern over parameter names (or a non-empty list of them)", value)
    return patterns


def validate_param_groups(optimizer_section: dict, optimizer_cls: Any) -> None:
    """ConfigError (naming the key) for a malformed `param_groups` or `no_decay`; each
    group's arguments are checked against the optimizer like `optimizer.args`."""
    groups = optimizer_section.get("param_groups")
    if groups is not None:
        expect(isinstance(groups, list) and groups != [], "optimizer.param_groups",
               "a non-empty list of {params: PATTERN, <optimizer argument>: value, ...}", groups)
        for i, group in enumerate(groups):
            key = f"optimizer.param_groups[{i}]"
            expect(isinstance(group, dict) and "params" in group, key,
                   "a mapping with 'params' (a glob pattern) and optimizer arguments", group)
            _patterns(group["params"], f"{key}.params")
            check_args(optimizer_cls, {k: v for k, v in group.items() if k != "params"}, key,
                       skip=1)
    no_decay = optimizer_section.get("no_decay")
    if no_decay is not None:
        expect(isinstance(no_decay, list) and all(isinstance(w, str) and w for w in no_decay),
               "optimizer.no_decay", "a list of 'bias', 'norm' or glob patterns over "
               "parameter names", no_decay)
        check_args(optimizer_cls, {"weight_decay": 0.0}, "optimizer.no_decay", skip=1)


def _norm_parameter_names(model: nn.Module) -> set[str]:
    return {f"{mname}.{pname}" if mname else pname
            for mname, module in model.named_modules() if isinstance(module, NORM_LAYERS)
            for pname, _ in module.named_parameters(recurse=False)}


def _no_decay(name: str, words: list[str], norms: set[str]) -> bool:
    for word in words:
        if word == "bias" and name.rsplit(".", 1)[-1] == "bias":
            return True
        if word == "norm" and name in norms:
            return True
        if word not in NO_DECAY_WORDS and fnmatchcase(name, word):
            return True
    return False


def build_param_groups(model: nn.Module, optimizer_section: dict) -> list[dict] | None:
    """The optimizer's parameter groups for `model` (its parameters that train), each a
    dict of `params` and the group's own arguments; None when the section configures no
    groups (one group of every parameter, as before)."""
    groups = optimizer_section.get("param_groups")
    no_decay = optimizer_section.get("no_decay") or []
    if groups is None and not no_decay:
        return None
    specs = groups if groups is not None else [{"params": "*"}]
    members: list[list[tuple[str, torch.Tensor]]] = [[] for _ in specs]
    patterns = [_patterns(s["params"], f"optimizer.param_groups[{i}].params")
                for i, s in enumerate(specs)]
    unmatched = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        index = next((i for i, pats in enumerate(patterns)
                      if any(fnmatchcase(name, p) for p in pats)), None)
        if index is None:
            unmatched.append(name)
        else:
            members[index].append((name, param))
    for i, (spec, found) in enumerate(zip(specs, members)):
        if not found:
            raise ConfigError(f"optimizer.param_groups[{i}].params: {spec['params']!r} "
                              f"matches no parameter that trains (those before it take "
                              f"first pick)")
    if unmatched:
        raise ConfigError(f"optimizer.param_groups: the parameter {unmatched[0]} matches no "
                          f"group's pattern (end the list with {{params: '*'}} for the rest)")
    norms = _norm_parameter_names(model)
    built = []
    for spec, found in zip(specs, members):
        args = {k: v for k, v in spec.items() if k != "params"}
        decay = [p for n, p in found if not _no_decay(n, no_decay, norms)]
        plain = [p for n, p in found if _no_decay(n, no_decay, norms)]
        built += [{"params": part, **extra} for part, extra in
                  ((decay, args), (plain, {**args, "weight_decay": 0.0})) if part]
    return built
