"""Config files (JSON and YAML) and command-line overrides (Hydra's KEY=V, +KEY=V, ++KEY=V, ~KEY).

Reading errors name the file, line and column; validation against the
components happens later, in trainer/config/parse_config.py.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utils.config_compose import (
    BASE_KEY,
    MISSING,
    compose_file,
    lookup_path,
    resolve_interpolations,
)
from utils.config_limits import (
    MAX_DEPTH,
    check_config_limits,
    check_json_depth,
    check_yaml_expansion,
    depth_error,
    read_int,
)
from utils.errors import ConfigError
from utils.options import TOP_LEVEL, TRAINER, defaults
from utils.schema import CONFIG_SUFFIXES

# ---------------------------------------------------------------- files

SCHEMA_KEY = "$schema"  # a JSON config's pointer to its JSON Schema, dropped on reading


class _Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads 1e-3 and 1E5 as floats (YAML 1.2 style), refuses
    a mapping that repeats a key (YAML would let the last one win), stops composing past
    MAX_DEPTH levels (its composer recurses) and never converts a decimal integer too long
    for 64 bits (utils/config_limits.py)."""

    levels = 0  # mappings and sequences being composed, one inside the other

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            return super().compose_node(parent, index)
        self.levels += 1
        if self.levels > MAX_DEPTH:
            raise depth_error(f"line {self.peek_event().start_mark.line + 1}: ")
        try:
            return super().compose_node(parent, index)
        finally:
            self.levels -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        text = self.construct_scalar(node).replace("_", "")
        if text.lstrip("+-").isdigit() and not text.lstrip("+-").startswith("0"):
            return read_int(text)  # decimal: Python's int-string limit applies
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise ConfigError(f"duplicate key '{key}' (line {seen[key]} and line {line}); "
                                  f"keep one")
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"))


def yaml_load(text: str) -> Any:
    """Safe YAML with the limits above: no duplicate keys, bounded alias expansion."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_yaml_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _json_load(text: str) -> Any:
    """JSON, with a repeated key an error naming both lines (read again as YAML for them)."""
    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        keys = [k for k, _ in pairs]
        duplicate = next((k for k in keys if keys.count(k) > 1), None)
        if duplicate is not None:
            with contextlib.suppress(yaml.YAMLError):
                yaml_load(text)  # JSON is YAML: the YAML loader names both lines
            raise ConfigError(f"duplicate key '{duplicate}'; keep one")
        return dict(pairs)

    check_json_depth(text)  # before the parser recurses into it
    return json.loads(text, object_pairs_hook=refuse_duplicates, parse_int=read_int)


def load_config_file(path: str | Path) -> dict:
    """A config file with its `_base_` files merged in (utils/config_compose.py); ${...}
    interpolations are left for apply_overrides(). Errors name the file (and line)."""
    return compose_file(Path(path), read_config_file)


def read_config_file(path: str | Path) -> dict:
    """Read one JSON or YAML config; errors name the file (and line and column)."""
    path = Path(path)
    if path.suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"{path}: a config file must end in .json, .yaml or .yml")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start}); save it as UTF-8") \
            from None
    try:
        data = _json_load(text) if path.suffix == ".json" else yaml_load(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections at the top level")
    try:
        check_config_limits(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    data.pop(SCHEMA_KEY, None)  # where editors find the JSON Schema; no part of the config
    return data


def dump_config(config: dict, fmt: str = "yaml") -> str:
    """`config` as YAML (keys in their order) or JSON text, as train.py --print-config prints
    it; either reads back (load_config_file) to the same dict."""
    if fmt == "json":
        return json.dumps(config, indent=2) + "\n"
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)


# ---------------------------------------------------------------- overrides

def parse_value(text: str, key: str = "") -> Any:
    """A command-line value, read as a YAML scalar or list ('0.01', 'true', '[64, 32]', 'null');
    an integer beyond 64 bits or nesting deeper than MAX_DEPTH is an error naming `key`."""
    try:
        value = yaml_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}" if key else str(e)) from None
    check_config_limits(value, key)
    return value


def split_choices(text: str) -> list[str]:
    """'0.1,0.01' -> ['0.1', '0.01']; commas inside brackets or quotes do not split."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True)
