"""Weight initialisation by name, applied per layer type with isinstance checks,
and freezing of named parts of a model."""

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


def init_weights(model: nn.Module, scheme: str = "default", bias: float = 0.0) -> None:
    """Initialise Linear and Conv weights with `scheme`, their biases with the constant `bias`.

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
                nn.init.constant_(m.bias, bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)


def freeze(model: nn.Module, names: list[str] | None) -> None:
    """Set requires_grad False on the named parts: submodules ('hidden.0', 'embedding')
    or single parameters ('output.bias'). The training code builds the optimizer from
    the parameters that still require gradients, so frozen ones never change.
    (Buffers such as BatchNorm running statistics still update in train mode.)
    """
    if not names:
        return
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise ValueError(f"freeze: expected a list of module or parameter names, got {names!r}")
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for name in names:
        if name in modules and name != "":
            for p in modules[name].parameters():
                p.requires_grad_(False)
        elif name in params:
            params[name].requires_grad_(False)
        else:
            parts = [n for n in modules if n and list(modules[n].parameters())]
            raise ValueError(f"freeze: no module or parameter named {name!r} "
                             f"(parts with parameters: {', '.join(parts)})")
