"""Loading stored weights into a rebuilt model, with a mismatch said in one whole line."""

from __future__ import annotations

from pathlib import Path

import torch

from utils.errors import ConfigError


def _shape(t: object) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def weights_mismatch(own: dict, stored: dict) -> str | None:
    """What keeps `stored` from loading into a model whose state_dict is `own`: the first
    mismatch (a shape with both sides, else a missing or an unexpected key) and how many more;
    None when it fits."""
    problems = [f"{k} is {_shape(stored[k])} in the file and {_shape(t)} in the model"
                for k, t in own.items() if k in stored and _shape(stored[k]) != _shape(t)]
    problems += [f"the model's {k} is missing from the file" for k in own if k not in stored]
    problems += [f"the file has {k}, which the model lacks" for k in stored if k not in own]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more mismatch{'es' * (more > 1)})" if more else "")


def load_weights(model: torch.nn.Module, state: dict, where: str | Path, arch: str) -> None:
    """`model.load_state_dict(state)`, or a ConfigError naming `where` (the file) and the
    first mismatch with both shapes."""
    problem = weights_mismatch(model.state_dict(), state)
    if problem is None:
        try:
            model.load_state_dict(state)
            return
        except RuntimeError as e:  # e.g. a dtype torch cannot copy
            problem = " ".join(str(e).split())
    raise ConfigError(f"{where}: the weights do not fit the model {arch}: {problem}")
