"""test.py on a folds (or repeats) sweep folder: every trial's best model on the test split.

    python test.py -r saved/sweeps/<name>/<sweep_id>

Prints and writes (test_metrics.json in the sweep folder unless --output) each
trial's test metrics, their mean and sample standard deviation (ddof 1), and,
for classification, the metrics of the ensemble that averages the models'
softmax outputs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from logger.class_report import is_classification
from sweep.records import best_checkpoint, trial_run_dir
from sweep.replicates import REPLICATE_KEYS, mean_std
from trainer.config.parse_config import ConfigParser
from trainer.inference.predict import collect_outputs
from trainer.inference.weights import load_weights
from trainer.loop.trainer import evaluation_stats
from utils.errors import ConfigError
from utils.files import read_json, write_json


def finished_trials(folder: Path) -> list[dict]:
    """The records of the folder's finished trials, in trial order."""
    definition = read_json(folder / "sweep.json") or {}
    others = [k for k in definition.get("parameters") or {} if k.lstrip("+") not in
              REPLICATE_KEYS]
    if others:
        raise ConfigError(f"{folder}: test.py on a sweep folder is for folds and repeats "
                          f"(trials that differ only in {' or '.join(REPLICATE_KEYS)}); this "
                          f"sweep also varies {', '.join(others)}: test a trial's checkpoint")
    records = [read_json(p) for p in sorted((folder / "trials").glob("trial-*.json"))]
    records = [r for r in records if r and r.get("status") == "finished"]
    if not records:
        raise ConfigError(f"{folder}: no finished trial to test (run the sweep's command first)")
    return sorted(records, key=lambda r: r["trial"])


def test_outputs(checkpoint: Path, trust_config: bool = False
             ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """One model's test metrics, its outputs on the test split and the targets. The
    checkpoint's config is data unless `trust_config` (--trust-config)."""
    config = ConfigParser.from_checkpoint(checkpoint, trust_config)
    loader = config.build_data_loader(training=False)
    if loader.n_samples == 0:
        raise ConfigError(f"{checkpoint}: its config holds out no test split")
    model = config.build_model()
    load_weights(model, config.checkpoint["model_state_dict"], checkpoint, config["arch"]["type"])
    device = torch.device("cpu")
    model.eval()
    stats = evaluation_stats(model, loader, config.build_criterion(), config.build_metrics(),
                             device)
    output, target = collect_outputs(model, loader, device)
    return stats.result(), output, target


def test_sweep(folder: Path, output: Path | None = None, trust_config: bool = False) -> int:
    """Evaluate every finished trial of `folder`; the process exit code. The trials'
    checkpoints (found through the folder's records) are data unless `trust_config`."""
    rows, outputs, target = [], [], None
    for record in finished_trials(folder):
        ckpt = best_checkpoint(trial_run_dir(folder, record.get("run_dir")))
        if ckpt is None:
            raise ConfigError(f"{folder}: trial {record['trial']} has no checkpoint in "
                              f"{record.get('run_dir')}")
        metrics, out, tgt = test_outputs(ckpt, trust_config)
        if target is not None and not torch.equal(tgt, target):
            raise ConfigError(f"{ckpt}: its test split differs from the other trials'")
        target = tgt
        outputs.append(out)
        rows.append({"trial": record["trial"], "params": record.get("params") or {},
                     "checkpoint": str(ckpt), **metrics})
    names = [k for k in rows[0] if k not in ("trial", "params", "checkpoint")]
    stats = {k: mean_std([r[k] for r in rows]) for k in names}
    result = {"n": len(rows), "std": "sample standard deviation (ddof=1)", "trials": rows,
              "mean": {k: m for k, (m, _) in stats.items()},
              "stdev": {k: s for k, (_, s) in stats.items()}}
    for k, (m, s) in stats.items():
        print(f"{k}: {m:.6f}" + (f" ± {s:.6f}" if s is not None else "") + f"  (n={len(rows)})")
    if is_classification(outputs[0], target):
        probs = torch.stack([torch.softmax(o.float(), dim=1) for o in outputs]).mean(0)
        accuracy = (probs.argmax(1) == target).double().mean().item()
        result["ensemble"] = {"models": len(outputs), "accuracy": accuracy}
        print(f"ensemble of {len(outputs)} (averaged softmax): accuracy {accuracy:.6f}")
    out = output or folder / "test_metrics.json"
    write_json(result, out)
    print(f"saved {out}")
    return 0
