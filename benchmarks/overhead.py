"""Per-epoch time and memory of the project's Trainer against a plain hand-written loop.

    python benchmarks/overhead.py -c config/digits_mlp.json [--epochs 20] [--reps 5]
                                  [--save-period 1] [KEY.PATH=VALUE ...]

Both variants run the same model, data, optimizer, batch size, training and
validation work. Time: one process builds both (same seed, so identical
starts) and alternates them, `--reps` blocks of `--epochs` epochs each after a
warm-up, so start-up noise and CPU drift fall on both alike; the medians of
the blocks' per-epoch times and their ratio are printed. Memory: each variant
then runs alone in a fresh process for `--mem-epochs` epochs, reporting its
peak RSS and how much its RSS grew after the warm-up.

The plain loop reads loss and accuracy; give the Trainer the same work with
`metrics=[accuracy]` when the config lists more metrics.

Checkpointing: off by default (trainer.save_period beyond the run, and
trainer.monitor off, so no model_best.pth either); `--save-period N` writes a
checkpoint every N epochs and keeps the config's monitor (model_best.pth on
every improvement). One save is also timed on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# run as `python benchmarks/overhead.py`: the project's folders are imported from the checkout
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from base.base_data_loader import batches_on  # noqa: E402
from benchmarks.plain_loop import EpochRunner, alternating_seconds, plain_train_epoch  # noqa: E402
from logger.logger import setup_logging  # noqa: E402
from trainer.config.parse_config import ConfigParser  # noqa: E402
from trainer.loop.trainer import Trainer  # noqa: E402
from trainer.run.run_folder import create_run_folder  # noqa: E402
from utils.checkpoint import save_atomic  # noqa: E402

WARMUP_EPOCHS = 2


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(args, epochs: int):
    """The config's components, with outputs in a temporary folder and quiet logs."""
    tmp = tempfile.mkdtemp(prefix="overhead-")
    checkpoints = ([f"trainer.save_period={args.save_period}"] if args.save_period
                   else ["trainer.save_period=1000000", "trainer.monitor=off"])
    ns = argparse.Namespace(config=args.config, resume=None, lr=None, bs=None, overrides=[
        *args.overrides, f"trainer.save_dir={tmp}", "trainer.verbosity=0",
        f"trainer.epochs={epochs}", *checkpoints, "trainer.early_stop=0",
        "trainer.tensorboard=false"])
    config = ConfigParser.from_args(ns)
    return config, config.build_all()


class TrainerRunner:
    """The project's Trainer (batches finished on its device, as train.py does); `run(n)`
    trains the next n epochs."""

    def __init__(self, config, parts):
        setup_logging(0)
        device = torch.device("cpu")
        batches_on(device, parts.data_loader, parts.valid_data_loader)
        self.trainer = Trainer(parts.model, parts.criterion, parts.metrics, parts.optimizer,
                               config, device, parts.data_loader, parts.valid_data_loader,
                               parts.lr_scheduler, run_folder=create_run_folder(config))
        self.done = 0

    def run(self, epochs: int) -> None:
        t = self.trainer
        t.start_epoch, t.epochs = self.done + 1, self.done + epochs
        t.train()
        self.done += epochs

    def save_seconds(self) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            save_atomic(self.trainer._state(self.done, 0.0), self.trainer.checkpoint_dir /
                        "bench.pth")
            times.append(time.perf_counter() - start)
        return statistics.median(times)


