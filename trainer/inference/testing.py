"""A trained model and its test split, rebuilt from a checkpoint: test.py's and api.py's share."""

from __future__ import annotations

from pathlib import Path

import torch

from logger.logger import get_logger
from model.metric import ConfusionMatrix
from trainer.callbacks.averaging import pick_weights
from trainer.config.class_weights import criterion_to
from trainer.config.parse_config import ConfigParser
from trainer.inference.weights import load_weights
from trainer.loop.trainer import evaluation_stats
from utils import dist
from utils.best_model import repair_best
from utils.checkpoint import BEST_NAME
from utils.checkpoint_arg import resolve_checkpoint_arg, run_dir_of
from utils.errors import ConfigError

REPORT_COUNTS = " confusion"  # test.py's extra state: a key no config metric can have


def best_of(checkpoint: Path) -> Path:
    """The checkpoint test.py evaluates for `-r checkpoint`: a run folder or `latest` pointer
    stands for its model_best.pth (utils/checkpoint_arg.py); a file is itself. A run's
    model_best.pth older than the epoch its newest checkpoint names best is repaired first
    (utils/best_model.py)."""
    run_dir = run_dir_of(checkpoint)
    path = resolve_checkpoint_arg(checkpoint, best=True) if run_dir is None else None
    if path is not None and path.name == BEST_NAME:
        run_dir = path.parent
    if run_dir is not None:
        held, note = repair_best(run_dir)
        if note:
            get_logger().warning(note)
        if held is not None:
            return held
    return path or resolve_checkpoint_arg(checkpoint, best=True)


def trained_model(config: ConfigParser, weights: str | None = None) -> tuple[str, torch.nn.Module]:
    """(which weights, the model built from the checkpoint's config with them loaded), in
    eval mode on the CPU. `weights`: raw, ema or swa (None: the weights the run monitored)."""
    checkpoint = config.resume
    model = config.build_model()
    which, state = pick_weights(config.checkpoint, weights, checkpoint)
    load_weights(model, state, checkpoint, config["arch"]["type"])
    return which, model.eval()


def test_split_loader(config: ConfigParser):
    """The checkpoint's held-out test split (ConfigError when its config holds none out)."""
    data_loader = config.build_data_loader(training=False)
    if data_loader.n_samples == 0:
        raise ConfigError(f"{config.resume}: data_loader.args.test_split is 0 in the stored "
                          "config: there is no test split to evaluate")
    return data_loader


def test_split_metrics(config: ConfigParser, model: torch.nn.Module, data_loader,
                       device: torch.device, stop=None
                       ) -> tuple[dict[str, float], torch.Tensor] | None:
    """({loss and each configured metric}, the confusion counts) over the test split; one
    pass, sharded across ranks under torchrun (every rank gets the whole split's numbers).
    None when `stop` (trainer/loop/trainer.py PassStop) ended the pass early."""
    dist.shard_loaders(data_loader)
    metrics = {**config.build_metrics(), REPORT_COUNTS: ConfusionMatrix()}
    criterion = criterion_to(config.build_criterion(), device)
    stats = evaluation_stats(model, data_loader, criterion, metrics, device,
                             config.trainer["amp"], stop)
    if stats is None:
        return None
    result = {k: v for k, v in stats.result().items() if k != REPORT_COUNTS}
    return result, stats.metrics[REPORT_COUNTS].matrix()
