"""Class weights on imbalanced data: test macro-F1 of wine with most of one class dropped,
trained with `loss.args.weight: auto` and without, over several seeds.

    python benchmarks/class_weights.py [--keep 8] [--seeds 0 1 2 3 4] [--epochs 40]

The data: scikit-learn's wine as a CSV in a temporary folder, keeping only `--keep` of the
59 samples of class 0 (classes 1 and 2 keep their 71 and 48). Each seed trains
config/wine_class_weights.yaml on that CSV (CsvDataLoader, same splits for both variants) once
with weight auto and once with no weight, then evaluates the held-out test split with test.py.
Printed: each run's test macro-F1 and accuracy, and the mean of each variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "wine_class_weights.yaml"


def write_imbalanced_wine(path: Path, keep: int) -> None:
    x, y = load_wine(return_X_y=True)
    rows = np.r_[np.flatnonzero(y == 0)[:keep], np.flatnonzero(y != 0)]
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    lines = [",".join([*(f"{v:.6g}" for v in x[i]), str(y[i])]) for i in rows]
    path.write_text("\n".join([header, *lines]) + "\n")


def run(csv: Path, save: Path, seed: int, epochs: int, weighted: bool) -> dict:
    loader = (f"data_loader={{type: CsvDataLoader, args: {{path: {csv}, target: label, "
              f"task: classification, batch_size: 16, validation_split: 0.15, "
              f"test_split: 0.25}}}}")
    loss = "loss={type: CrossEntropyLoss, args: {weight: auto}}" if weighted else \
        "loss=cross_entropy"
    name = f"cw_{'auto' if weighted else 'none'}_{seed}"
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(CONFIG), loader, loss,
           f"seed={seed}", f"name={name}", f"trainer.epochs={epochs}",
           f"trainer.save_dir={save}", "trainer.verbosity=0"]
    subprocess.run(cmd, check=True, cwd=REPO)
    latest = save / "models" / name / "latest"  # the run just trained
    out = save / f"{name}_test_metrics.json"
    subprocess.run([sys.executable, str(REPO / "test.py"), "-r", str(latest),
                    "--output", str(out)], check=True, cwd=REPO, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "wine_imbalanced.csv"
        write_imbalanced_wine(csv, args.keep)
        results = {True: [], False: []}
        for seed in args.seeds:
            for weighted in (False, True):
                m = run(csv, Path(tmp) / "saved", seed, args.epochs, weighted)
                results[weighted].append(m)
                print(f"seed {seed} weight {'auto' if weighted else 'none'}: "
                      f"f1_macro {m['f1_macro']:.4f} accuracy {m['accuracy']:.4f}", flush=True)
    for weighted in (False, True):
        f1 = [m["f1_macro"] for m in results[weighted]]
        print(f"weight {'auto' if weighted else 'none'}: mean test f1_macro "
              f"{statistics.mean(f1):.4f} over {len(f1)} seeds (min {min(f1):.4f})")


if __name__ == "__main__":
    main()
