"""Name -> component lookup (MMEngine's idea, kept small).

A registry finds its entries by itself: on first use it imports every module
of its package and collects what they define, so adding a component is
writing it in its folder and nothing else changes. The registries themselves
live beside what they register: model/__init__.py and data_loader/__init__.py.

A name with a dot is an import path instead (`torch.optim.AdamW`,
`mypkg.models.Net`): `import_object` imports it, and a failure is one
ConfigError line naming the module (and the attribute).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

from utils.errors import ConfigError, did_you_mean, unknown_name


class Registry:
    """Maps names to classes or functions found in a package.

    `collect(module)` returns the {name: object} pairs a module contributes;
    `extra()` adds entries from outside the project (e.g. torch.nn losses).
    """

    def __init__(self, kind: str, package: str, collect: Callable, extra: Callable | None = None,
                 accepts: tuple[Callable[[object], bool], str] = (callable, "a class or function")):
        self.kind = kind
        self.package = package
        self._collect = collect
        self._extra = extra
        self.accepts, self.expects = accepts  # what an import path must give, in words
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

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._load())

    def items(self) -> dict[str, object]:
        return dict(self._load())

    def get(self, name: str, key: str = "type") -> object:
        """The entry called `name` (or imported, for a dotted path); a ConfigError naming
        `key` when there is none."""
        if is_import_path(name):
            return imported(name, key, self.accepts, f"{self.expects} ({self.kind})")
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


def is_import_path(name: object) -> bool:
    """Whether a config `type` is an import path (it contains a dot) rather than a name."""
    return isinstance(name, str) and "." in name


def _is_missing(error: ModuleNotFoundError, module: str) -> bool:
    """Whether `error` says `module` itself (or a package above it) is missing, not something
    that module imports."""
    return error.name is not None and (module == error.name or module.startswith(error.name + "."))


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def import_object(path: str, key: str) -> object:
    """The object at `path` (`package.module.Attr`, or `package.module.Outer.Inner`).

    The longest importable prefix is the module, the rest attributes. A ConfigError
    `<key>: cannot import '<path>': ...` names the missing module or attribute.
    """
    parts = path.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{key}: '{path}' is not an import path (expected package.module.Name)")
    missing = None  # the deepest module found missing
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            if isinstance(e, ModuleNotFoundError) and _is_missing(e, module_name):
                missing = missing or e.name
                continue
            raise ConfigError(f"{key}: cannot import '{path}': importing module "
                              f"'{module_name}' failed: {_one_line(e)}") from None
        return _attribute(module, module_name, parts[i:], f"{key}: cannot import '{path}'",
                          missing)
    raise ConfigError(f"{key}: cannot import '{path}': {_no_module(missing)}")


def _no_module(name: str | None) -> str:
    return f"no module named '{name}' (is it installed, or its folder on PYTHONPATH?)"


def _attribute(obj: object, owner: str, attrs: list[str], where: str,
               missing: str | None) -> object:
    for attr in attrs:
        if not hasattr(obj, attr):
            if missing is not None:  # `owner.attr` was tried as a module: say that
                raise ConfigError(f"{where}: {_no_module(missing)}")
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(f"{where}: module '{owner}' has no attribute '{attr}'"
                              f"{did_you_mean(attr, public)}")
        obj, owner = getattr(obj, attr), f"{owner}.{attr}"
    return obj


def imported(path: str, key: str, accepts: Callable[[object], bool], expects: str) -> object:
    """`import_object`, then a ConfigError unless the object is what `key` needs."""
    obj = import_object(path, key)
    if not accepts(obj):
        raise ConfigError(f"{key}: '{path}' is not {expects}")
    return obj
