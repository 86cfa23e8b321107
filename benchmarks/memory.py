"""Peak memory and per-epoch time of train.py against a plain hand-written loop, at users' sizes.

    python benchmarks/memory.py [--rows 100000 1000000] [--classes 1000] [--mmap-gb 3]

Part 1: the synthetic classification job (50 features, an MLP 256 wide, `--classes`
classes, batch 512, one epoch, no validation) at each `--rows`. Each variant runs alone in a
fresh process, the two alternating: train.py (its main(), in-process, metrics [accuracy]) and
the loop a user would write by hand doing the same work (randperm batches, the running loss
and accuracy on the device). Printed: each one's peak RSS and epoch time, the difference and
ratio, and how much each grew from the smallest to the largest row count.

Part 2: NumpyDataLoader over a generated features.npy of `--mmap-gb` GB (1,024 float32
features a row) in a temporary folder, removed afterwards: train.py trains one epoch and its
peak RSS is set against the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# run as `python benchmarks/memory.py`: the project's folders are imported from the checkout
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import train  # noqa: E402
from benchmarks.plain_loop import plain_train_epoch  # noqa: E402
from trainer.config.parse_config import ConfigParser, validate_config  # noqa: E402
from utils.files import write_json  # noqa: E402

FEATURES, HIDDEN, BATCH = 50, 256, 512
MMAP_FEATURES = 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_config(rows: int, classes: int, save_dir: str) -> dict:
    return {
        "name": "memory_bench", "seed": 0,
        "arch": {"type": "MLP", "args": {"in_features": FEATURES, "out_features": classes,
                                         "hidden": HIDDEN, "depth": 2}},
        "data_loader": {"type": "SyntheticDataLoader", "args": {
            "n_samples": rows, "n_features": FEATURES, "n_classes": classes,
            "batch_size": BATCH, "validation_split": 0.0, "test_split": 0.0}},
        "optimizer": {"type": "Adam", "args": {"lr": 0.001}},
        "loss": "cross_entropy", "metrics": ["accuracy"],
        "trainer": {"epochs": 1, "save_dir": save_dir, "verbosity": 0, "monitor": "off"},
    }


def run_train_py(config: dict, folder: str) -> dict:
    """train.py's main() in this process on `config`; its epoch time and peak RSS."""
    path = Path(folder) / "config.json"
    write_json(config, path)
    assert train.main(["-c", str(path)]) == 0
    log = next(Path(config["trainer"]["save_dir"]).glob("log/*/*/metrics.csv"))
    seconds = float(log.read_text().splitlines()[-1].split(",")[-1])
    return {"epoch_s": seconds, "peak_mb": peak_rss_mb()}


def run_plain(config: dict) -> dict:
    """The hand-written loop on the same data and model: one epoch, loss and accuracy."""
    parts = ConfigParser(validate_config(config)[0], "bench").build_all()
    x, y = parts.data_loader.dataset.tensors
    start = time.perf_counter()
    plain_train_epoch(parts.model, parts.optimizer, x, y, BATCH)
    return {"epoch_s": time.perf_counter() - start, "peak_mb": peak_rss_mb()}


def make_npy(folder: Path, gigabytes: float) -> int:
    """features.npy of about `gigabytes` GB and targets.npy (10 classes), in chunks."""
    rows = int(gigabytes * 2**30 / (MMAP_FEATURES * 4))
    x = np.lib.format.open_memmap(folder / "features.npy", "w+", np.float32,
                                  (rows, MMAP_FEATURES))
    y = np.lib.format.open_memmap(folder / "targets.npy", "w+", np.int64, (rows,))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 16384):
        chunk = rng.standard_normal((min(16384, rows - start), MMAP_FEATURES), np.float32)
        x[start:start + len(chunk)] = chunk
        y[start:start + len(chunk)] = (chunk[:, 0] > 0) + 2 * (chunk[:, 1] > 0)
        x.flush()
    del x, y
    return rows