class Override:
    """One command-line override, Hydra's grammar: KEY=V (override an existing key), +KEY=V
    (add a new key), ++KEY=V (add or override), ~KEY or ~KEY=V (delete)."""

    item: str  # as written
    op: str  # "=", "+", "++" or "~"
    key: str
    text: str | None  # the value as written; None for a bare ~KEY

    @property
    def value(self) -> Any:
        return self.parse(self.text or "")

    def parse(self, text: str) -> Any:
        """`text` (the value, or one of its -m choices) read as this key's value; an error
        names the override (cut short: it may be long)."""
        try:
            return parse_value(text, self.key)
        except ConfigError as e:
            item = self.item if len(self.item) <= 60 else self.item[:57] + "..."
            raise ConfigError(f"override '{item}': {e}") from None


def parse_override(item: str) -> Override:
    """'++a.b=3' -> Override(op='++', key='a.b', text='3')."""
    op = next((p for p in ("++", "+", "~") if item.startswith(p)), "=")
    body = item if op == "=" else item[len(op):]
    key, sep, text = body.partition("=")
    if (not sep and op != "~") or not key or key[0] in "+~" or \
            any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}': expected KEY.PATH=VALUE, +KEY.PATH=VALUE (add), "
                          f"++KEY.PATH=VALUE (add or override) or ~KEY.PATH (delete)")
    if key.split(".")[0] == BASE_KEY:
        raise ConfigError(f"override '{item}': {BASE_KEY} works only inside a config file (its "
                          f"bases are merged when the file is read); write it in the file -c "
                          f"names, or pass that base file with -c")
    return Override(item, op, key, text if sep else None)


COMPONENT_SECTIONS = ("arch", "data_loader", "optimizer", "lr_scheduler", "loss")


def _schema_key(path: list[str]) -> bool:
    """Keys the schema knows though a file may lack them: settable without '+'."""
    return (len(path) == 1 and path[0] in TOP_LEVEL) or \
        (len(path) == 2 and path[0] == "trainer" and path[1] in TRAINER) or \
        (len(path) == 2 and path[0] in COMPONENT_SECTIONS and path[1] in ("type", "args"))


