"""Predictions of a trained model: on the test split, a user's CSV file of features, or images.

    python test.py -r <checkpoint> --predict [input.csv | FOLDER | images.csv] [--output FILE]

The model standardizes its inputs itself (BaseModel's buffers), so raw
features go in as they are. Classification (integer targets, more than one
output per example) writes the predicted class and the softmax probability
of every class; regression writes the output values.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from logger.class_report import is_classification
from trainer.loop.trainer import eval_batches
from utils.csv_table import cell_place, is_number_text, parse_number, read_rows, write_csv
from utils.errors import ConfigError

BATCH_SIZE = 1024


# ---------------------------------------------------------------- running the model

def collect_outputs(model, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs and the targets over every batch of `loader`, on the CPU."""
    outputs, targets = [], []
    for output, target, _ in eval_batches(model, loader, device):
        outputs.append(output.cpu())
        targets.append(target.cpu())
    if not outputs:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(outputs), torch.cat(targets)


@torch.no_grad()
def model_outputs(model, inputs: tuple[torch.Tensor, ...], device) -> torch.Tensor:
    """The model's outputs (eval mode, on the CPU) for `inputs`, run BATCH_SIZE rows at a time."""
    model.eval()
    chunks = zip(*(t.split(BATCH_SIZE) for t in inputs))
    return torch.cat([model(*(t.to(device) for t in chunk)).cpu() for chunk in chunks])


def probe_batch(loader) -> tuple | None:
    """The first batch (inputs..., target) of `loader`, or None when it is empty."""
    for batch in loader:
        return tuple(batch)
    return None


# ---------------------------------------------------------------- reading a user's CSV

