"""A contributor adds a metric: one function in model/metric.py, named in a config's metrics.
It trains, and its columns in metrics.csv hold what a hand computation over the same samples
(and, for an output metric, the checkpoint's model) gives. In a copy of the checkout."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, copy_checkout

METRICS = '''

def zero_share(output, target):
    """The share of samples whose class is 0."""
    return (target == 0).double().mean().item()


def mean_confidence(output, target):
    """The mean of the largest softmax probability."""
    return output.softmax(dim=1).max(dim=1).values.double().mean().item()
'''

# the hand computation, run in the copy: the checkpoint's model on the validation split
BY_HAND = '''
import json, os, sys
sys.path.insert(0, os.getcwd())  # the copy of the checkout
import torch
from trainer.config.parse_config import ConfigParser
ckpt_path = sys.argv[1]
parser = ConfigParser.from_checkpoint(ckpt_path)
model = parser.build_model()
model.load_state_dict(torch.load(ckpt_path, weights_only=True)["model_state_dict"])
model.eval()
loader = parser.build_data_loader()
valid = loader.split_validation()
def targets(dl):
    dl.set_epoch(1)
    return torch.cat([batch[-1] for batch in dl])
train_t, valid_t = targets(loader), targets(valid)
with torch.no_grad():
    probs = [model(*batch[:-1]).softmax(dim=1).max(dim=1).values for batch in valid]
confidence = sum(float(p.double().sum()) for p in probs) / len(valid_t)
print(json.dumps({"zero_share": int((train_t == 0).sum()) / len(train_t),
                  "val_zero_share": int((valid_t == 0).sum()) / len(valid_t),
                  "val_mean_confidence": confidence, "n_valid": len(valid_t)}))
'''


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_a_new_metric_function_is_logged_and_right(tmp_path):
    repo = copy_checkout(tmp_path / "repo")
    metric_py = repo / "model/metric.py"
    metric_py.write_text(metric_py.read_text() + METRICS)
    save = tmp_path / "saved"
    r = run(repo, "train.py", "-c", "config/digits_mlp.json", "trainer.epochs=1",
            "metrics=[accuracy, zero_share, mean_confidence]", f"trainer.save_dir={save}")
    assert r.returncode == 0, r.stderr[-2000:]
    (log,) = (save / "log/digits_mlp").glob("*/metrics.csv")
    (row,) = list(csv.DictReader(log.open()))
    for name in ("zero_share", "mean_confidence"):
        assert name in row and f"val_{name}" in row
    (ckpt,) = (save / "models/digits_mlp").glob("*/checkpoint-epoch1.pth")
    script = tmp_path / "by_hand.py"
    script.write_text(BY_HAND)
    h = run(repo, str(script), str(ckpt))
    assert h.returncode == 0, h.stderr[-2000:]
    hand = json.loads(h.stdout)
    assert hand["n_valid"] > 100
    assert 0.05 < hand["val_zero_share"] < 0.2
    for key in ("zero_share", "val_zero_share", "val_mean_confidence"):
        assert float(row[key]) == pytest.approx(hand[key], rel=1e-5, abs=1e-6), key
