"""The body of train.py, top to bottom: build, wrap for devices, resume, train.

test.py's body is trainer/run/checkpoint_test.py (a training run never imports it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from base.base_data_loader import batches_on
from logger.console import next_commands
from logger.logger import FILE_ONLY, get_logger, setup_logging
from logger.writer import check_loggers
from trainer.callbacks.registry import build_callbacks
from trainer.config.class_weights import criterion_to
from trainer.config.parse_config import ConfigParser
from trainer.loop.trainer import Trainer, check_amp
from trainer.run.auto_resume import apply_auto_resume
from trainer.run.batch_trial import trial_batch
from trainer.run.compiling import check_compile, compile_model
from trainer.run.resume_checks import check_groups_fit, check_resume, check_weights_fit
from trainer.run.run_folder import RunFolder, create_run_folder, repair_own_best
from trainer.run.summary import summarize_on_loader
from utils import dist
from utils.checkpoint import BEST_NAME
from utils.checkpoint_arg import newest_checkpoint
from utils.errors import ConfigError, RunError
from utils.files import write_json
from utils.run_limits import max_steps_reached


def train(config: ConfigParser, dry_run: bool = False, run_file: Path | None = None,
          auto_resume: bool = False) -> int:
    """Train `config` (new run, exact resume or fine-tune); the process exit code.
    `auto_resume`: --resume auto (trainer/run/auto_resume.py) picks the checkpoint."""
    logger = setup_logging(config.trainer["verbosity"])
    device, device_ids = dist.setup_device(config["n_gpu"])
    dist.quiet_unless_main(logger)
    for warning in config.warnings:
        logger.warning(f"warning: {warning}")
    check_loggers(config.config, dist.is_main())  # a silent tracking server: fails here
    parts = config.build_all()
    try:
        check_amp(config.trainer["amp"], device)
        check_compile(config.trainer["compile"])
        callbacks = build_callbacks(config["callbacks"], config.trust)  # before any folder
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    dist.shard_loaders(parts.data_loader, parts.valid_data_loader)
    dist.use_pinned_memory(device, parts.data_loader, parts.valid_data_loader)
    decision, done = None, False
    if auto_resume:  # the config then resumes the checkpoint it chose, if any
        config, decision, done = apply_auto_resume(config, hold=not dry_run)
    if done:
        logger.info(decision)
        return 0
    check_resume(config, parts.data_loader)
    check_weights_fit(config, parts.model)
    check_groups_fit(config, parts.optimizer)
    if dist.is_main():
        repair_own_best(config)
    if nothing_to_train(config):
        return 0
    summary = summarize_on_loader(parts.model, parts.data_loader, config["arch"]["type"])
    try:
        trial_batch(parts.model, parts.data_loader, parts.criterion, parts.metrics,
                    config.config)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    if dry_run:
        if decision is not None:
            logger.info(decision)
        print(parts.model, summary, json.dumps(config.config, indent=2), sep="\n")
        return 0

    run = open_run_folder(config, run_file)
    if decision is not None:
        logger.info(decision)
    for note in parts.notes:  # the console had them while the model was built
        logger.info(note, extra=FILE_ONLY)
    note_kept_outputs(parts.metrics)
    logger.debug(str(parts.model), extra=FILE_ONLY)
    logger.debug(str(summary))
    model = wrap_for_devices(parts.model.to(device), device, device_ids)
    batches_on(device, parts.data_loader, parts.valid_data_loader)
    model = compile_model(model, config.trainer["compile"])  # checkpoints: the plain module
    criterion = criterion_to(parts.criterion, device)  # a class weight goes to the device
    trainer = Trainer(model, criterion, parts.metrics, parts.optimizer, config, device,
                      parts.data_loader, parts.valid_data_loader, parts.lr_scheduler,
                      run_folder=run, callbacks=callbacks)
    if config.checkpoint is not None:
        resume(trainer, config, run)
    try:
        trainer.train()
    except RunError as e:  # the console gets it from train.py's report(); info.log here
        get_logger().error(f"error: {e}", extra=FILE_ONLY)
        raise
    dist.barrier()  # every rank is done before any tears the process group down
    best = run.save_dir / BEST_NAME
    stopped = trainer.early_stop > 0 and trainer.early_stop_count >= trainer.early_stop
    one_cycle = (config["lr_scheduler"] or {}).get("type") == "OneCycleLR"
    for line in next_commands(best if best.is_file() else None,
                              newest_checkpoint(run.save_dir), config.trainer["epochs"],
                              dist.launch_command(), trainer.early_stop if stopped else 0,
                              run.save_dir / "config.json" if one_cycle else None):
        get_logger().info(line)
    return 0


def note_kept_outputs(metrics: dict) -> None:
    """One log line per plain function metric: the only thing that keeps the epoch's outputs."""
    for name, metric in metrics.items():
        if metric.keeps_outputs:
            get_logger().info(f"note: metric '{name}' is a plain function: it keeps every output "
                              f"and target of an epoch until the epoch ends (memory grows with "
                              f"the data set); a BaseMetric class keeps a fixed-size state")


