"""The two kinds of failure a user sees (docs/errors.md).

ConfigError: a bad config, command line or checkpoint -> exit 2, one line.
RunError: a failure while running (NaN loss, no network) -> exit 1, one line.
Anything else is a bug and keeps its traceback.
"""

import difflib
import sys
from collections.abc import Iterable


class ConfigError(Exception):
    """The user's config, command line or checkpoint is wrong (exit code 2)."""


class RunError(Exception):
    """Training or evaluation failed while running (exit code 1)."""


class ArgError(ValueError):
    """A component (model, data loader, loss, metric) rejects one of its arguments.

    Components raise it (or a plain ValueError) with the reason; the builder in
    trainer/config/parse_config.py adds the config key path, e.g. `data_loader.args`
    + `dataset` -> `data_loader.args.dataset: ...`, and raises ConfigError.
    """

    def __init__(self, arg: str, reason: str):
        super().__init__(reason)
        self.arg = arg


def report(error: ConfigError | RunError) -> int:
    """Print a user-facing error as one `error:` line on stderr; return its exit code."""
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, ConfigError) else 1


def missing_dependency(error: ModuleNotFoundError) -> int:
    """One `error:` line for a package this Python lacks (torch, ...); exit code 1."""
    print(f"error: the package '{error.name}' is not installed for {sys.executable}: activate "
          f"the project's environment (source .venv/bin/activate) or install the project "
          f"there (pip install torch==2.13.0 && pip install -e .)", file=sys.stderr)
    return 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(what: str, name: str, choices: Iterable[str]) -> str:
    """Message for a name that does not resolve: suggestion plus the full list."""
    choices = sorted(choices)
    listing = ", ".join(choices) if len(choices) <= 40 else ", ".join(choices[:40]) + ", ..."
    return f"unknown {what} '{name}'{did_you_mean(name, choices)} (available: {listing})"


def check_keys(mapping: dict, allowed: Iterable[str], where: str) -> None:
    """ConfigError for the first key of `mapping` not in `allowed`, with a did-you-mean."""
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key{did_you_mean(str(key), allowed)} "
                              f"(expected one of: {', '.join(allowed)})")
