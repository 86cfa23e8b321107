"""Model summary: per-layer output shapes and parameter counts, from one example batch.

Forward hooks on the model's layers record the output shape of each layer as
the model runs on the batch (in eval mode, without gradients, with the random
generator states restored afterwards, so training is unaffected). Totals come
from model.parameters() and model.buffers() directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from utils.checkpoint import capture_rng_state, restore_rng_state
from utils.errors import ConfigError

MB = 1024 ** 2


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: str
    trainable: int
    frozen: int


@dataclass
class ModelSummary:
    rows: list[LayerRow] = field(default_factory=list)
    input_shapes: str = ""
    trainable: int = 0
    frozen: int = 0
    size_mb: float = 0.0

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def format(self) -> str:
        """The summary as a plain-text table."""
        header = ("Layer", "Type", "Output shape", "Trainable", "Frozen")
        body = [(r.name, r.kind, r.output_shape, f"{r.trainable:,}", f"{r.frozen:,}")
                for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3])]
            right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:])]
            return "  ".join(left + right).rstrip()

        rule = "-" * len(line(header))
        return "\n".join([
            f"Model summary (input {self.input_shapes})",
            rule, line(header), rule, *map(line, body), rule,
            f"Total parameters:     {self.total:,}",
            f"Trainable parameters: {self.trainable:,}",
            f"Frozen parameters:    {self.frozen:,}",
            f"Size (parameters and buffers): {self.size_mb:.3f} MB",
        ])

    def __str__(self) -> str:
        return self.format()


def describe_shape(value: Any) -> str:
    """'[64, 10]' for a tensor; nested for tuples, lists and dicts; the type name otherwise."""
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, nn.utils.rnn.PackedSequence):
        return f"packed {list(value.data.shape)}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(describe_shape(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_shape(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def _own_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) counts of the parameters held by `module` itself."""
    params = list(module.parameters(recurse=False))
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, sum(p.numel() for p in params) - trainable


def _reported_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers shown as rows: leaf modules, and any module holding parameters itself."""
    found = []
    for name, module in model.named_modules():
        if not name:
            continue
        is_leaf = next(module.children(), None) is None
        if is_leaf or next(module.parameters(recurse=False), None) is not None:
            found.append((name, module))
    return found


def summarize(model: nn.Module, inputs: tuple) -> ModelSummary:
    """Run `model(*inputs)` once with forward hooks and collect the summary."""
    modules = _reported_modules(model)
    shapes: dict[str, str] = {}
    handles = []
    for name, module in modules:
        def hook(_module, _inp, out, name=name):
            shapes.setdefault(name, describe_shape(out))
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    rng = capture_rng_state()
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        restore_rng_state(rng)

    summary = ModelSummary(input_shapes=", ".join(describe_shape(x) for x in inputs))
    root_trainable, root_frozen = _own_counts(model)
    if root_trainable or root_frozen:
        summary.rows.append(LayerRow("(model)", type(model).__name__, "-", root_trainable,
                                     root_frozen))
    for name, module in modules:
        trainable, frozen = _own_counts(module)
        summary.rows.append(LayerRow(name, type(module).__name__, shapes.get(name, "not called"),
                                     trainable, frozen))
    params = list(model.parameters())
    summary.trainable = sum(p.numel() for p in params if p.requires_grad)
    summary.frozen = sum(p.numel() for p in params) - summary.trainable
    nbytes = sum(t.numel() * t.element_size() for t in [*params, *model.buffers()])
    summary.size_mb = nbytes / MB
    return summary


def first_batch_inputs(loader) -> tuple:
    """The model inputs of the loader's first batch (a batch is (inputs..., target))."""
    batch = next(iter(loader))
    if not isinstance(batch, tuple | list) or len(batch) < 2:
        raise ConfigError("data_loader: a batch must be a tuple (inputs..., target)")
    return tuple(batch[:-1])


def summarize_on_loader(model: nn.Module, loader, arch: str = "") -> ModelSummary:
    """The summary on the loader's first batch; a model that fails on it is a config error."""
    inputs = first_batch_inputs(loader)
    try:
        return summarize(model, inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        shapes = ", ".join(map(describe_shape, inputs))
        raise ConfigError(f"arch: the model {arch or type(model).__name__} fails on a batch of "
                          f"the data (inputs {shapes}): {first}") from None
