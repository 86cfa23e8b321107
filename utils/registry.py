"""Name -> component lookup (MMEngine's idea, kept small).

A registry finds its entries by itself: on first use it imports every module
of its package and collects what they define, so adding a component is
writing it in its folder and nothing else changes. The registries themselves
live beside what they register: model/__init__.py and data_loader/__init__.py.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

from utils.errors import ConfigError, unknown_name


class Registry:
    """Maps names to classes or functions found in a package.

    `collect(module)` returns the {name: object} pairs a module contributes;
    `extra()` adds entries from outside the project (e.g. torch.nn losses).
    """

    def __init__(self, kind: str, package: str, collect: Callable, extra: Callable | None = None):
        self.kind = kind
        self.package = package
        self._collect = collect
        self._extra = extra
        self._items: dict[str, object] | None = None

    def _load(self) -> dict[str, object]:
        if self._items is None:
            items: dict[str, object] = {}
            if self._extra is not None:
                items.update(self._extra())
            pkg = importlib.import_module(self.package)
            if not hasattr(pkg, "__path__"):  # a single module, e.g. model/metric.py
                items.update(self._collect(pkg))
            else:
                for info in pkgutil.iter_modules(pkg.__path__):
                    if not info.name.startswith("_"):
                        module = importlib.import_module(f"{self.package}.{info.name}")
                        items.update(self._collect(module))
            self._items = items
        return self._items

    def get(self, name: str, key: str = "type") -> object:
        """The entry called `name`; a ConfigError naming `key` when there is none."""
        items = self._load()
        if not isinstance(name, str) or name not in items:
            raise ConfigError(f"{key}: {unknown_name(self.kind, name, items)}")
        return items[name]


def subclasses_in(module, base: type) -> dict[str, type]:
    """Concrete subclasses of `base` defined in `module`, by class name."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    }


def functions_in(module) -> dict[str, Callable]:
    """Public functions defined in `module`, by name."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__
        and not name.startswith("_")
    }
