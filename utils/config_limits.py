"""What a config may hold: integers that fit in 64 bits, and at most 100 levels of nesting.

Checked before anything recursive touches a config (JSON's and YAML's parsers,
copy.deepcopy, the merges of _base_, the ${...} resolver), so a crafted file,
override or stored config is one error line, never a RecursionError, and an
integer literal too long for Python's int-string limit is never converted.
utils/config_io.py uses these while reading files and override values;
check_config_limits() walks any config without recursion.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from utils.errors import ConfigError

MAX_DEPTH = 100  # nested mappings and lists, the top-level mapping being the first
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_YAML_NODES = 10_000  # a config's nodes once its aliases are expanded
MAX_INT_DIGITS = 19  # a literal with more digits is never converted (the sign aside)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class OversizedInt:
    """An integer literal too long to be a 64-bit integer, kept unconverted by the readers
    so that check_config_limits() can name its key."""

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits:,} digits>"


def read_int(text: str) -> int | OversizedInt:
    """An integer literal (JSON's parse_int, YAML's int constructor after its own cleaning):
    converted only when it can fit in 64 bits."""
    digits = len(text.lstrip("+-").lstrip("0"))
    return OversizedInt(digits) if digits > MAX_INT_DIGITS else int(text)


def depth_error(where: str) -> ConfigError:
    return ConfigError(f"{where}nesting deeper than {MAX_DEPTH} levels (mappings and lists "
                       f"inside each other); a config needs far fewer")


def check_json_depth(text: str) -> None:
    """Refuse JSON text nested deeper than MAX_DEPTH before the parser recurses into it
    (brackets inside strings do not count)."""
    bare = _JSON_STRING.sub('""', text)  # JSON strings hold no newline: lines stay
    depth = 0
    for match in _JSON_BRACKET.finditer(bare):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise depth_error(f"line {bare.count(chr(10), 0, match.start()) + 1}: ")
        else:
            depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, tuple[int, int]], open_nodes: set[int],
                   level: int = 1) -> tuple[int, int]:
    """The node's size once every alias under it is expanded (shared nodes counted once each
    time they are used), and its height in mappings and sequences; ConfigError for a
    recursive alias, more than MAX_YAML_NODES, or aliases nesting deeper than MAX_DEPTH
    (`level`: the node's own level, were it a mapping or sequence)."""
    if id(node) in sizes:
        size, height = sizes[id(node)]
        if level + height - 1 > MAX_DEPTH:
            raise depth_error(f"line {node.start_mark.line + 1}: through YAML aliases, ")
        return size, height
    if id(node) in open_nodes:
        raise ConfigError(f"line {node.start_mark.line + 1}: a YAML alias refers to a node that "
                          f"contains it (a recursive alias)")
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
        else node.value if isinstance(node, yaml.SequenceNode) else None
    if children is not None and level > MAX_DEPTH:
        raise depth_error(f"line {node.start_mark.line + 1}: through YAML aliases, ")
    open_nodes.add(id(node))
    size, height = 1, 0
    for child in children or []:
        child_size, child_height = _expanded_size(child, sizes, open_nodes, level + 1)
        size, height = size + child_size, max(height, child_height)
    open_nodes.discard(id(node))
    if size > MAX_YAML_NODES:
        raise ConfigError(f"line {node.start_mark.line + 1}: YAML aliases expand this config to "
                          f"more than {MAX_YAML_NODES:,} nodes (an alias bomb?)")
    sizes[id(node)] = size, height + (children is not None)
    return sizes[id(node)]


def check_yaml_expansion(node: yaml.Node) -> None:
    """A composed YAML document, before it is constructed: its aliases expand it to at most
    MAX_YAML_NODES nodes and MAX_DEPTH levels, and none refers to a node containing it."""
    _expanded_size(node, {}, set())


def _int_problem(value: Any) -> str | None:
    """What is wrong with an integer beyond 64 bits (None for anything else)."""
    if isinstance(value, OversizedInt):
        return f"an integer of {value.digits:,} digits"
    if isinstance(value, int) and not isinstance(value, bool) and \
            not INT64_MIN <= value <= INT64_MAX:
        bits = value.bit_length()  # str() of a huge int hits Python's int-string limit
        digits = f"{len(str(abs(value))):,}" if bits < 10_000 else f"about {bits * 3 // 10:,}"
        return f"an integer of {digits} digits"
    return None


def _at(path: str) -> str:
    """'a.b.c: ' for an error's key path (a long one shortened), '' for none."""
    if not path:
        return ""
    parts = path.split(".")
    return (path if len(parts) <= 8 else ".".join([*parts[:6], "...", parts[-1]])) + ": "


def check_config_limits(config: Any, where: str = "") -> None:
    """Walk `config` (without recursion): every integer fits in 64 bits and nothing is nested
    deeper than MAX_DEPTH; the error names the key path (under `where`)."""
    stack = [(config, where, 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise depth_error(_at(path))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                problem = _int_problem(key)
                if problem:
                    raise ConfigError(f"{_at(path)}a key that is {problem}; integers must fit "
                                      f"in 64 bits")
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
            continue
        problem = _int_problem(value)
        if problem:
            raise ConfigError(f"{_at(path)}{problem}; integers must fit in 64 bits "
                              f"({INT64_MIN} to {INT64_MAX})")
