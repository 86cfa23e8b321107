"""The values of Hydra's sweeps and override functions: a,b / choice(...), range(...),
interval(...), sort(...), shuffle(...), tag(...), and the casts int/float/str/bool(...).

utils/override_grammar.py parses an override and calls call() for each function in it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from utils.errors import ConfigError

MAX_RANGE = 10_000  # values one range(...) may expand to


class GrammarError(ConfigError):
    """A value Hydra's override grammar does not accept."""



# ---------------------------------------------------------------- sweeps


@dataclass
class Choice:
    """a,b,c or choice(a,b,c): one trial per value (sort/shuffle may reorder them)."""

    values: list
    simple: bool = True  # written a,b,c (not choice(...))
    shuffled: bool = False

    def expand(self) -> list:
        return _shuffled(self.values) if self.shuffled else list(self.values)


@dataclass
class Range:
    """range(start, stop[, step]): Python's range, or exact decimal steps for floats."""

    start: int | float
    stop: int | float
    step: int | float = 1
    shuffled: bool = False

    def expand(self) -> list:
        if self.step == 0:
            raise ConfigError("range(...): the step must not be 0")
        ints = all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (self.start, self.stop, self.step))
        if ints:
            count = max(0, -(-(self.stop - self.start) // self.step))
        else:
            start, stop, step = (Decimal(v) for v in (self.start, self.stop, self.step))
            count = max(0, int(((stop - start) / step).to_integral_value(rounding="ROUND_CEILING")))
        if count > MAX_RANGE:
            raise ConfigError(f"range(...) expands to {count} values; at most {MAX_RANGE}")
        if ints:
            values = list(range(self.start, self.stop, self.step))
        else:
            values, at = [], start
            while (at < stop) if step > 0 else (at > stop):  # decimal steps, as Hydra takes them
                values.append(float(at))
                at += step
        return _shuffled(values) if self.shuffled else values


@dataclass
class Interval:
    """interval(low, high): a continuous range, for random and Optuna sweeps only."""

    low: int | float
    high: int | float
    tags: set = field(default_factory=set)  # tag(log, interval(...)): log scale

    @property
    def distribution(self) -> str:
        kind = "int_" if all(isinstance(v, int) for v in (self.low, self.high)) else ""
        return f"{kind}{'log_' if 'log' in self.tags else ''}uniform"


Sweep = Choice | Range | Interval


def _shuffled(values: list) -> list:
    """A shuffled copy, the same order every time for the same values (so that running a
    sweep's command again finds its trials)."""
    values = list(values)
    random.Random(repr(values)).shuffle(values)
    return values


# ---------------------------------------------------------------- functions


def _one(name: str, args: list, kwargs: dict, key: str = "value") -> Any:
    """The value a cast or sort/shuffle works on: one argument, or a,b,... as a Choice."""
    if key in kwargs:
        if args:
            raise GrammarError(f"{name}(...): both positional arguments and {key}=")
        return kwargs.pop(key)
    if not args:
        raise GrammarError(f"{name}(...): no value given")
    return args[0] if len(args) == 1 else Choice(list(args), simple=True)


def _cast(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _cast(name, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cast(name, v) for v in value]
    if isinstance(value, Choice):
        return Choice([_cast(name, v) for v in value.values], value.simple, value.shuffled)
    if isinstance(value, Range):
        if name not in ("int", "float"):
            raise GrammarError(f"{name}(range(...)): a range casts only to int or float")
        return Range(*(_cast(name, v) for v in (value.start, value.stop, value.step)),
                     shuffled=value.shuffled)
    if isinstance(value, Interval):
        if name not in ("int", "float"):
            raise GrammarError(f"{name}(interval(...)): an interval casts only to int or float")
        return Interval(_cast(name, value.low), _cast(name, value.high), set(value.tags))
    try:
        if name == "int":
            return int(value)
        if name == "float":
            return float(value)
        if name == "str":
            return str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"cannot cast '{value}' to bool")
            return value.lower() == "true"
        return bool(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise GrammarError(f"{name}({value!r}): {e}") from None


def _sorted(value: Any, reverse: bool) -> Any:
    if isinstance(value, Range):
        step = abs(value.step)
        if not reverse and value.start > value.stop:
            return Range(value.stop + step, value.start + step, -value.step, value.shuffled)
        if reverse and value.start < value.stop:
            return Range(value.stop - step, value.start - step, -value.step, value.shuffled)
        return value
    values = value.values if isinstance(value, Choice) else value
    try:
        ordered = sorted(values, reverse=reverse)
    except TypeError:
        raise GrammarError("sort(...): the values cannot be compared (mixed types)") from None
    return Choice(ordered, value.simple, value.shuffled) if isinstance(value, Choice) \
        else ordered


def _number(name: str, what: str, value: Any) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise GrammarError(f"{name}(...): {what} must be a number, got {value!r}")
    return value


def call(name: str, args: list, kwargs: dict) -> Any:
    """Hydra's override functions: sweeps, sort/shuffle and casts."""
    given = dict(kwargs)

    def done(value: Any) -> Any:
        if given:
            raise GrammarError(f"{name}(...): unexpected argument {next(iter(given))}=")
        return value

    if name in ("int", "float", "str", "bool"):
        return done(_cast(name, _one(name, args, given)))
    if name == "choice":
        if given:
            return done(None)
        if not args:
            raise GrammarError("choice(): at least one value is needed")
        if len(args) == 1 and isinstance(args[0], Choice):
            if not args[0].simple:
                raise GrammarError("choice(choice(...)): nested choices are not supported")
            return Choice(args[0].values, False, args[0].shuffled)
        if any(isinstance(a, Choice | Range | Interval) for a in args):
            raise GrammarError("choice(...): a sweep cannot be one of its values")
        return Choice(list(args), simple=False)
    if name == "range":
        names = ("start", "stop", "step")
        if len(args) > 3:
            raise GrammarError("range(...): at most 3 arguments (start, stop, step)")
        bound = dict(zip(names, args))
        for k in names:
            if k in given:
                if k in bound:
                    raise GrammarError(f"range(...): {k} given twice")
                bound[k] = given.pop(k)
        done(None)
        if "start" not in bound:
            raise GrammarError("range(...): needs stop, or start and stop")
        if "stop" not in bound:
            bound = {"start": 0, "stop": bound["start"], "step": bound.get("step", 1)}
        return Range(*(_number("range", k, bound.get(k, 1)) for k in names))
    if name == "interval":
        bound = dict(zip(("start", "end"), args))
        bound.update({k: given.pop(k) for k in ("start", "end") if k in given})
        if len(args) > 2 or set(bound) != {"start", "end"}:
            raise GrammarError("interval(...): expected interval(low, high)")
        done(None)
        return Interval(float(_number("interval", "start", bound["start"])),
                        float(_number("interval", "end", bound["end"])))
    if name in ("sort", "shuffle"):
        reverse = given.pop("reverse", False) if name == "sort" else False
        if "sweep" in given or "list" in given:
            args = [given.pop("sweep", None) or given.pop("list")]
        value = done(_one(name, args, given))
        if isinstance(value, Interval):
            raise GrammarError(f"{name}(interval(...)): an interval has no order")
        if name == "sort":
            return _sorted(value, bool(reverse))
        if isinstance(value, Choice | Range):
            value = Choice(value.values, value.simple) if isinstance(value, Choice) else \
                Range(value.start, value.stop, value.step)
            value.shuffled = True
            return value
        return _shuffled(value) if isinstance(value, list) else [value]
    if name == "tag":
        if not args or not isinstance(args[-1], Choice | Range | Interval) or \
                not all(isinstance(t, str) for t in args[:-1]):
            raise GrammarError("tag(...): expected tag(TAG, ..., SWEEP)")
        sweep = args[-1]
        if isinstance(sweep, Interval):  # tag(log, interval(a,b)): a log scale
            sweep = Interval(sweep.low, sweep.high, set(args[:-1]))
        return done(sweep)  # other tags name a sweep in Hydra's plugins: no effect here
    if name == "glob":
        raise GrammarError("glob(...) selects config group options; this project has no "
                           "config groups (list the values: a,b,c)")
    raise GrammarError(f"unknown function {name}(...) (Hydra's are choice, range, interval, "
                       f"sort, shuffle, tag, int, float, str, bool)")
