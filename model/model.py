"""Models. Each is one BaseModel subclass, found by its class name in a config."""

from __future__ import annotations

import torch
import torch.nn as nn

from base import BaseModel
from model.weight_init import freeze as freeze_parts
from model.weight_init import init_weights


def activation_layer(name: str) -> nn.Module:
    """An activation module by its torch.nn class name (Tanh, ReLU, GELU, ...)."""
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"unknown activation {name!r}")
    return cls()


class MLP(BaseModel):
    """Multi-layer perceptron: `depth` hidden blocks, then the output Linear.

    A hidden block is Linear, optional BatchNorm1d, the activation (Tanh by
    default: the notes' "tanh after every Linear"), optional Dropout.
    `container` builds the hidden stack as nn.Sequential (called as one
    module) or nn.ModuleList (iterated in forward); both hold the same layers
    under the same names, so parameters, init and outputs are identical.
    `init` names the weight initialisation of the Linear layers (model.weight_init.INITS)
    and `bias_init` the constant their biases start from (with any init but
    'default'). `freeze` lists parts to keep fixed, e.g. ["hidden.0"] or ["output"].
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 128, depth: int = 2,
                 activation: str = "Tanh", container: str = "sequential", dropout: float = 0.0,
                 batch_norm: bool = False, init: str = "default", bias_init: float = 0.0,
                 freeze: list[str] | None = None):
        super().__init__(input_shape=(in_features,))
        if container not in ("sequential", "modulelist"):
            raise ValueError(f"container must be 'sequential' or 'modulelist', got {container!r}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(activation_layer(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.container = container
        self.hidden = nn.Sequential(*layers) if container == "sequential" else nn.ModuleList(layers)
        self.output = nn.Linear(width, out_features)
        init_weights(self, init, bias=bias_init)
        freeze_parts(self, freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        if self.container == "sequential":
            x = self.hidden(x)
        else:
            for layer in self.hidden:
                x = layer(x)
        return self.output(x)
