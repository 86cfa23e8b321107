"""When a run stops, each decided here once: trainer.max_steps reached, and how often the
training and evaluation loops look for a stop request (a signal, or another rank's)."""

from __future__ import annotations

DIST_STOP_CHECK_EVERY = 10  # batches between the ranks' (collective) stop checks under DDP


def max_steps_reached(max_steps: int | None, steps: int) -> bool:
    """Whether `steps` optimizer steps reach trainer.max_steps (None = no limit)."""
    return max_steps is not None and steps >= max_steps


def stop_check_interval(distributed: bool, accumulate_steps: int = 1) -> int:
    """Batches between two stop checks: every batch in one process; under DDP every
    DIST_STOP_CHECK_EVERY (a collective, so every rank checks at the same batch), counted in
    optimizer steps while training (`accumulate_steps` batches each)."""
    return accumulate_steps * (DIST_STOP_CHECK_EVERY if distributed else 1)
