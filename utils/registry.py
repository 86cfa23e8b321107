"""Name -> component lookup (MMEngine's idea, kept small).

A registry finds its entries by itself, so adding a component is writing it in
its folder and nothing else changes. A name is looked up lazily: an index of
which module defines which top-level name, read from the package's source files
with `ast`, says which module to import, and only that one is imported (a run
imports the model and data loader it names, not the whole folder). Listing the
names (an unknown name's error, --print-schema) imports every module. The registries themselves
live beside what they register: model/__init__.py and data_loader/__init__.py.

A name with a dot is an import path instead (`torch.optim.AdamW`,
`mypkg.models.Net`): `resolve_type` is the one place such a `type` becomes an
object. A failure is one ConfigError line naming the module (and the attribute).

A config the user did not write on this command line (a checkpoint's, a run
folder's config.json, an export's metadata) is data (`Trust`): its dotted types
resolve only to classes of the kind their key needs (`Kind`), refused by name
before anything is imported where the name decides it, and checked before
anything is called (docs/checkpoints.md, "Trust").
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils.errors import ConfigError, did_you_mean, unknown_name

# ---------------------------------------------------------------- trust

@dataclass(frozen=True)
class Kind:
    """The classes a key's `type` may name when its config is data: subclasses of `bases`, or
    of a class named in `by_name` (module.qualname, matched in the MRO: never imported)."""
    words: str  # 'a subclass of torch.nn.Module'
    bases: tuple[type, ...] = ()
    by_name: tuple[str, ...] = ()

    def holds(self, obj: object) -> bool:
        if not inspect.isclass(obj):
            return False
        return issubclass(obj, self.bases) or \
            any(qualified_name(c) in self.by_name for c in inspect.getmro(obj))


@dataclass(frozen=True)
class Trust:
    """Which dotted `type`s of a config may name any class or function.

    The user's own config (-c FILE, its _base_ files, this command line's overrides) is
    trusted. A config read back from a file (`origin`: a checkpoint, a run folder's
    config.json, an export's metadata) is data: the type paths in `data_paths` (None: all of
    them; a type the command line set is not among them) pick only classes of their Kind,
    unless `flag` (--trust-config) is given."""
    data_paths: frozenset[str] | None = frozenset()
    origin: str = ""
    flag: str = "--trust-config"

    @classmethod
    def data(cls, origin: str, flag: str = "--trust-config") -> Trust:
        """Every type of the config is data."""
        return cls(None, origin, flag)

    def trusts(self, key: str) -> bool:
        """Whether the `type` at `key` ('arch.type', 'loss', 'metrics[0]') may be anything."""
        return self.data_paths is not None and type_path(key) not in self.data_paths


TRUSTED = Trust()


def type_path(key: str) -> str:
    """A type's place in the config, as both spellings of a component name it: 'loss.type'
    and 'loss' -> 'loss'; 'lr_scheduler.args.schedulers[0].type' -> '...schedulers[0]'."""
    return key[:-len(".type")] if key.endswith(".type") else key


def qualified_name(obj: object) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


class UntrustedType(ConfigError):
    """A config that is data names something other than a class of its key's kind."""


class Registry:
    """Maps names to classes or functions found in a package.

    `collect(module)` returns the {name: object} pairs a module contributes;
    `extra()` adds entries from outside the project (e.g. torch.nn losses). `data_kind`: what
    a dotted type may name where the config is data; `accepts`: what it may name otherwise (a
    check and its words; None: the same as `data_kind`).
    """

    def __init__(self, kind: str, package: str, collect: Callable, data_kind: Kind,
                 extra: Callable | None = None,
                 accepts: tuple[Callable[[object], bool], str] | None =
                 (callable, "a class or function")):
        self.kind = kind
        self.package = package
        self._collect = collect
        self._extra = extra
        self.data_kind = data_kind
        # what an import path must give, in words
        self.accepts, self.expects = accepts or (data_kind.holds, data_kind.words)
        self._items: dict[str, object] | None = None
        self._module_names: list[str] | None = None
        self._defined: dict[str, list[str]] | None = None

    def _modules(self) -> list[str]:
        """The modules whose entries this registry collects, in import order (the package's
        public modules, sorted as pkgutil lists them; or the one module it names)."""
        if self._module_names is None:
            spec = importlib.util.find_spec(self.package)
            paths = spec.submodule_search_locations if spec is not None else None
            self._module_names = [self.package] if not paths else \
                [f"{self.package}.{info.name}" for info in pkgutil.iter_modules(paths)
                 if not info.name.startswith("_")]
        return self._module_names

    def _collect_from(self, modules: list[str]) -> dict[str, object]:
        items: dict[str, object] = dict(self._extra()) if self._extra is not None else {}
        for name in modules:
            items.update(self._collect(importlib.import_module(name)))
        return items

    def _load(self) -> dict[str, object]:
        """Every entry: every module imported."""
        if self._items is None:
            self._items = self._collect_from(self._modules())
        return self._items

    def _index(self) -> dict[str, list[str]]:
        """{top-level class or function name: the modules defining it}, read with ast."""
        if self._defined is None:
            self._defined = {}
            for module in self._modules():
                for name in top_level_names(module):
                    self._defined.setdefault(name, []).append(module)
        return self._defined

    def _lookup(self, name: str) -> dict[str, object]:
        """Entries that hold `name` if any module defines it: only the modules the index names
        for it are imported; every module when the index names none (or they do not register
        it: the index is a hint, the full load decides)."""
        if self._items is None and len(self._modules()) > 1:
            modules = self._index().get(name)
            if modules:
                found = self._collect_from(modules)
                if name in found:
                    return found
        return self._load()

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._load())

    def items(self) -> dict[str, object]:
        return dict(self._load())

    def get(self, name: str, key: str = "type", trust: Trust = TRUSTED) -> object:
        """The entry called `name` (or imported, for a dotted path); a ConfigError naming
        `key` when there is none. A dotted path to a registered entry (`model.loss.mse_loss`)
        is project code: it stays allowed where the config is data."""
        if is_import_path(name):
            if not trust.trusts(key) and (own := self._own(name)) is not None:
                return own
            return resolve_type(name, key, trust, self.data_kind,
                                (self.accepts, f"{self.expects} ({self.kind})"))
        items = self._lookup(name) if isinstance(name, str) else self._load()
        if not isinstance(name, str) or name not in items:
            raise ConfigError(f"{key}: {unknown_name(self.kind, name, items)}")
        return items[name]


    def _own(self, path: str) -> object | None:
        """The registered entry whose import path is `path`, if any: only the registry's
        modules that `path` starts with are imported."""
        modules = [m for m in self._modules() if path.startswith(m + ".")]
        own = {qualified_name(obj): obj for obj in self._collect_from(modules).values()}
        return own.get(path)


