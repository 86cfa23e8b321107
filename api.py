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

A checkpoint's (or export's) config is data: its dotted types pick only classes of the
kind each key needs, unless `trust_config=True` (docs/checkpoints.md, "Trust").
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
from trainer.config.parse_config import ConfigParser
from trainer.inference.export import model_from_safetensors
from trainer.inference.predict import model_outputs
from trainer.inference.testing import best_of, test_split_loader, test_split_metrics, trained_model
from trainer.run.training import train as run_training
from utils import dist
from utils.config_io import load_config_file
from utils.errors import ConfigError, RunError

__all__ = ["ConfigError", "Interrupted", "RunError", "evaluate", "load", "predict", "train"]


TRUST_FLAG = "trust_config=True"  # how an api user allows any type, for the error message


def load(checkpoint: str | Path, weights: str | None = None,
         trust_config: bool = False) -> tuple[torch.nn.Module, dict]:
    """(model, resolved config) of a checkpoint, a run folder (its model_best.pth) or a
    .safetensors export (its config in the file's metadata). The model is in eval mode on the
    CPU and standardizes its inputs itself: give it raw features. `weights`: raw, ema or swa
    (None: the weights the run monitored, as test.py). The stored config is data unless
    `trust_config`: its dotted types may name only classes of the kind each key needs."""
    path = best_of(Path(checkpoint))
    if path.suffix == ".safetensors":
        return model_from_safetensors(path, trust_config, TRUST_FLAG)
    config = ConfigParser.from_checkpoint(path, trust_config, TRUST_FLAG)
    _, model = trained_model(config, weights)
    return model, config.config


EXPECTED_INPUTS = "a tensor, a NumPy array or a nested list of numbers"


def _tensor(x: Any, where: str) -> torch.Tensor:
    """`x` as a tensor (floating values as float32), or a ConfigError naming `where`."""
    if x is None or isinstance(x, str | bytes | dict):
        raise ConfigError(f"predict: {where}: expected {EXPECTED_INPUTS}, got "
                          f"{type(x).__name__}")
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())
        raise ConfigError(f"predict: {where}: cannot be read as numbers ({reason}); expected "
                          f"{EXPECTED_INPUTS}, every example with the same number of "
                          f"values") from None
    return t.float() if t.is_floating_point() else t


def _examples(inputs: Any) -> tuple[torch.Tensor, ...]:
    """The inputs as tensors whose first dimension counts the examples: a 1-D first input is
    one example (its features, or one sequence's token ids), given a batch dimension."""
    several = isinstance(inputs, tuple)
    xs = tuple(_tensor(x, f"inputs[{i}]" if several else "inputs")
               for i, x in enumerate(inputs if several else (inputs,)))
    if xs and xs[0].dim() == 1 and len(xs[0]) > 0:
        xs = tuple(x.unsqueeze(0) for x in xs)
    return xs


def predict(checkpoint_or_model: str | Path | torch.nn.Module, inputs: Any,
            trust_config: bool = False) -> torch.Tensor:
    """The model's outputs (logits for classification) for raw `inputs`, on the CPU: one row
    per example, (n_examples, n_outputs).

    `inputs`: a tensor, NumPy array or nested list of examples, one per row (floating values
    become float32); a 1-D input is one example, its output shape (1, n_outputs); a tuple for a
    model of several inputs (the sequence models: token ids, lengths). A checkpoint or run
    folder is loaded with load() (`trust_config` as there); a model keeps its device and its
    train/eval mode (it runs in eval mode, without gradients)."""
    model = checkpoint_or_model
    if not isinstance(model, torch.nn.Module):
        model = load(model, trust_config=trust_config)[0]
    xs = _examples(inputs)
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


def evaluate(checkpoint: str | Path, weights: str | None = None,
             trust_config: bool = False) -> dict[str, float]:
    """The checkpoint's (or run folder's) loss and metrics on its held-out test split, keyed
    by the configured metric names: test.py's numbers, with nothing written. The stored
    config is data unless `trust_config` (as in load())."""
    config = ConfigParser.from_checkpoint(best_of(Path(checkpoint)), trust_config, TRUST_FLAG)
    data_loader = test_split_loader(config)
    _, model = trained_model(config, weights)
    device, _ = dist.setup_device(config["n_gpu"])
    metrics, _ = test_split_metrics(config, model.to(device), data_loader, device)
    return metrics