def read_features(path: Path, n_features: int, names: list[str] | None = None,
                  target: str | None = None) -> torch.Tensor:
    """A float32 tensor (rows, n_features) from a CSV file; an optional header row is skipped.

    A first row with no number in it is a header. Errors name the file, the
    row (and line) and the column; a header with columns the model does not take (`names`:
    the training features; `target`: the label column) names them.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: input file not found")
    try:
        return _features(path, n_features, names, target)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _features(path: Path, n_features: int, names: list[str] | None = None,
              target: str | None = None) -> torch.Tensor:
    lines = read_rows(path)
    header = None
    if lines and not any(is_number_text(c) for c in lines[0][1]):
        line_no, header = lines.pop(0)
        if len(header) != n_features:
            raise ValueError(f"{path}: the header (line {line_no}) names {len(header)} columns, "
                             f"expected {n_features} (the model's input features)"
                             + _extra_columns(header, names, target))
    if not lines:
        raise ValueError(f"{path}: no rows of features")
    values = []
    for row_no, (line_no, row) in enumerate(lines, start=1):
        if len(row) != n_features:
            raise ValueError(f"{path}: row {row_no} (line {line_no}) has {len(row)} columns, "
                             f"expected {n_features} (the model's input features)")
        values.append([parse_number(cell, cell_place(path, row_no, line_no, _column_label(
            col_no, header))) for col_no, cell in enumerate(row, start=1)])
    return torch.tensor(values, dtype=torch.float32)


def _extra_columns(header: list[str], names: list[str] | None, target: str | None) -> str:
    """'; drop the column 'label' (the label ...)' for header columns the model does not take."""
    extra = [h for h in header if h not in names] if names else \
        [h for h in header if h == target]
    if not extra:
        return ""
    label = f" ('{target}' is the label column: --predict reads features only)" \
        if target in extra else ""
    return f"; drop the column(s) {', '.join(repr(h) for h in extra)}{label}"


def _column_label(col_no: int, header: list[str] | None) -> str:
    """'6 ('pixel_5')' with a header row, else '6'."""
    return f"{col_no} ('{header[col_no - 1]}')" if header else str(col_no)


# ---------------------------------------------------------------- writing

def _columns(name: str, width: int) -> list[str]:
    return [name] if width == 1 else [f"{name}_{i}" for i in range(width)]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1)


def prediction_table(output: torch.Tensor, classification: bool) -> tuple[list[str], list[list]]:
    """Column names and rows: class and probabilities, or the output values."""
    if classification:
        probs = torch.softmax(output.double(), dim=1)
        header = ["prediction", *[f"prob_{c}" for c in range(output.shape[1])]]
        rows = [[int(k), *(f"{p:.6g}" for p in ps)]
                for k, ps in zip(output.argmax(dim=1).tolist(), probs.tolist())]
        return header, rows
    values = _flat(output.double())
    return _columns("prediction", values.shape[1]), [[f"{v:.8g}" for v in r]
                                                     for r in values.tolist()]


def _target_cells(target: torch.Tensor, classification: bool) -> tuple[list[str], list[list]]:
    if classification:
        return ["target"], [[int(t)] for t in target.tolist()]
    values = _flat(target.double())
    return _columns("target", values.shape[1]), [[f"{v:.8g}" for v in r] for r in values.tolist()]


# ---------------------------------------------------------------- the two cases

def predict_test_split(model, loader, device, out: Path) -> Path:
    """predictions.csv for the test split: index, target, prediction (and probabilities)."""
    output, target = collect_outputs(model, loader, device)
    if len(output) == 0:
        raise ConfigError("the checkpoint's config holds out no test split "
                          "(data_loader.args.test_split is 0): give --predict INPUT.csv")
    classification = is_classification(output, target)
    header, rows = prediction_table(output, classification)
    t_header, t_rows = _target_cells(target, classification)
    indices = getattr(loader, "indices", None)
    if indices is None or len(indices) != len(output):
        indices = torch.arange(len(output))
    write_csv(out, ["index", *t_header, *header],
              [[i, *t, *r] for i, t, r in zip(indices.tolist(), t_rows, rows)])
    return out


def _feature_shape(model, probe: tuple | None, arch: str) -> tuple[int, ...]:
    """The shape of one example's features, from a test batch or the model's buffers."""
    if probe is not None:
        inputs = probe[:-1]
        if len(inputs) != 1 or not inputs[0].is_floating_point():
            kinds = ", ".join(f"{t.dtype} {list(t.shape[1:])}" for t in inputs)
            raise ConfigError(f"--predict FILE: {arch} takes inputs ({kinds}), not one row of "
                              f"numeric features; use --predict without a file to predict "
                              f"the test split")
        return tuple(inputs[0].shape[1:])
    mean = getattr(model, "input_mean", None)
    if isinstance(mean, torch.Tensor):
        return tuple(mean.shape)
    raise ConfigError(f"--predict FILE: cannot tell how many features {arch} takes "
                      "(no test split and no standardization buffers)")


@torch.no_grad()
def predict_file(model, loader, device, input_csv: Path, out: Path, arch: str = "") -> Path:
    """predictions.csv for a CSV of raw features: row, prediction (and probabilities)."""
    probe = probe_batch(loader)
    shape = _feature_shape(model, probe, arch or type(model).__name__)
    n_features = math.prod(shape)
    x = read_features(input_csv, n_features, getattr(loader, "feature_names", None),
                      getattr(loader, "target", None)).reshape(-1, *shape)
    output = model_outputs(model, (x,), device)
    target = probe[-1] if probe is not None else None
    header, rows = prediction_table(output, is_classification(output, target))
    write_csv(out, ["row", *header], [[i, *r] for i, r in enumerate(rows, start=1)])
    return out


@torch.no_grad()
def predict_images(model, loader, device, source: str, out: Path) -> Path:
    """predictions.csv for image files (a folder, at any depth, or a CSV's `path` column;
    `loader.prediction_batches`): path, predicted class name, each class's probability."""
    batches, paths = loader.prediction_batches(source)
    batches.set_device(device)
    output, _ = collect_outputs(model, batches, device)
    names = list(loader.class_names)
    if output.dim() != 2 or output.shape[1] != len(names):
        raise ConfigError(f"--predict {source}: the model gives {list(output.shape[1:])} "
                          f"outputs per image, the data has {len(names)} classes")
    probs = torch.softmax(output.double(), dim=1)
    rows = [[p, names[k], *(f"{v:.6g}" for v in ps)]
            for p, k, ps in zip(paths, output.argmax(dim=1).tolist(), probs.tolist())]
    write_csv(out, ["path", "prediction", *[f"prob_{n}" for n in names]], rows)
    return out


def predict(model, loader, device, input_csv: str | None, out: Path, arch: str = "") -> Path:
    """Predictions of the test split (input_csv None or ''), of image files (a loader with
    `prediction_batches`: a folder or CSV of paths) or of a CSV file of features, to `out`."""
    if input_csv and callable(getattr(loader, "prediction_batches", None)):
        return predict_images(model, loader, device, input_csv, out)
    if input_csv:
        return predict_file(model, loader, device, Path(input_csv), out, arch)
    return predict_test_split(model, loader, device, out)