def mmap_config(folder: Path, save_dir: str) -> dict:
    return {
        "name": "memory_bench_mmap", "seed": 0,
        "arch": {"type": "MLP", "args": {"in_features": MMAP_FEATURES, "out_features": 4,
                                         "hidden": 64, "depth": 1}},
        "data_loader": {"type": "NumpyDataLoader", "args": {
            "features": str(folder / "features.npy"), "targets": str(folder / "targets.npy"),
            "batch_size": BATCH, "validation_split": 0.0, "test_split": 0.0}},
        "optimizer": {"type": "Adam", "args": {"lr": 0.001}},
        "loss": "cross_entropy", "metrics": ["accuracy"],
        "trainer": {"epochs": 1, "save_dir": save_dir, "verbosity": 0, "monitor": "off"},
    }


def worker(kind: str, spec: str) -> dict:
    """One measurement in a fresh process: `spec` is 'rows,classes', an .npy folder, or
    'folder,gigabytes' for the file to make."""
    if kind == "make_npy":  # in its own process: writing through a map inflates RSS
        folder, gigabytes = spec.split(",")
        return {"rows": make_npy(Path(folder), float(gigabytes))}
    folder = tempfile.mkdtemp(prefix="memory-bench-")
    if kind == "mmap":
        return run_train_py(mmap_config(Path(spec), folder), folder)
    rows, classes = map(int, spec.split(","))
    config = synthetic_config(rows, classes, folder)
    return run_train_py(config, folder) if kind == "trainer" else run_plain(config)


def measure(kind: str, spec: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--worker", kind, spec], capture_output=True,
                       text=True, env=os.environ)
    if r.returncode != 0:
        sys.exit(f"error: the {kind} worker failed:\n{r.stderr[-3000:]}")
    return read_json_line(r.stdout)


def read_json_line(text: str) -> dict:
    return json.loads(next(line for line in text.splitlines() if line.startswith("{")))


def part_one(rows_list: list[int], classes: int) -> None:
    results = {}
    for rows in rows_list:
        print(f"[{time.strftime('%H:%M:%S')}] {rows:,} rows x {classes:,} classes: "
              "plain loop, then train.py ...", flush=True)
        plain = measure("plain", f"{rows},{classes}")
        trainer = measure("trainer", f"{rows},{classes}")
        results[rows] = (plain, trainer)
        for label, r in (("plain:   ", plain), ("train.py:", trainer)):
            print(f"  {label} peak RSS {r['peak_mb']:8.1f} MB, epoch {r['epoch_s']:.2f} s")
        print(f"  peak RSS train.py - plain: {trainer['peak_mb'] - plain['peak_mb']:+.1f} MB; "
              f"epoch time ratio train.py/plain: {trainer['epoch_s'] / plain['epoch_s']:.3f}",
              flush=True)
    if len(rows_list) > 1:
        low, high = results[min(rows_list)], results[max(rows_list)]
        growth = [h["peak_mb"] - lo["peak_mb"] for lo, h in zip(low, high)]
        print(f"growth of peak RSS from {min(rows_list):,} to {max(rows_list):,} rows: plain "
              f"{growth[0]:+.1f} MB, train.py {growth[1]:+.1f} MB", flush=True)


def part_two(gigabytes: float) -> None:
    with tempfile.TemporaryDirectory(prefix="memory-bench-npy-") as folder:
        print(f"[{time.strftime('%H:%M:%S')}] writing a {gigabytes:g} GB features.npy ...",
              flush=True)
        rows = measure("make_npy", f"{folder},{gigabytes}")["rows"]
        size_mb = (Path(folder) / "features.npy").stat().st_size / 2**20
        print(f"[{time.strftime('%H:%M:%S')}] train.py, NumpyDataLoader, one epoch over {rows:,} "
              f"rows ...", flush=True)
        result = measure("mmap", folder)
        print(f"  memory-mapped: file {size_mb:,.0f} MB, peak RSS {result['peak_mb']:.1f} MB "
              f"(file / peak RSS = {size_mb / result['peak_mb']:.2f}), epoch "
              f"{result['epoch_s']:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--mmap-gb", type=float, default=3.0, help="0 skips part 2")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    part_one(sorted(args.rows), args.classes)
    if args.mmap_gb > 0:
        part_two(args.mmap_gb)


if __name__ == "__main__":
    main()
