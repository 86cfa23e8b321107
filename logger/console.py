"""What the console shows of a run: one compact line per epoch, and the commands that come next.

metrics.csv and info.log keep every value; the console keeps to what a person reads while a
run goes on (the loss, the validation metrics, the learning rate, the time, what was saved),
4 significant digits, at most MAX_WIDTH characters a line.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

MAX_WIDTH = 120
SEP = "  "


def fmt(value: object) -> str:
    """A number with 4 significant digits (integers as they are)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def shown_metrics(row: dict, monitor: str | None, extra: tuple[str, ...] = ()) -> list[str]:
    """The row's keys an epoch line shows, most important first: the training loss, the
    monitored metric, val_loss, `extra` (keys the run's callbacks added, e.g. grad_norm),
    then the other validation metrics."""
    keys = ["loss"]
    for key in (monitor, "val_loss", *extra):
        if key and key in row and key not in keys:
            keys.append(key)
    return keys + [k for k in row if k.startswith("val_") and k not in keys]


def epoch_line(row: dict, epochs: int, monitor: str | None = None,
               saved: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> str:
    """'epoch 3/30  loss 0.5313  val_loss 0.4421  val_accuracy 0.905  lr 0.001  0.07s  [best]'

    `saved` names what was written after the epoch ('ckpt', 'best'); `extra`, keys of the row
    that callbacks added (shown after val_loss). Metrics that do not fit in
    MAX_WIDTH are left out, the least important first (metrics.csv has them all)."""
    keys = shown_metrics(row, monitor, extra)
    head = f"epoch {row['epoch']}/{epochs}"
    tail = [f"lr {fmt(row['lr'])}", f"{row['seconds']:.2f}s"]
    if saved:
        tail.append("[" + "+".join(saved) + "]")
    while True:
        middle = [f"{k} {fmt(row[k])}" for k in keys]
        line = SEP.join([head, *middle, *tail])
        if len(line) <= MAX_WIDTH or len(keys) <= 1:
            return line[:MAX_WIDTH]
        keys.pop()


def shell_path(path: str | Path) -> str:
    """A path as it pastes into a shell (quoted when it holds spaces or such)."""
    return shlex.quote(str(path))


def resume_hint(launch: str, checkpoint: str | Path, extra: str = "") -> str:
    """The command that goes on from `checkpoint` ('python train.py -r PATH ...')."""
    return f"{launch} -r {shell_path(checkpoint)}" + (f" {extra}" if extra else "")


def next_commands(best: Path | None, last: Path | None, epochs: int, launch: str) -> list[str]:
    """The lines a finished run ends with: how to evaluate it and how to train on.

    trainer.epochs is the total number of epochs, so training on needs a larger one."""
    lines = []
    evaluate = best or last
    if evaluate is not None:
        lines.append(f"evaluate:     python test.py -r {shell_path(evaluate)}")
    if last is not None:
        lines.append("train longer: " + resume_hint(launch, last, f"trainer.epochs={2 * epochs}"))
    return lines


class Heartbeat:
    """Progress where no terminal shows a bar (a log file, CI, a pipe): a line at most every
    `every_s` seconds with the batch, the time so far and an estimate of what is left."""

    def __init__(self, total: int, desc: str, every_s: float, clock=time.monotonic):
        self.total, self.desc, self.every_s, self.clock = total, desc, every_s, clock
        self.done = 0
        self.start = self.last = clock()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        print(f"{self.desc}: batch {self.done}/{self.total}, {elapsed:.0f}s elapsed, "
              f"~{left:.0f}s left", flush=True)

    def close(self) -> None:
        pass
