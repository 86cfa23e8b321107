"""Train a model from a config:  python train.py -c config/digits_mlp.json [KEY.PATH=VALUE ...]

Resume exactly:  python train.py -r saved/models/digits_mlp/latest trainer.epochs=40
                 (-r takes a checkpoint, a run folder, or saved/models/<name>/latest: the newest
                 checkpoint of the newest run)
Fine-tune:       python train.py -c config/digits_mlp.yaml -r saved/models/digits_mlp/latest \
                     trainer.epochs=40 optimizer.args.lr=0.0001   (epochs count on from the
                     checkpoint's epoch)
Requeue blindly: python train.py -c config/digits_mlp.json --resume auto
A config read from a checkpoint (-r without -c) is data: its dotted types pick only classes of
the expected kind unless --trust-config (docs/checkpoints.md).
How one epoch runs, file by file: docs/design.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from utils.errors import missing_dependency  # standard library only: no torch yet
from utils.shared_options import add_device_option, add_trust_option, select_devices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a model from a JSON or YAML config.",
        epilog="Overrides: any number of KEY.PATH=VALUE (VALUE read as YAML), e.g. "
               "trainer.epochs=5 arch.args.depth=3; +KEY.PATH=VALUE adds a new key.")
    parser.add_argument("-c", "--config", help="config file (.json, .yaml, .yml)")
    parser.add_argument("-r", "--resume",
                        help="checkpoint to resume from (or fine-tune with -c); a run folder or "
                             "saved/models/<name>/latest: its newest checkpoint; with -c, "
                             "'auto' continues this config's newest checkpoint or starts fresh")
    parser.add_argument("--allow-changed", action="store_true",
                        help="resume even though the config changed since the checkpoint")
    add_trust_option(parser, "with -r and no -c: let the checkpoint's config (or the run "
                             "folder's config.json)",
                     ", unless this command line sets it; also passed to a sweep's resumed and "
                     "tested trials")
    add_device_option(parser)
    parser.add_argument("--lr", type=float, help="shortcut for optimizer.args.lr")
    parser.add_argument("--bs", type=int, help="shortcut for data_loader.args.batch_size")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and build everything, print the model and config, exit")
    parser.add_argument("-m", "--multirun", action="store_true",
                        help="sweep: KEY=a,b,c overrides list choices; runs every combination")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="k-fold cross-validation as a sweep: one run per fold of the "
                             "training part (the test split stays held out)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="repeat as a sweep with seeds seed..seed+N-1")
    parser.add_argument("--jobs", type=int, help="sweep: trials run at once (default 1)")
    parser.add_argument("--test", action="store_true",
                        help="sweep: evaluate each trial on the test split after training")
    parser.add_argument("--run-file", metavar="FILE",
                        help="write the run's folders (run_id, run_dir, log_dir) to FILE as JSON "
                             "once they exist (sweeps use it to find their trials' runs)")
    parser.add_argument("--find-lr", action="store_true",
                        help="LR range test: write lr_find.csv and lr_find.png here, print the "
                             "suggested lr (no run folder; --apply writes <config>_lr.<ext>)")
    parser.add_argument("--apply", action="store_true",
                        help="with --find-lr: also write the config with the suggested lr")
    parser.add_argument("--print-config", nargs="?", const="yaml", choices=("yaml", "json"),
                        help="print the resolved config (after _base_, ${...}, overrides and "
                             "defaults) as YAML (default) or JSON and exit; writes nothing")
    parser.add_argument("--print-schema", action="store_true",
                        help="print the config's JSON Schema (docs/config.schema.json) and exit")
    parser.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE",
                        help="config overrides")
    argv = sys.argv[1:] if argv is None else list(argv)
    at = argv.index("--print-config") + 1 if "--print-config" in argv else 0
    if at and argv[at:at + 1] not in (["yaml"], ["json"]):  # a bare flag before an override
        argv.insert(at, "yaml")
    return parser.parse_intermixed_args(argv)  # overrides may come before and after options


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    select_devices(args)
    try:  # deferred: --help and usage errors import neither torch nor sklearn
        from base.base_trainer import Interrupted
        from logger.logger import close_logging
        from trainer.config.parse_config import ConfigParser
        from trainer.run.auto_resume import take_auto
        from trainer.run.sweep_request import sweep_asked
        from trainer.run.training import train
        from utils import dist
        from utils.errors import ConfigError, RunError, report
    except ModuleNotFoundError as e:
        return missing_dependency(e)

    try:  # below, each import only for the commands that need it (tests/test_imports.py)
        if args.print_schema:  # print, write nothing, exit 0
            from trainer.config.json_schema import schema_text
            print(schema_text(), end="")
            return 0
        if args.print_config:  # checked as --dry-run checks it (components built), no files
            from utils.config_io import dump_config
            config = ConfigParser.from_args(args)
            config.build_all()
            print(dump_config(config.config, args.print_config), end="")
            return 0
        if args.find_lr or args.apply:  # the range test: no sweep, no run folder
            from trainer.run.lr_finder import find_lr
            return find_lr(args)
        if sweep_asked(args):  # -m, --folds, --repeat, a sweep: section: sweep/ decides
            try:
                from sweep.runner import run_sweep
                from sweep.spec import load_sweep
            except ModuleNotFoundError as e:
                return missing_dependency(e)
            sweep = load_sweep(args)  # None when it is an ordinary run after all
            if sweep is not None:
                return run_sweep(sweep, args.jobs, args.test, args.dry_run, argv)
        auto = take_auto(args)  # --resume auto: the checkpoint is found once config is built
        config = ConfigParser.from_args(args)
        return train(config, dry_run=args.dry_run,
                     run_file=Path(args.run_file) if args.run_file else None, auto_resume=auto)
    except (ConfigError, RunError) as e:
        return report(e)
    except Interrupted as e:
        print(f"{e}; checkpoint: {e.path}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    finally:
        close_logging()
        dist.cleanup()


if __name__ == "__main__":
    exit_code = main()
    if "LOCAL_RANK" in os.environ and "torch.distributed" in sys.modules:  # a torchrun worker
        from utils.dist import exit_process
        exit_process(exit_code)
    sys.exit(exit_code)
