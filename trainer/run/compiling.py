"""trainer.compile: torch.compile for training, and what it must never change.

    trainer:
      compile: false             # true, or torch.compile's keyword arguments:
                                 #   {backend: inductor, mode: max-autotune, fullgraph: false, ...}

Only the training process wraps the model (trainer/run/training.py); everything that
reads or writes weights goes through the plain module (BaseTrainer.plain_model),
so checkpoints hold its state_dict without torch.compile's `_orig_mod.` prefix:
they load strictly into an uncompiled model, and a run may be resumed with
compile switched on or off. Compiling keeps the computation (with the eager and
aot_eager backends bit for bit; inductor may round differently).

Validation has two steps: the value's shape up front (validate_compile, with the
config's other checks), and, before a run folder exists, a trial compile of a tiny
function with the same arguments (check_compile): a platform or an installation
that cannot compile is then a one-line config error instead of a failure in the
first batch.
"""

from __future__ import annotations

from typing import Any

import torch

from utils.errors import ConfigError, did_you_mean
from utils.schema import expect, option_mapping

# torch.compile's arguments a config can spell (the others take Python objects)
COMPILE_ARGS = ("backend", "mode", "options", "fullgraph", "dynamic", "disable")
DEFAULT_BACKEND = "inductor"
KEY = "trainer.compile"


def _backends() -> tuple[list[str], list[str]]:
    """(every backend name torch.compile takes, the non-debug ones to suggest). torch loads
    its compiler (about 2 s) on first use: only when a config asks for compile."""
    return (sorted(torch.compiler.list_backends(exclude_tags=())),
            [*torch.compiler.list_backends(), "eager", "aot_eager"])


def _modes() -> list[str]:
    return sorted(torch._inductor.list_mode_options())  # torch imports _inductor lazily


def validate_compile(value: Any) -> dict | bool:
    """trainer.compile resolved: False (off) or torch.compile's keyword arguments
    (true is {backend: inductor})."""
    value = option_mapping(value, KEY, COMPILE_ARGS, "true, false or a mapping of "
                           "torch.compile arguments such as {backend: inductor, mode: default}")
    if value is None:
        return False
    resolved = {"backend": DEFAULT_BACKEND, **value}
    backend = resolved["backend"]
    expect(isinstance(backend, str) and backend != "", f"{KEY}.backend",
           "the name of a torch.compile backend", backend)
    backends, usual = _backends()
    if backend not in backends:
        raise ConfigError(f"{KEY}.backend: unknown backend {backend!r}"
                          f"{did_you_mean(backend, backends)} (expected one of: "
                          f"{', '.join(usual)})")
    mode = resolved.get("mode")
    if mode is not None:
        modes = _modes()
        expect(isinstance(mode, str) and mode in modes, f"{KEY}.mode", f"one of {modes}", mode)
        if "options" in resolved:
            raise ConfigError(f"{KEY}: give mode or options, not both (torch.compile)")
    options = resolved.get("options")
    expect(options is None or isinstance(options, dict), f"{KEY}.options",
           "a mapping of backend options", options)
    for key in ("fullgraph", "disable"):
        if key in resolved:
            expect(isinstance(resolved[key], bool), f"{KEY}.{key}", "true or false",
                   resolved[key])
    dynamic = resolved.get("dynamic")
    expect(dynamic is None or isinstance(dynamic, bool), f"{KEY}.dynamic",
           "true, false or null (automatic)", dynamic)
    return resolved


def check_compile(kwargs: dict | bool) -> None:
    """ConfigError unless torch.compile works here with `kwargs`: a trial compile (and run)
    of a tiny function with the same arguments. Nothing to do when compile is off."""
    if kwargs is False:
        return
    if not torch._dynamo.is_dynamo_supported():  # torch imports _dynamo lazily
        raise ConfigError(f"{KEY}: torch.compile is not supported by this Python and torch "
                          f"({torch.__version__}); set trainer.compile: false")
    try:
        trial = torch.compile(lambda x: torch.tanh(x) * 2 + 1, **kwargs)
        out = trial(torch.zeros(4))
    except Exception as e:  # any failure of the platform or the backend: a config error
        cause = getattr(e, "inner_exception", None) or e  # BackendCompilerFailed wraps it
        first = (str(cause).strip().splitlines() or [""])[0]
        raise ConfigError(f"{KEY}: torch.compile with {kwargs} does not work here "
                          f"({type(cause).__name__}: {first}); set trainer.compile: false or "
                          f"another backend") from None
    finally:
        torch._dynamo.reset()  # the trial leaves nothing behind (caches, counters)
    if not torch.equal(out, torch.ones(4)):
        raise ConfigError(f"{KEY}: torch.compile with {kwargs} computed a wrong result here")


def compile_model(model: torch.nn.Module, kwargs: dict | bool) -> torch.nn.Module:
    """The model torch.compile'd with `kwargs` (after any DDP or DataParallel wrapping),
    or the model itself when compile is off. The plain module stays reachable as
    `_orig_mod` (BaseTrainer.plain_model)."""
    if kwargs is False:
        return model
    return torch.compile(model, **kwargs)
