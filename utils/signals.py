"""Stop signals: which ones the project handles and the exit code each one ends with."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# SIGINT (Ctrl-C), SIGTERM and SIGUSR1 (what SLURM's --signal sends before a time limit) stop
# a run after saving a checkpoint; the exit code (128 + signal number) says which
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR1: 138}


def exit_code(signum: int | None) -> int:
    """The exit code of a run stopped by `signum` (130 when unknown)."""
    return EXIT_CODES.get(signum, 130)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextmanager
def stop_signals_handled(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Route the stop signals to `handler` inside the block, then restore the old handlers.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    try:
        previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    except ValueError:
        previous = {}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
