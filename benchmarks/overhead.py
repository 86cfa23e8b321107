"""Per-epoch time of the project's Trainer against a plain hand-written loop.

    python benchmarks/overhead.py -c config/digits_mlp.json [--epochs 20] [--reps 5]
                                  [--save-period 1] [KEY.PATH=VALUE ...]

Both run the same model, data, optimizer, batch size, training and validation
work, each in its own fresh process (alternating, `--reps` times, after a
warm-up), timed in-process so start-up noise is excluded. Prints the median
per-epoch time of each, their ratio, peak RSS, and the time of one checkpoint
save. `--save-period` sets trainer.save_period (default: never within the run).
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

REPO = Path(__file__).resolve().parent.parent
WARMUP_EPOCHS = 2


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(args):
    """The config's components, with outputs in a temporary folder and quiet logs."""
    sys.path.insert(0, str(REPO))
    from train import build as build_components
    from utils.parse_config import ConfigParser

    tmp = tempfile.mkdtemp(prefix="overhead-")
    save_period = args.save_period or 10**6
    ns = argparse.Namespace(config=args.config, resume=None, lr=None, bs=None, overrides=[
        *args.overrides, f"trainer.save_dir={tmp}", "trainer.verbosity=0",
        f"trainer.epochs={WARMUP_EPOCHS + args.epochs}", f"trainer.save_period={save_period}",
        "trainer.early_stop=0", "trainer.tensorboard=false"])
    config = ConfigParser.from_args(ns)
    return config, build_components(config)


def run_trainer(config, parts, epochs: int) -> dict:
    import torch

    from logger.logger import setup_logging
    from trainer import Trainer
    from utils.checkpoint import save_atomic

    data_loader, valid_loader, model, criterion, metrics, optimizer, scheduler = parts
    config.make_run_dirs()
    setup_logging(0)
    trainer = Trainer(model, criterion, metrics, optimizer, config, torch.device("cpu"),
                      data_loader, valid_loader, scheduler)
    trainer.epochs = WARMUP_EPOCHS
    trainer.train()
    rss_start = rss_mb()
    trainer.start_epoch, trainer.epochs = WARMUP_EPOCHS + 1, WARMUP_EPOCHS + epochs
    start = time.perf_counter()
    trainer.train()
    per_epoch = (time.perf_counter() - start) / epochs
    saves = []
    for _ in range(5):
        t = time.perf_counter()
        save_atomic(trainer._state(trainer.epochs, 0.0), config.save_dir / "bench.pth")
        saves.append(time.perf_counter() - t)
    return {"per_epoch": per_epoch, "rss_start": rss_start, "rss_end": rss_mb(),
            "save": statistics.median(saves)}


def run_plain(config, parts, epochs: int) -> dict:
    """The loop a user would write by hand: randperm indexing, same train + validation work."""
    import torch
    import torch.nn.functional as F

    data_loader, valid_loader, model, _, _, optimizer, scheduler = parts
    x_all, y_all = data_loader.dataset.tensors
    x, y = x_all[data_loader.indices], y_all[data_loader.indices]
    xv, yv = x_all[valid_loader.indices], y_all[valid_loader.indices]
    bs = data_loader.batch_sampler.batch_size

    def epoch() -> None:
        model.train()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        perm = torch.randperm(len(x))
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(yb)
            correct += (out.argmax(1) == yb).sum()
        model.eval()
        with torch.no_grad():
            vloss, vcorrect = torch.zeros(()), torch.zeros((), dtype=torch.long)
            for i in range(0, len(xv), bs):
                out = model(xv[i:i + bs])
                vloss += F.cross_entropy(out, yv[i:i + bs], reduction="sum")
                vcorrect += (out.argmax(1) == yv[i:i + bs]).sum()
        if scheduler is not None:
            scheduler.step()
        _ = (loss_sum.item() / len(x), correct.item() / len(x), vloss.item() / len(xv),
             vcorrect.item() / len(xv))

    for _ in range(WARMUP_EPOCHS):
        epoch()
    rss_start = rss_mb()
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return {"per_epoch": (time.perf_counter() - start) / epochs, "rss_start": rss_start,
            "rss_end": rss_mb()}


def worker(args) -> None:
    config, parts = build(args)
    result = (run_trainer if args.worker == "trainer" else run_plain)(config, parts, args.epochs)
    result["peak_rss"] = peak_rss_mb()
    result["batches"] = len(parts[0])
    print(json.dumps(result))


def launch(args, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "-c", args.config,
           "--epochs", str(args.epochs), *(["--save-period", str(args.save_period)]
                                           if args.save_period else []), *args.overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--epochs", type=int, default=20, help="timed epochs per repetition")
    parser.add_argument("--reps", type=int, default=5, help="fresh processes per variant")
    parser.add_argument("--save-period", type=int, default=0,
                        help="checkpoint every N epochs in the Trainer (default: off)")
    parser.add_argument("--worker", choices=["trainer", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    results: dict[str, list[dict]] = {"plain": [], "trainer": []}
    for rep in range(args.reps):
        for mode in (("plain", "trainer") if rep % 2 == 0 else ("trainer", "plain")):
            results[mode].append(launch(args, mode))
    med = {m: statistics.median(r["per_epoch"] for r in rs) for m, rs in results.items()}
    peak = {m: max(r["peak_rss"] for r in rs) for m, rs in results.items()}
    growth = {m: max(r["rss_end"] - r["rss_start"] for r in rs) for m, rs in results.items()}
    save = statistics.median(r["save"] for r in results["trainer"])
    print(f"config: {args.config} {' '.join(args.overrides)}".rstrip())
    print(f"{results['trainer'][0]['batches']} training batches per epoch, {args.epochs} timed "
          f"epochs x {args.reps} processes per variant, checkpoint every "
          f"{args.save_period or 'never'} epochs")
    for m in ("plain", "trainer"):
        print(f"{m + ':':9} {med[m] * 1000:9.2f} ms/epoch (median)   peak RSS {peak[m]:7.1f} MB"
              f"   RSS growth over the timed epochs {growth[m]:+.1f} MB")
    print(f"ratio trainer/plain: {med['trainer'] / med['plain']:.3f}")
    print(f"peak RSS difference trainer-plain: {peak['trainer'] - peak['plain']:+.1f} MB")
    print(f"one checkpoint save: {save * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