class PlainRunner(EpochRunner):
    """The loop a user would write by hand: randperm indexing, same train + validation work."""

    def __init__(self, config, parts):
        data_loader, valid_loader = parts.data_loader, parts.valid_data_loader
        self.model, self.optimizer = parts.model, parts.optimizer
        self.scheduler = parts.lr_scheduler
        x_all, y_all = data_loader.dataset.tensors
        self.x, self.y = x_all[data_loader.indices], y_all[data_loader.indices]
        self.xv, self.yv = x_all[valid_loader.indices], y_all[valid_loader.indices]
        self.bs = data_loader.batch_sampler.batch_size

    def epoch(self) -> tuple:
        model, xv, yv, bs = self.model, self.xv, self.yv, self.bs
        loss, accuracy = plain_train_epoch(model, self.optimizer, self.x, self.y, bs)
        model.eval()
        with torch.no_grad():
            vloss, vcorrect = torch.zeros(()), torch.zeros((), dtype=torch.long)
            for i in range(0, len(xv), bs):
                out = model(xv[i:i + bs])
                vloss += F.cross_entropy(out, yv[i:i + bs], reduction="sum")
                vcorrect += (out.argmax(1) == yv[i:i + bs]).sum()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, accuracy, vloss.item() / len(xv), vcorrect.item() / len(xv)


def time_worker(args) -> dict:
    total = WARMUP_EPOCHS + args.reps * args.epochs
    trainer = TrainerRunner(*build(args, total))
    plain = PlainRunner(*build(args, total))
    trainer.run(WARMUP_EPOCHS)
    plain.run(WARMUP_EPOCHS)
    times = alternating_seconds(trainer, plain, args.reps, args.epochs)
    return {"times": times, "save": trainer.save_seconds(),
            "batches": len(trainer.trainer.data_loader)}


def memory_worker(args) -> dict:
    cls = TrainerRunner if args.worker == "trainer" else PlainRunner
    runner = cls(*build(args, WARMUP_EPOCHS + args.mem_epochs))
    runner.run(WARMUP_EPOCHS)
    start = rss_mb()
    runner.run(args.mem_epochs)
    return {"growth": rss_mb() - start, "peak": peak_rss_mb()}


def launch(args, worker: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", worker, "-c", args.config,
           "--epochs", str(args.epochs), "--reps", str(args.reps),
           "--mem-epochs", str(args.mem_epochs), "--save-period", str(args.save_period),
           *args.overrides]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: the {worker} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per timed block")
    parser.add_argument("--reps", type=int, default=5, help="timed blocks per variant")
    parser.add_argument("--mem-epochs", type=int, default=50,
                        help="epochs of each memory run (0 = skip the memory runs)")
    parser.add_argument("--save-period", type=int, default=0,
                        help="checkpoint every N epochs in the Trainer (default: off)")
    parser.add_argument("--worker", choices=["time", "trainer", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE")
    args = parser.parse_args(argv)
    if args.worker:
        work = time_worker if args.worker == "time" else memory_worker
        print(json.dumps(work(args)))
        return 0

    timing = launch(args, "time")
    med = {m: statistics.median(ts) for m, ts in timing["times"].items()}
    print(f"config: {args.config} {' '.join(args.overrides)}".rstrip())
    print(f"{timing['batches']} training batches per epoch; {args.reps} blocks of {args.epochs} "
          f"epochs per variant, alternating in one process; checkpoint every "
          f"{args.save_period or 'never'} epochs")
    for m in ("plain", "trainer"):
        blocks = ", ".join(f"{t * 1000:.2f}" for t in timing["times"][m])
        print(f"{m + ':':9} {med[m] * 1000:9.2f} ms/epoch (median of blocks: {blocks})")
    print(f"ratio trainer/plain: {med['trainer'] / med['plain']:.3f}")
    print(f"one checkpoint save: {timing['save'] * 1000:.2f} ms")
    if args.mem_epochs:
        mem = {m: launch(args, m) for m in ("plain", "trainer")}
        for m in ("plain", "trainer"):
            print(f"{m + ':':9} peak RSS {mem[m]['peak']:7.1f} MB, RSS growth over "
                  f"{args.mem_epochs} epochs after warm-up {mem[m]['growth']:+.1f} MB")
        difference = mem["trainer"]["peak"] - mem["plain"]["peak"]
        print(f"peak RSS difference trainer-plain: {difference:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
