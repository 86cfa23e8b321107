"""Train a model from a config:  python train.py -c config/digits_mlp.json [KEY.PATH=VALUE ...]

Resume exactly:  python train.py -r saved/models/<name>/<run_id>/checkpoint-epoch5.pth
Fine-tune:       python train.py -c other.json -r <checkpoint>
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a model from a JSON or YAML config.",
        epilog="Overrides: any number of KEY.PATH=VALUE (VALUE read as YAML), e.g. "
               "trainer.epochs=5 arch.args.depth=3; +KEY.PATH=VALUE adds a new key.")
    parser.add_argument("-c", "--config", help="config file (.json, .yaml, .yml)")
    parser.add_argument("-r", "--resume", help="checkpoint to resume from (or fine-tune with -c)")
    parser.add_argument("-d", "--device", help="GPUs to use, like CUDA_VISIBLE_DEVICES (e.g. 0,1)")
    parser.add_argument("--lr", type=float, help="shortcut for optimizer.args.lr")
    parser.add_argument("--bs", type=int, help="shortcut for data_loader.args.batch_size")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and build everything, print the model and config, exit")
    parser.add_argument("-m", "--multirun", action="store_true",
                        help="sweep: KEY=a,b,c overrides list choices; runs every combination")
    parser.add_argument("--jobs", type=int, help="sweep: trials run at once (default 1)")
    parser.add_argument("--test", action="store_true",
                        help="sweep: evaluate each trial on the test split after training")
    parser.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE",
                        help="config overrides")
    return parser.parse_intermixed_args(argv)  # overrides may come before and after options


def build(config, training: bool = True):
    """Data loaders, model, loss, metrics, optimizer and scheduler of a config."""
    from utils.checkpoint import seed_everything
    from utils.errors import ConfigError

    seed_everything(config["seed"])
    data_loader = config.build_data_loader(training=training)
    valid_data_loader = data_loader.split_validation()
    model = config.build_model()
    stats = data_loader.feature_stats()
    if stats is not None:
        try:
            model.set_standardization(*stats)
        except ValueError as e:
            raise ConfigError(f"arch.args: {e}") from None
    criterion = config.build_criterion()
    metrics = config.build_metrics()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = config.build_optimizer(params)
    lr_scheduler = config.build_scheduler(optimizer)
    return data_loader, valid_data_loader, model, criterion, metrics, optimizer, lr_scheduler


def train(config) -> int:
    import json

    import torch

    from logger.logger import get_logger, setup_logging
    from trainer import Trainer
    from trainer.trainer import check_amp
    from utils import dist
    from utils.config import save_config
    from utils.errors import ConfigError
    from utils.summary import summarize_on_loader
    from utils.util import use_pinned_memory

    verbosity = config.trainer["verbosity"]
    logger = setup_logging(verbosity)
    device, device_ids = dist.setup_device(config["n_gpu"])
    dist.quiet_unless_main(logger)
    for warning in config.warnings:
        logger.warning(f"warning: {warning}")
    try:
        data_loader, valid_data_loader, model, criterion, metrics, optimizer, lr_scheduler = \
            build(config)
        check_amp(config.trainer["amp"], device)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    dist.shard_loaders(data_loader, valid_data_loader)
    use_pinned_memory(device, data_loader, valid_data_loader)

    ckpt = config.checkpoint
    if ckpt is not None and ckpt["epoch"] >= config.trainer["epochs"] \
            and not ckpt.get("partial_epoch"):
        if dist.is_main():
            print(f"{config.resume}: the checkpoint is at epoch {ckpt['epoch']} and "
                  f"trainer.epochs is {config.trainer['epochs']}; nothing to train "
                  f"(override trainer.epochs=N to train longer)")
        return 0

    summary = summarize_on_loader(model, data_loader, config["arch"]["type"])
    if config.dry_run:
        print(model)
        print(summary)
        print(json.dumps(config.config, indent=2))
        return 0

    if dist.is_main():
        config.make_run_dirs()
    config.run_id, config.save_dir, config.log_dir, config.reused_run = dist.broadcast_object(
        (config.run_id, config.save_dir, config.log_dir, config.reused_run))
    logger = setup_logging(verbosity, config.log_dir / "info.log" if dist.is_main() else None)
    dist.quiet_unless_main(logger)
    logger.info(f"run {config.run_id}: models in {config.save_dir}, logs in {config.log_dir}")
    if os.environ.get("SWEEP_RUN_FILE") and dist.is_main():  # a sweep learns its trial's run folder (utils/sweep.py)
        save_config({"run_id": config.run_id, "run_dir": str(config.save_dir),
                     "log_dir": str(config.log_dir)}, Path(os.environ["SWEEP_RUN_FILE"]))
    logger.debug(str(model))
    logger.info(str(summary))

    model = model.to(device)
    if dist.is_distributed():
        model = dist.wrap_ddp(model, device)
        logger.info(f"DistributedDataParallel: {dist.get_world_size()} processes "
                    f"({dist.backend_name()}); effective batch = batch_size x "
                    f"{dist.get_world_size()} x trainer.accumulate_steps")
    elif len(device_ids) > 1:
        logger.warning(f"warning: n_gpu {len(device_ids)} uses DataParallel in one process; "
                       "torchrun is faster: torchrun --standalone "
                       f"--nproc_per_node={len(device_ids)} train.py ...")
        model = torch.nn.DataParallel(model, device_ids=device_ids)
    trainer = Trainer(model, criterion, metrics, optimizer, config, device, data_loader,
                      valid_data_loader, lr_scheduler)
    if ckpt is not None:
        trainer.resume_from(ckpt, finetune=config.finetune)
        what = "fine-tuning from" if config.finetune else "resuming from"
        logger.info(f"{what} {config.resume} (epoch {ckpt['epoch']})")
        if not config.finetune and not config.reused_run:
            logger.info(f"note: {config.resume.parent} has checkpoints past epoch "
                        f"{ckpt['epoch']} or is not a run folder; this run writes to "
                        f"{config.save_dir} and leaves it untouched")
    trainer.train()
    dist.barrier()  # every rank is done before any tears the process group down
    get_logger().info(f"done: checkpoints in {config.save_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device

    from base.base_trainer import Interrupted
    from logger.logger import close_logging
    from utils.dist import cleanup as cleanup_distributed
    from utils.errors import ConfigError, RunError, report
    from utils.parse_config import ConfigParser

    try:
        from utils.sweep import load_sweep, run_sweep

        sweep = load_sweep(args)  # None unless -m or the config has a sweep: section
        if sweep is not None:
            return run_sweep(sweep, args.jobs, args.test, args.dry_run)
        config = ConfigParser.from_args(args)
        config.dry_run = args.dry_run
        return train(config)
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
        cleanup_distributed()


if __name__ == "__main__":
    sys.exit(main())
