"""A model for tests/test_slurm.py: the digits MLP, which (with SLURM_TEST_HOLD=DIR:N in its
environment) holds one process of the job at its N-th training batch until that process's
trainer has received its stop signal, so that the signal SLURM sends lands mid-training
whatever the machine's speed. Only the first process to reach the batch holds (it claims
DIR/holding); later starts and other processes train on. Without the variable it is MLP."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from model.model import MLP

HOLD_LIMIT = 240  # seconds a held batch waits for its signal at most


def _stop_requested() -> bool:
    """Whether this process's trainer has noted a stop signal (its handler is a bound
    method of the trainer, which records the signal in `stop_signal`)."""
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        trainer = getattr(signal.getsignal(signum), "__self__", None)
        if getattr(trainer, "stop_signal", None) is not None:
            return True
    return False


class HeldMLP(MLP):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._batches = 0

    def forward(self, *args):
        if self.training and os.environ.get("SLURM_TEST_HOLD"):
            self._batches += 1
            folder, n = os.environ["SLURM_TEST_HOLD"].rsplit(":", 1)
            if self._batches == int(n):
                self._hold(Path(folder))
        return super().forward(*args)

    def _hold(self, folder: Path) -> None:
        try:
            fd = os.open(folder / "holding", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return  # held once already (an earlier start, another process)
        ids = {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID",
                                               "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
                                               "RANK")}
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "time": time.time(), **ids}, f)
        deadline = time.monotonic() + HOLD_LIMIT
        while not _stop_requested() and time.monotonic() < deadline:
            time.sleep(0.05)
        (folder / "held").write_text(json.dumps({"signalled": _stop_requested(),
                                                 "time": time.time(), **ids}))
