"""Evaluate a checkpoint on the test split:  python test.py -r saved/models/digits_mlp/latest

-r takes a checkpoint file, a run folder or saved/models/<name>/latest (the newest run): a
folder or pointer stands for its model_best.pth.

A folds or repeat sweep folder (saved/sweeps/<name>/<sweep_id>) evaluates every
trial's best model: mean ± std and, for classification, their ensemble (sweep/fold_test.py).

Everything (data, model, loss, metrics) is rebuilt from the checkpoint's config;
the metrics are printed and written as JSON (test_metrics.json beside the
checkpoint unless --output is given). That config is data: its dotted types pick
only classes of the expected kind unless --trust-config (docs/checkpoints.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.errors import missing_dependency  # standard library only: no torch yet
from utils.shared_options import add_device_option, add_trust_option, select_devices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on the test split.")
    parser.add_argument("-r", "--resume", required=True,
                        help="checkpoint to evaluate (a run folder or saved/models/<name>/latest: "
                             "its model_best.pth; a folds/repeat sweep folder: every "
                             "trial's best model, mean ± std, and their ensemble)")
    add_device_option(parser)
    parser.add_argument("--output", help="where to write the metrics JSON "
                                         "(default: test_metrics.json beside the checkpoint), "
                                         "or with --predict the predictions CSV "
                                         "(default: predictions.csv beside the checkpoint)")
    parser.add_argument("--predict", nargs="?", const="", metavar="INPUT",
                        help="write predictions instead of metrics: for a CSV file of raw "
                             "features (an image model: a folder of images, or a CSV with a "
                             "path column), or for the test split when no input is given")
    parser.add_argument("--weights", choices=("raw", "ema", "swa"),
                        help="which weights to evaluate: the trained (raw) ones, the moving "
                             "average of trainer.ema or the average of trainer.swa (default: "
                             "the weights the run validated and monitored)")
    parser.add_argument("--export", metavar="FILE",
                        help="write the model to FILE instead: .onnx (onnxruntime), .pt2 "
                             "(torch.export) or .safetensors (weights, the config in its "
                             "metadata); checked against PyTorch on a test batch; nothing but "
                             "FILE is written")
    parser.add_argument("--force", action="store_true",
                        help="with --export: replace FILE if it exists")
    add_trust_option(parser, "let the checkpoint's config", "; only for checkpoints you trust")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    select_devices(args)
    try:  # deferred: --help and usage errors stay light
        from trainer.run.checkpoint_test import test
        from trainer.run.sweep_request import is_sweep_folder
        from utils import dist
        from utils.errors import ConfigError, RunError, report
    except ModuleNotFoundError as e:
        return missing_dependency(e)

    try:
        if args.export is not None and args.predict is not None:
            raise ConfigError("--export and --predict: give one of them")
        if args.force and args.export is None:
            raise ConfigError("--force replaces an --export FILE: give --export FILE")
        if is_sweep_folder(Path(args.resume)):  # folds or repeats: every trial's best model
            if args.predict is not None:
                raise ConfigError("--predict takes one checkpoint, not a sweep folder")
            if args.export is not None:
                raise ConfigError("--export takes one checkpoint, not a sweep folder")
            from sweep.fold_test import test_sweep  # only a sweep folder needs sweep/
            return test_sweep(Path(args.resume), Path(args.output) if args.output else None,
                              args.trust_config)
        return test(Path(args.resume), Path(args.output) if args.output else None,
                    args.predict, args.weights, Path(args.export) if args.export else None,
                    args.force, args.trust_config)
    except (ConfigError, RunError) as e:
        return report(e)
    finally:
        dist.cleanup()


if __name__ == "__main__":
    sys.exit(main())
