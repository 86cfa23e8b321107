"""Command-line override items (KEY=V, +KEY=V, ++KEY=V, ~KEY): parsed by Hydra's grammar
(utils/override_grammar.py) and applied as Hydra applies them (utils/config_io.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from utils.config_compose import BASE_KEY
from utils.config_limits import check_config_limits
from utils.errors import ConfigError
from utils.override_grammar import parse_value_text, split_item
from utils.override_sweeps import Choice, Range


def parse_value(text: str, key: str = "") -> Any:
    """A command-line value as Hydra's override grammar reads it (utils/override_grammar.py):
    '0.01', 'true', '[64, 32]', '{lr: 0.1}', 'null'; a,b / choice(...) / range(...) /
    interval(...) give a sweep (Choice, Range, Interval). An integer beyond 64 bits or nesting
    deeper than MAX_DEPTH is an error naming `key`."""
    try:
        value = parse_value_text(text)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}" if key else str(e)) from None
    for item in sweep_values(value) if isinstance(value, Choice | Range) else [value]:
        check_config_limits(item, key)  # its errors name the key
    return value


def sweep_values(value: Any) -> list:
    """The values a Choice or Range sweeps over, in order (one value: itself)."""
    return value.expand() if isinstance(value, Choice | Range) else [value]


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
        """The value (a Choice, Range or Interval for a sweep)."""
        return self.parse(self.text or "")

    def parse(self, text: str) -> Any:
        """`text` read as this key's value; an error names the override (cut short: it may
        be long)."""
        try:
            return parse_value(text, self.key)
        except ConfigError as e:
            item = self.item if len(self.item) <= 60 else self.item[:57] + "..."
            raise ConfigError(f"override '{item}': {e}") from None


def parse_override(item: str) -> Override:
    """'++a.b=3' -> Override(op='++', key='a.b', text='3')."""
    try:
        op, key, text = split_item(item)
    except ConfigError as e:
        raise ConfigError(f"override '{item}': {e}") from None
    if key.split(".")[0] == BASE_KEY:
        raise ConfigError(f"override '{item}': {BASE_KEY} works only inside a config file (its "
                          f"bases are merged when the file is read); write it in the file -c "
                          f"names, or pass that base file with -c")
    return Override(item, op, key, text)


def sweep_error(ov: Override, value: Any) -> ConfigError:
    """The one line for a sweep value in a run without -m."""
    what = "a comma lists choices" if isinstance(value, Choice) and value.simple else \
        f"{type(value).__name__.lower()}(...) is a sweep"
    hint = f"; write {ov.key}=[{ov.text}] for a list, or quote the value ({ov.key}='{ov.text}') " \
        f"for a string" if isinstance(value, Choice) and value.simple else ""
    return ConfigError(f"override '{ov.item}': {what} to sweep: add -m (--multirun) to sweep "
                       f"{'them' if hint else 'it'}{hint}")


def merged_value(old: Any, new: Any) -> Any:
    """What KEY=VALUE leaves at KEY, as Hydra (OmegaConf.update with merge): a mapping merges
    into a mapping key by key (recursively); anything else replaces."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    merged = dict(old)
    for k, v in new.items():
        merged[k] = merged_value(merged.get(k), v)
    return merged
