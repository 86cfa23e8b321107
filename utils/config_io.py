"""Config files (JSON and YAML) and command-line overrides (KEY.PATH=VALUE).

Reading errors name the file, line and column; validation against the
components happens later, in trainer/parse_config.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from utils.errors import ConfigError, did_you_mean
from utils.schema import CONFIG_SUFFIXES, TOP_LEVEL_DEFAULTS, TRAINER_DEFAULTS

# ---------------------------------------------------------------- files

MAX_YAML_NODES = 10_000  # a config's nodes once its aliases are expanded


class _Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads 1e-3 and 1E5 as floats (YAML 1.2 style) and refuses
    a mapping that repeats a key (YAML would let the last one win)."""

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


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"))


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """The node's size once every alias under it is expanded (shared nodes counted once each
    time they are used); ConfigError for a recursive alias or more than MAX_YAML_NODES."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError(f"line {node.start_mark.line + 1}: a YAML alias refers to a node that "
                          f"contains it (a recursive alias)")
    open_nodes.add(id(node))
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
        else node.value if isinstance(node, yaml.SequenceNode) else []
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    if size > MAX_YAML_NODES:
        raise ConfigError(f"line {node.start_mark.line + 1}: YAML aliases expand this config to "
                          f"more than {MAX_YAML_NODES:,} nodes (an alias bomb?)")
    sizes[id(node)] = size
    return size


def yaml_load(text: str) -> Any:
    """Safe YAML with the limits above: no duplicate keys, bounded alias expansion."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
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

    return json.loads(text, object_pairs_hook=refuse_duplicates)


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or YAML config; errors name the file (and line and column)."""
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
    return data


# ---------------------------------------------------------------- overrides

def parse_value(text: str) -> Any:
    """A command-line value, read as a YAML scalar or list ('0.01', 'true', '[64, 32]', 'null')."""
    try:
        return yaml_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def split_override(item: str) -> tuple[str, str, bool]:
    """'+a.b=3' -> ('a.b', '3', True)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected KEY.PATH=VALUE")
    key, text = item.split("=", 1)
    add = key.startswith("+")
    key = key[1:] if add else key
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}': expected KEY.PATH=VALUE")
    return key, text, add


def set_by_path(config: dict, key: str, value: Any, add: bool = False, source: str = "") -> None:
    """Set config[k1][k2]... = value; a missing key is an error unless `add`."""
    parts = key.split(".")
    node: Any = config
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i + 1])
        if isinstance(node, list) and part.lstrip("-").isdigit() and not add:
            idx = int(part)
            if not -len(node) <= idx < len(node):
                raise ConfigError(f"{source}{where}: index out of range (list of {len(node)})")
            if last:
                node[idx] = value
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{source}{where}: cannot set a key inside a {type(node).__name__}")
        if part not in node:
            if not add:
                hint = did_you_mean(part, node)
                raise ConfigError(
                    f"{source}{where}: no such key{hint} (write +{key}=... to add a new key)")
            node[part] = value if last else {}
        elif last:
            node[part] = value
        if not last:
            if node[part] is None and add:
                node[part] = {}
            node = node[part]


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
    for key, default in TOP_LEVEL_DEFAULTS.items():
        config.setdefault(key, copy.deepcopy(default))
    if isinstance(config.get("trainer"), dict):
        for key, default in TRAINER_DEFAULTS.items():
            if key != "epochs":  # the one required trainer key
                config["trainer"].setdefault(key, default)
    return config


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """A copy of `config` (schema defaults filled in) with every KEY.PATH=VALUE applied."""
    config = with_defaults(config)
    for item in overrides:
        key, text, add = split_override(item)
        set_by_path(config, key, parse_value(text), add, source=f"override '{item}': ")
    return config