def nothing_to_train(config: ConfigParser) -> bool:
    """True (and says so) when the resumed checkpoint already reached trainer.epochs
    (or trainer.max_steps)."""
    ckpt = config.checkpoint
    if ckpt is None or ckpt.get("partial_epoch"):
        return False
    steps, max_steps = ckpt.get("global_step", 0), config.trainer["max_steps"]
    if not config.finetune and max_steps_reached(max_steps, steps):
        if dist.is_main():
            print(f"{config.resume}: the checkpoint has {steps} optimizer steps and "
                  f"trainer.max_steps is {max_steps}; nothing to train "
                  f"(override trainer.max_steps=N to train longer)")
        return True
    if ckpt["epoch"] < config.trainer["epochs"]:
        return False
    if dist.is_main():
        print(f"{config.resume}: the checkpoint is at epoch {ckpt['epoch']} and "
              f"trainer.epochs is {config.trainer['epochs']}; nothing to train "
              f"(override trainer.epochs=N to train longer)")
    return True


def open_run_folder(config: ConfigParser, run_file: Path | None) -> RunFolder:
    """Rank 0 creates the run folder and every rank learns it; logging goes to its info.log."""
    run = create_run_folder(config) if dist.is_main() else None
    run = dist.broadcast_object(run)
    logger = setup_logging(config.trainer["verbosity"],
                           run.log_dir / "info.log" if dist.is_main() else None)
    dist.quiet_unless_main(logger)
    logger.info(f"run folder: {run.save_dir}")
    logger.info(f"logs:       {run.log_dir}")
    if run_file is not None and dist.is_main():
        write_json(run.as_dict(), run_file)
    return run


def wrap_for_devices(model: torch.nn.Module, device: torch.device,
                     device_ids: list[int]) -> torch.nn.Module:
    """DistributedDataParallel under torchrun, DataParallel for n_gpu > 1, else the model."""
    logger = get_logger()
    if dist.is_distributed():
        logger.info(f"DistributedDataParallel: {dist.get_world_size()} processes "
                    f"({dist.backend_name()}); effective batch = batch_size x "
                    f"{dist.get_world_size()} x trainer.accumulate_steps")
        return dist.wrap_ddp(model, device)
    if len(device_ids) > 1:
        logger.warning(f"warning: n_gpu {len(device_ids)} uses DataParallel in one process; "
                       "torchrun is faster: torchrun --standalone "
                       f"--nproc_per_node={len(device_ids)} train.py ...")
        return torch.nn.DataParallel(model, device_ids=device_ids)
    return model


def resume(trainer: Trainer, config: ConfigParser, run: RunFolder) -> None:
    """Exact resume (-r) or fine-tune (-c with -r) from the config's checkpoint."""
    ckpt = config.checkpoint
    trainer.resume_from(ckpt, finetune=config.finetune)
    logger = get_logger()
    what = "fine-tuning from" if config.finetune else "resuming from"
    logger.info(f"{what} {config.resume} (epoch {ckpt['epoch']})")
    if not config.finetune and not run.reused:
        logger.info(f"note: {config.resume.parent} has checkpoints past epoch "
                    f"{ckpt['epoch']} or is not a run folder; this run writes to "
                    f"{run.save_dir} and leaves it untouched")
