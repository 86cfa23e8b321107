"""The body of test.py: rebuild from the checkpoint, evaluate the test split, write the
metrics and the report (or predictions, or an export)."""

from __future__ import annotations

import sys
from pathlib import Path

from logger.class_report import write_test_report
from logger.logger import setup_logging
from trainer.config.parse_config import ConfigParser
from trainer.inference.export import check_export_target, export_test_batch
from trainer.inference.predict import predict
from trainer.inference.testing import best_of, test_split_loader, test_split_metrics, trained_model
from trainer.loop.trainer import PassStop
from utils import dist
from utils.files import write_json
from utils.signals import exit_code, signal_name, stop_signals_handled


def test(checkpoint: Path, output: Path | None = None, predict_input: str | None = None,
         weights: str | None = None, export: Path | None = None, force: bool = False,
         trust_config: bool = False) -> int:
    """Evaluate `checkpoint` on its config's test split (or write predictions with
    `predict_input`: '' for the test split, else a CSV file); the process exit code.
    A run folder or `latest` pointer stands for its model_best.pth. `weights`: raw, ema or
    swa (None: the weights the run monitored). `export`: write the model to that file instead
    (trainer/inference/export.py; an existing one only with `force`). The config is data
    unless `trust_config` (--trust-config)."""
    if export is not None:
        check_export_target(export, force)
    given, checkpoint = checkpoint, best_of(checkpoint)
    if checkpoint != given:
        print(f"checkpoint: {checkpoint}")
    config = ConfigParser.from_checkpoint(checkpoint, trust_config)
    setup_logging(config.trainer["verbosity"])
    data_loader = test_split_loader(config)
    which, model = trained_model(config, weights)
    if which != "raw":
        print(f"weights: {which}")
    if export is not None:
        return export_test_batch(model, config.config, data_loader, export) if dist.is_main() else 0
    device, _ = dist.setup_device(config["n_gpu"])  # under torchrun: each rank a shard
    model = model.to(device)
    if predict_input is not None:  # rank 0 predicts the whole file or split
        if dist.is_main():
            out = output or checkpoint.parent / "predictions.csv"
            predict(model, data_loader, device, predict_input, out, config["arch"]["type"])
            print(f"saved {out}")
        return 0
    stop = PassStop(data_loader, device)
    with stop_signals_handled(stop.handler):
        result = test_split_metrics(config, model, data_loader, device, stop)
    if result is None:  # a stop signal: nothing is written
        if dist.is_main():
            print(f"interrupted by {signal_name(stop.signum)}: the test pass stopped; "
                  f"nothing written", file=sys.stderr)
        return exit_code(stop.signum)
    metrics, counts = result
    if not dist.is_main():
        return 0
    out = output or checkpoint.parent / "test_metrics.json"
    write_test_report(counts, out.parent)
    for name, value in metrics.items():
        print(f"{name}: {value:.6f}")
    write_json(metrics, out)
    print(f"saved {out}")
    return 0