def top_level_names(module: str) -> list[str]:
    """The classes and functions `module` defines at its top level, read from its source file
    with ast (nothing imported; [] when there is no readable source)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []  # importing it (a full load) reports what is wrong, as Python says it
    return [node.name for node in tree.body
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)]


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


def _path_parts(path: str, key: str) -> list[str]:
    parts = path.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{key}: '{path}' is not an import path (expected package.module.Name)")
    return parts


def import_object(path: str, key: str) -> object:
    """The object at `path` (`package.module.Attr`, or `package.module.Outer.Inner`).

    The longest importable prefix is the module, the rest attributes. A ConfigError
    `<key>: cannot import '<path>': ...` names the missing module or attribute.
    """
    parts = _path_parts(path, key)
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


_UNKNOWN = object()


def _already_loaded(parts: list[str]) -> object:
    """The object `parts` names when it is reachable from a module already imported, looked up
    without running anything (no module __getattr__, no descriptor); _UNKNOWN otherwise."""
    for i in range(len(parts) - 1, 0, -1):
        obj = sys.modules.get(".".join(parts[:i]))
        if obj is None:
            continue
        for attr in parts[i:]:
            obj = inspect.getattr_static(obj, attr, _UNKNOWN)
            if obj is _UNKNOWN:
                return _UNKNOWN
        return obj
    return _UNKNOWN


def _data_type(path: str, key: str, trust: Trust, kind: Kind) -> object:
    """A dotted `type` of a config that is data: a class of `kind`, else UntrustedType.

    Decided by the name alone where it can be, before anything is imported: a standard-library
    module holds no class of any kind a key needs (os.system, subprocess.Popen are never even
    imported); a package that is not installed cannot be imported; an object of a module
    already loaded is looked at where it is. Otherwise the module is imported and the class
    checked, before it is called."""
    parts = _path_parts(path, key)
    refused = UntrustedType(f"{key}: '{path}' is not {kind.words}; a config read from "
                            f"{trust.origin} is data and picks only classes of the expected "
                            f"kind (pass {trust.flag} to allow it)")
    if parts[0] in sys.stdlib_module_names:
        raise refused
    obj = _already_loaded(parts)
    if obj is _UNKNOWN:
        if parts[0] not in sys.modules and importlib.util.find_spec(parts[0]) is None:
            raise ConfigError(f"{key}: cannot import '{path}': {_no_module(parts[0])}")
        obj = import_object(path, key)
    if not kind.holds(obj):
        raise refused
    return obj


def resolve_type(path: str, key: str, trust: Trust, kind: Kind,
                 accepts: tuple[Callable[[object], bool], str] | None = None) -> object:
    """The object a dotted config `type` names, the one place every builder resolves one.

    Where `trust` trusts `key`: imported, then a ConfigError unless `accepts` (a check and
    its words; default: `kind`) holds for it. Where the config is data: only a class of
    `kind` (_data_type)."""
    if not trust.trusts(key):
        return _data_type(path, key, trust, kind)
    check, expects = accepts or (kind.holds, kind.words)
    obj = import_object(path, key)
    if not check(obj):
        raise ConfigError(f"{key}: '{path}' is not {expects}")
    return obj