def _no_such_key(parts: list[str], node: dict, op: str, source: str) -> ConfigError:
    """'trainer.epochz: no such key; did you mean 'trainer.epochs'?' (only what would work)."""
    where, prefix = ".".join(parts), "".join(f"{p}." for p in parts[:-1])
    choices = [str(k) for k in node]
    if parts[:-1] == ["trainer"] or not parts[:-1]:
        choices += [k for k in (TRAINER if parts[:-1] else TOP_LEVEL) if k not in node]
    close = difflib.get_close_matches(parts[-1], choices, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean '{prefix}{close[0]}'?"
    elif op == "~":
        hint = ""
    elif parts[:-1] == ["trainer"]:
        hint = f" (expected one of: {', '.join(TRAINER)})"
    else:
        hint = f" (write +{where}=... to add a new key)"
    return ConfigError(f"{source}{where}: no such key{hint}")


def _parent(config: dict, parts: list[str], create: bool, source: str) -> Any:
    """The mapping or list that holds parts[-1]; missing mappings made when `create` (and
    for the schema's own sections, e.g. lr_scheduler.type=StepLR when lr_scheduler is null)."""
    node: Any = config
    for i, part in enumerate(parts[:-1]):
        path = parts[:i + 1]
        if isinstance(node, list) and part.lstrip("-").isdigit():
            if not -len(node) <= int(part) < len(node):
                raise ConfigError(f"{source}{'.'.join(path)}: index out of range "
                                  f"(list of {len(node)})")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            break
        if node.get(part) is None:
            if part not in node and not (create or _schema_key(path)):
                raise _no_such_key(path, node, "=", source)
            if create or _schema_key(path):
                node[part] = {}
        node = node[part]
    if not (isinstance(node, dict) or (isinstance(node, list) and parts[-1].lstrip("-").isdigit())):
        raise ConfigError(f"{source}{'.'.join(parts)}: cannot set a key inside a "
                          f"{type(node).__name__}")
    return node


def _apply_one(config: dict, op: str, key: str, value: Any, source: str,
               text: str | None = "") -> None:
    """Apply one override (op as in Override) of `key` to `value`; `text` as written."""
    parts = key.split(".")
    node = _parent(config, parts, op in ("+", "++"), source)
    last: Any = parts[-1]
    if isinstance(node, list):
        last = int(last)
        if op == "+":
            raise ConfigError(f"{source}{key}: '+' adds keys to mappings; set the whole list "
                              f"instead ({'.'.join(parts[:-1])}=[...])")
        if not -len(node) <= last < len(node):
            raise ConfigError(f"{source}{key}: index out of range (list of {len(node)})")
    exists = isinstance(node, list) or last in node
    if op == "+" and exists:
        raise ConfigError(f"{source}{key}: already in the config, '+' only adds new keys; "
                          f"write {key}={text} to override it (or ++{key}={text})")
    if op in ("=", "~") and not exists and not (op == "=" and _schema_key(parts)):
        raise _no_such_key(parts, node, op, source)
    if op != "~":
        node[last] = value
    elif text is not None and node[last] != value:
        raise ConfigError(f"{source}{key}: not deleted: its value is {node[last]!r}, "
                          f"not {value!r}")
    else:
        del node[last]


def set_by_path(config: dict, key: str, value: Any, add: bool = False, source: str = "") -> None:
    """Set config[k1][k2]... = value; a missing key is an error unless `add` (then '++')."""
    _apply_one(config, "++" if add else "=", key, value, source)


def has_path(config: dict, key: str) -> bool:
    """Whether config[k1][k2]... exists."""
    return lookup_path(config, key) is not MISSING


def command_overrides(args: Any) -> list[str]:
    """The command line's KEY.PATH=VALUE overrides, with --lr and --bs spelled out as such."""
    overrides = list(getattr(args, "overrides", None) or [])
    if getattr(args, "lr", None) is not None:
        overrides.append(f"optimizer.args.lr={args.lr!r}")
    if getattr(args, "bs", None) is not None:
        overrides.append(f"data_loader.args.batch_size={args.bs}")
    return overrides


def with_defaults(config: dict) -> dict:
    """A copy of `config` with the optional keys of the schema filled in, so that
    overrides may set them without '+' (trainer.keep_last=2, seed=1)."""
    config = copy.deepcopy(config)
    for key, default in defaults(TOP_LEVEL).items():
        config.setdefault(key, default)
    if isinstance(config.get("trainer"), dict):
        for key, default in defaults(TRAINER).items():
            config["trainer"].setdefault(key, default)
    return config


def apply_overrides(config: dict, overrides: list[str], multirun: bool = False,
                    resolve: bool = True) -> dict:
    """A copy of `config` with every override applied (Hydra's forms, see Override), then the
    schema's defaults filled in and (unless `resolve` is false) ${...} interpolations resolved.

    KEY=a,b is a list of choices: an error unless `multirun` (a sweep splits them first)."""
    config = copy.deepcopy(config)
    for item in overrides:
        ov = parse_override(item)
        source = f"override '{item}': "
        if not multirun and ov.text is not None and len(split_choices(ov.text)) > 1:
            raise ConfigError(f"{source}a comma lists choices to sweep: add -m to sweep them; "
                              f"write {ov.key}=[{ov.text}] for a list, or quote the value "
                              f"({ov.key}='{ov.text}') for a string")
        _apply_one(config, ov.op, ov.key, ov.value, source, ov.text)
    config = with_defaults(config)
    return resolve_interpolations(config) if resolve else config
