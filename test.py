"""Evaluate a checkpoint on the held-out test split:  python test.py -r <checkpoint>

Everything (data, model, loss, metrics) is rebuilt from the checkpoint's config;
the metrics are printed and written as JSON (test_metrics.json beside the
checkpoint unless --output is given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on the test split.")
    parser.add_argument("-r", "--resume", required=True, help="checkpoint to evaluate")
    parser.add_argument("-d", "--device", help="GPUs to use, like CUDA_VISIBLE_DEVICES")
    parser.add_argument("--output", help="where to write the metrics JSON "
                                         "(default: test_metrics.json beside the checkpoint), "
                                         "or with --predict the predictions CSV "
                                         "(default: predictions.csv beside the checkpoint)")
    parser.add_argument("--predict", nargs="?", const="", metavar="INPUT_CSV",
                        help="write predictions instead of metrics: for a CSV file of raw "
                             "features, or for the test split when no file is given")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict | None:
    from logger.logger import setup_logging
    from trainer import evaluate
    from utils import dist
    from utils.checkpoint import load_checkpoint
    from utils.config import validate_config
    from utils.errors import ConfigError
    from utils.parse_config import ConfigParser

    path = Path(args.resume)
    ckpt = load_checkpoint(path)
    try:
        resolved, _ = validate_config(ckpt["config"])
    except ConfigError as e:
        raise ConfigError(f"{path}: the stored config is invalid here: {e}") from None
    config = ConfigParser(resolved, str(path), path, ckpt)
    setup_logging(config.trainer["verbosity"])

    data_loader = config.build_data_loader(training=False)
    if data_loader.n_samples == 0:
        raise ConfigError(f"{path}: data_loader.args.test_split is 0 in the stored config: "
                          "there is no test split to evaluate")
    model = config.build_model()
    try:
        model.load_state_dict(ckpt["model_state_dict"])
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not fit the model "
                          f"{resolved['arch']['type']}: {str(e).splitlines()[0]}") from None
    device, _ = dist.setup_device(resolved["n_gpu"])  # under torchrun: each rank a shard
    model = model.to(device)
    if args.predict is not None:  # rank 0 predicts the whole file or split
        if not dist.is_main():
            return None
        from utils.predict import predict

        out = Path(args.output) if args.output else path.parent / "predictions.csv"
        predict(model, data_loader, device, args.predict, out, resolved["arch"]["type"])
        print(f"saved {out}")
        return None
    dist.shard_loaders(data_loader)
    metrics = evaluate(model, data_loader, config.build_criterion(), config.build_metrics(), device,
                       resolved["trainer"]["amp"])
    if dist.is_main():
        from logger.report import write_test_report

        data_loader.shard(0, 1)  # the report reads the whole test split on one rank
        write_test_report(model, data_loader, device, Path(args.output).parent if args.output
                          else path.parent)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device
    from utils import dist
    from utils.errors import ConfigError, RunError, report

    try:
        metrics = run(args)
        main_rank = dist.is_main()
    except (ConfigError, RunError) as e:
        return report(e)
    finally:
        dist.cleanup()
    if metrics is None or not main_rank:  # --predict wrote its file; rank 0 reports
        return 0
    out = Path(args.output) if args.output else Path(args.resume).parent / "test_metrics.json"
    for name, value in metrics.items():
        print(f"{name}: {value:.6f}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        print(f"error: cannot write {out}: {e}", file=sys.stderr)
        return 1
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
