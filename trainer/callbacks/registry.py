"""The config's `callbacks:` list: names of the callbacks in this folder, or import paths.

    callbacks:
      - GradNorm                                       # a class defined in trainer/callbacks/
      - mypkg.cb.MyCallback                            # an import path
      - {type: mypkg.cb.MyCallback, args: {every: 10}}

Checked up front (`validate_callbacks`): an unknown name, an import path that is no
Callback subclass, or arguments the class does not take are one ConfigError line
naming the entry. A config read back from a file (a checkpoint, config.json) is data:
its import paths resolve only to Callback subclasses (utils/registry.py Trust). The
built-in callbacks (EMA, SWA, the loggers, the progress lines) are turned on by their
trainer.* options, never listed here.
"""

from __future__ import annotations

from typing import Any

from base.base_callback import BuiltinCallback, Callback
from utils.errors import ArgError, ConfigError
from utils.registry import TRUSTED, Kind, Registry, Trust, subclasses_in
from utils.schema import check_args, component_spec

CALLBACK_KIND = Kind("a subclass of base.base_callback.Callback", (Callback,))


def _user_callbacks(module: Any) -> dict[str, type]:
    return {name: cls for name, cls in subclasses_in(module, Callback).items()
            if not issubclass(cls, BuiltinCallback)}


def _builtin_callbacks(module: Any) -> dict[str, type]:
    return {name: cls for name, cls in subclasses_in(module, Callback).items()
            if issubclass(cls, BuiltinCallback)}


# names -> the Callback classes of trainer/callbacks/ (the built-in ones aside)
CALLBACKS = Registry("callback", "trainer.callbacks", _user_callbacks, CALLBACK_KIND,
                     accepts=None)
BUILTIN = Registry("built-in callback", "trainer.callbacks", _builtin_callbacks, CALLBACK_KIND,
                   accepts=None)


def callback_spec(spec: Any, i: int) -> tuple[str, dict, str]:
    """(type, args, the key its type is at) of entry `i` of `callbacks:`."""
    key = f"callbacks[{i}]"
    if not isinstance(spec, str | dict):
        raise ConfigError(f"{key}: expected a callback name, an import path or {{type, args}}, "
                          f"got {spec!r}")
    name, args = component_spec(spec, key)
    return name, args, key if isinstance(spec, str) else f"{key}.type"


def callback_class(name: str, key: str, trust: Trust) -> type:
    """The Callback class `name` stands for (a name in trainer/callbacks/, or an import path)."""
    builtin = BUILTIN.items().get(name)
    if builtin is not None:
        raise ConfigError(f"{key}: {name} is a built-in callback: {builtin.option} turns it on "
                          f"(not a `callbacks:` entry)")
    cls = CALLBACKS.get(name, key, trust)
    if issubclass(cls, BuiltinCallback):
        raise ConfigError(f"{key}: {name} is a built-in callback: {cls.option} turns it on "
                          f"(not a `callbacks:` entry)")
    return cls


def validate_callbacks(value: Any, trust: Trust = TRUSTED) -> list:
    """The `callbacks:` list, checked (names, import paths, arguments); None is []."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"callbacks: expected a list of callback names or {{type, args}}, "
                          f"got {value!r}")
    for i, spec in enumerate(value):
        name, args, key = callback_spec(spec, i)
        check_args(callback_class(name, key, trust), args, f"callbacks[{i}].args")
    return value


def build_callbacks(specs: list, trust: Trust = TRUSTED) -> list[tuple[str, Callback]]:
    """(type as configured, instance) of every entry of a validated `callbacks:` list; a
    value the constructor rejects is a ConfigError naming the entry."""
    built = []
    for i, spec in enumerate(specs or []):
        name, args, key = callback_spec(spec, i)
        cls = callback_class(name, key, trust)
        try:
            built.append((name, cls(**args)))
        except ArgError as e:
            raise ConfigError(f"callbacks[{i}].args.{e.arg}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"callbacks[{i}].args: {e}") from None
    return built
