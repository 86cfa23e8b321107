"""Weight initialisation by name, applied per layer type with isinstance checks."""

from __future__ import annotations

import torch.nn as nn

INITS = {
    "default": None,  # PyTorch's own initialisation
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
    "normal": lambda w: nn.init.normal_(w, mean=0.0, std=0.01),
}


def init_weights(model: nn.Module, scheme: str = "default") -> None:
    """Initialise Linear and Conv weights with `scheme`, biases with zeros.

    BatchNorm weights become 1 and biases 0; Embedding and LSTM layers keep
    PyTorch's initialisation. 'default' leaves every layer untouched.
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; expected one of {sorted(INITS)}")
    fn = INITS[scheme]
    if fn is None:
        return
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            fn(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)
