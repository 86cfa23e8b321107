"""The Python API: train, evaluate, load and predict without the command line (docs/api.md).

    import api
    run = api.train("config/digits_mlp.json", ["trainer.epochs=5"])   # the run folder
    metrics = api.evaluate(run)               # test.py's numbers, as a dict
    model, config = api.load(run)             # eval mode; raw features in
    logits = api.predict(model, features)

Validation is the command line's; errors are raised, never sys.exit: ConfigError (what
the CLI reports with exit 2: a bad config, override, checkpoint or input) and RunError
(exit 1: a failure while running), both from utils.errors; a stop signal during train()
raises Interrupted after saving a checkpoint. All three are re-exported here.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from base.base_trainer import Interrupted
from logger.logger import close_logging
from trainer.export import model_from_safetensors
from trainer.inference import best_of, test_split_loader, test_split_metrics, trained_model
from trainer.parse_config import ConfigParser
from trainer.predict import model_outputs
from trainer.run import train as run_training
from utils import dist
from utils.config_io import load_config_file
from utils.errors import ConfigError, RunError

__all__ = ["ConfigError", "Interrupted", "RunError", "evaluate", "load", "predict", "train"]


def load(checkpoint: str | Path, weights: str | None = None) -> tuple[torch.nn.Module, dict]:
    """(model, resolved config) of a checkpoint, a run folder (its model_best.pth) or a
    .safetensors export (with its .json beside it). The model is in eval mode on the CPU and
    standardizes its inputs itself: give it raw features. `weights`: raw, ema or swa
    (None: the weights the run monitored, as test.py)."""
    path = best_of(Path(checkpoint))
    if path.suffix == ".safetensors":
        return model_from_safetensors(path)
    config = ConfigParser.from_checkpoint(path)
    _, model = trained_model(config, weights)
    return model, config.config


def _tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t.float() if t.is_floating_point() else t


def predict(checkpoint_or_model: str | Path | torch.nn.Module, inputs: Any) -> torch.Tensor:
    """The model's outputs (logits for classification) for raw `inputs`, on the CPU.

    `inputs`: a tensor, NumPy array or nested list of examples (floating values become
    float32); a tuple for a model of several inputs (the sequence models: token ids, lengths).
    A checkpoint or run folder is loaded with load(); a model keeps its device and its
    train/eval mode (it runs in eval mode, without gradients)."""
    model = checkpoint_or_model
    if not isinstance(model, torch.nn.Module):
        model = load(model)[0]
    xs = tuple(_tensor(x) for x in (inputs if isinstance(inputs, tuple) else (inputs,)))
    if not xs or any(x.dim() == 0 or len(x) == 0 for x in xs) or len({len(x) for x in xs}) > 1:
        raise ConfigError("predict: inputs must hold one or more examples (the same number in "
                          "each input), the first dimension counting them")
    device = next(model.parameters(), torch.zeros(0)).device
    was_training = model.training
    try:
        return model_outputs(model, xs, device)
    except (RuntimeError, TypeError, ValueError) as e:
        shapes = ", ".join(f"{x.dtype} {list(x.shape)}" for x in xs)
        raise ConfigError(f"predict: the inputs ({shapes}) do not fit "
                          f"{type(model).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        model.train(was_training)


def train(config: str | Path | dict, overrides: list[str] | None = None) -> Path:
    """Train one run, as `python train.py -c CONFIG OVERRIDES...`; the run folder
    (saved/models/<name>/<run_id>, holding model_best.pth and config.json).

    `config`: a config file (JSON or YAML, `_base_` and ${...} as on the command line) or a
    dict of the same structure; `overrides`: KEY.PATH=VALUE strings in Hydra's forms."""
    if isinstance(config, dict):
        parser = ConfigParser.from_dict(copy.deepcopy(config), "config", overrides)
    else:
        parser = ConfigParser.from_dict(load_config_file(config), str(config), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run_file = Path(tmp) / "run.json"
        try:
            code = run_training(parser, run_file=run_file)
        finally:
            close_logging()
            dist.cleanup()
        if code != 0 or not run_file.is_file():
            raise RunError(f"{parser.source}: training ended without a run folder "
                           f"(exit code {code})")
        return Path(json.loads(run_file.read_text(encoding="utf-8"))["run_dir"])


def evaluate(checkpoint: str | Path, weights: str | None = None) -> dict[str, float]:
    """The checkpoint's (or run folder's) loss and metrics on its held-out test split, keyed
    by the configured metric names: test.py's numbers, with nothing written."""
    config = ConfigParser.from_checkpoint(best_of(Path(checkpoint)))
    data_loader = test_split_loader(config)
    _, model = trained_model(config, weights)
    device, _ = dist.setup_device(config["n_gpu"])
    metrics, _ = test_split_metrics(config, model.to(device), data_loader, device)
    return metrics
