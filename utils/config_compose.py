"""Configs built from configs: `_base_` files merged key by key, `_delete_`, and `${a.b}`.

    _base_: [common.yaml, ../models/mlp.yaml]   # or one name; paths relative to this file
    arch: {args: {hidden: 128}}                  # merged into the bases' arch, key by key
    optimizer: {_delete_: true, type: SGD, args: {lr: 0.1}}   # replaces the bases' optimizer
    name: "wine_h${arch.args.hidden}"            # resolved after merging and overrides

Bases are merged in order (a later one wins), then the file's own keys, then the command
line's overrides (utils/config_io.py); interpolations are resolved last. A whole-value
`${a.b}` takes the referenced value with its type; inside a longer string it is text.
Lists are replaced, never merged. Errors are ConfigError lines naming the file or key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.errors import ConfigError, did_you_mean

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
MISSING = object()  # what lookup_path returns for a key that does not exist


# ---------------------------------------------------------------- _base_ and _delete_

def merge(base: Any, over: Any, where: str = "") -> Any:
    """`over` merged into `base`: mappings key by key (unless `over` says _delete_: true),
    anything else replaced. Neither argument is changed; no _delete_ key is left."""
    if not isinstance(over, dict):
        return copy.deepcopy(over)
    over = dict(over)
    delete = over.pop(DELETE_KEY, False)
    if not isinstance(delete, bool):
        raise ConfigError(f"{where}{DELETE_KEY}: expected true or false, got {delete!r}")
    merged = {} if delete or not isinstance(base, dict) else dict(base)
    for key, value in over.items():
        merged[key] = merge(merged.get(key, MISSING), value, f"{where}{key}.")
    return merged


def _base_names(data: dict, path: Path) -> list[str]:
    names = data.pop(BASE_KEY, None)
    if names is None:
        return []
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{path}: {BASE_KEY}: expected a file name or a list of file names, "
                          f"got {names!r}")
    return names


def compose_file(path: Path, read: Callable[[Path], dict], _chain: tuple[Path, ...] = ()) -> dict:
    """The config of `path` with its `_base_` files (recursively) merged under it.

    `read` reads one file into a mapping (utils/config_io.py); a cycle of bases is an error
    naming every file in it."""
    data = read(path)
    chain = (*_chain, path)
    merged: Any = {}
    for name in _base_names(data, path):
        base = path.parent / name
        if base.resolve() in {p.resolve() for p in chain}:
            cycle = [str(p) for p in chain[[p.resolve() for p in chain].index(base.resolve()):]]
            raise ConfigError(f"{BASE_KEY} cycle: {' -> '.join([*cycle, str(base)])}")
        try:
            merged = merge(merged, compose_file(base, read, chain))
        except ConfigError as e:
            text = str(e)
            raise ConfigError(text if text.startswith((str(base), BASE_KEY)) else
                              f"{path}: {BASE_KEY}: {text}") from None
    try:
        return merge(merged, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ---------------------------------------------------------------- ${a.b}

def lookup_path(config: dict, ref: str) -> Any:
    """config[a][b]... for 'a.b' (list items by index); MISSING when it does not exist."""
    node: Any = config
    for part in ref.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and \
                -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def _as_text(value: Any) -> str:
    """A value inside a longer string, as OmegaConf writes it: str() (True, None, {'a': 1})."""
    return str(value)


def _pieces(value: str) -> list[tuple[bool, str]]:
    """'a\\${b} ${c}' -> [(False, 'a${b} '), (True, 'c')]: text and references, with
    OmegaConf's escapes: a backslash before ${ makes it literal text, and before ${ two
    backslashes are one."""
    out: list[tuple[bool, str]] = []
    text, pos = "", 0
    while True:
        at = value.find("${", pos)
        if at < 0:
            return [*out, (False, text + value[pos:])] if text or value[pos:] or not out else out
        run = len(value[pos:at]) - len(value[pos:at].rstrip("\\"))
        text += value[pos:at - run] + "\\" * (run // 2)
        if run % 2:  # \${ : a literal ${
            text, pos = text + "${", at + 2
            continue
        end = value.find("}", at)
        if end < 0 or "${" in value[at + 2:end]:
            raise ConfigError(f"unclosed or nested interpolation in {value!r}")
        if text:
            out.append((False, text))
        out.append((True, value[at + 2:end]))
        text, pos = "", end + 1


class _Resolver:
    """Resolves every ${...} of one config, each referenced key once, cycles detected."""

    def __init__(self, config: dict):
        self.config = config
        self.done: dict[str, Any] = {}
        self.open: list[str] = []

    def key(self, ref: str, where: str) -> Any:
        if ref in self.done:
            return copy.deepcopy(self.done[ref])
        if ref in self.open:
            cycle = " -> ".join([*self.open[self.open.index(ref):], ref])
            raise ConfigError(f"{where}: interpolation cycle: {cycle}")
        if ":" in ref:
            raise ConfigError(f"{where}: interpolation ${{{ref}}}: OmegaConf's resolvers "
                              f"(${{name:args}}) are not supported; only ${{key.path}}")
        value = lookup_path(self.config, ref) if ref and not ref.startswith(".") else MISSING
        if value is MISSING:
            parent, _, last = ref.rpartition(".")
            node = lookup_path(self.config, parent) if parent else self.config
            hint = did_you_mean(last, node) if isinstance(node, dict) else ""
            raise ConfigError(f"{where}: interpolation ${{{ref}}}: no such key '{ref}'{hint}")
        self.open.append(ref)
        value = self.value(value, ref)
        self.open.pop()
        self.done[ref] = value
        return copy.deepcopy(value)

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}" if where else str(k))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}.{i}") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        try:
            pieces = _pieces(value)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        if len(pieces) == 1 and pieces[0][0]:  # the whole value: its type is kept
            return self.key(pieces[0][1].strip(), where)
        return "".join(_as_text(self.key(ref.strip(), where)) if is_ref else ref
                       for is_ref, ref in pieces)


def resolve_interpolations(config: dict) -> dict:
    """A copy of `config` with every ${a.b} replaced by the value at a.b (resolved itself)."""
    return _Resolver(config).value(config, "")
