"""Models out as standard files:  python test.py -r CKPT --export model.onnx|.pt2|.safetensors

The exported graph takes raw features, as test.py does: the model's
standardization buffers (BaseModel) are part of it. Each file is written to a
temporary folder beside its destination, run there on a test batch (the whole
first batch and its first example, so the dynamic batch dimension is exercised)
against the PyTorch output, and moved into place only when the max abs
difference is at most TOLERANCE (docs/export.md).

  .onnx         torch.onnx (the torch.export-based exporter; where that cannot
                trace the model, the TorchScript one), every input's batch
                dimension dynamic; checked with onnxruntime. Extra: onnx.
  .pt2          torch.export.export + torch.export.save, batch dimension
                dynamic; checked with torch.export.load. Packed sequences
                (LSTMClassifier) have data-dependent shapes torch.export cannot
                trace: a one-line error says so.
  .safetensors  the state_dict (safetensors.torch.save_file), the resolved
                config in the file's own metadata (key `config`, a JSON string);
                checked by loading both into a freshly built model. Extra: safetensors.

Nothing but FILE is ever written or replaced (and, for an ONNX model over 1.5
GB, its FILE.data); an existing FILE needs --force. Reading a .safetensors
back (api.load), its config is data: utils/registry.py Trust.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.config.parse_config import ConfigParser
from trainer.inference.weights import load_weights
from utils.errors import ConfigError, RunError
from utils.files import process_umask

TOLERANCE = 1e-4
Runner = Callable[[tuple], torch.Tensor]


@dataclass(frozen=True)
class Format:
    name: str
    packages: tuple[str, ...]  # what the export and its check import
    extra: str  # the pyproject extra that installs them


FORMATS = {".onnx": Format("ONNX", ("onnx", "onnxruntime", "onnxscript"), "onnx"),
           ".pt2": Format("torch.export", (), ""),
           ".safetensors": Format("safetensors", ("safetensors",), "safetensors")}


def check_export_target(path: Path, force: bool = False) -> Format:
    """The format of `path`, checked before any checkpoint or data is read: ConfigError for
    an unknown suffix, a folder, a FILE that exists (without `force`) or a parent that is not
    a folder; RunError for a missing extra."""
    fmt = export_format(path)
    if path.is_dir():
        raise ConfigError(f"--export {path}: is a folder; give a file name such as "
                          f"{path / ('model' + path.suffix.lower())}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"--export {path}: {path.parent} is not a folder")
    taken = [p for p in _written(path) if p.exists() or p.is_symlink()]
    if taken and not force:
        raise ConfigError(f"--export {path}: {taken[0]} exists; pass --force to replace it")
    return fmt


def _written(path: Path) -> list[Path]:
    """The files an export to `path` may write: FILE, and an ONNX model's external data."""
    return [path, Path(f"{path}.data")] if path.suffix.lower() == ".onnx" else [path]


def export_format(path: Path) -> Format:
    """The format `path` names (ConfigError for an unknown suffix, RunError for a missing
    extra)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--export {path}: unknown format '{path.suffix}' (expected a file "
                          f"ending in {', '.join(FORMATS)})")
    missing = [p for p in fmt.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise RunError(f"--export {path.name}: {fmt.name} export needs {', '.join(missing)}, "
                       f"not installed for {sys.executable}: pip install -e '.[{fmt.extra}]' "
                       f"(or pip install {' '.join(fmt.packages)})")
    return fmt


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _dynamic_batch(example: tuple) -> tuple:
    return tuple({0: torch.export.Dim.DYNAMIC} for _ in example)


def _input_names(example: tuple) -> list[str]:
    return ["input"] if len(example) == 1 else [f"input{i}" for i in range(len(example))]


# ---------------------------------------------------------------- the three formats

def _torch_export(model: torch.nn.Module, example: tuple, arch: str):
    try:
        return torch.export.export(model, example, dynamic_shapes=_dynamic_batch(example))
    except Exception as e:  # whatever torch.export cannot trace, said in one line
        raise RunError(f"torch.export cannot export {arch}: {_first_line(e)} (packed sequences, "
                       f"as in LSTMClassifier, have data-dependent shapes it cannot trace: "
                       f"export .onnx or .safetensors instead)") from None


def write_pt2(model, example: tuple, path: Path, config: dict) -> Runner:
    torch.export.save(_torch_export(model, example, config["arch"]["type"]), path)
    loaded = torch.export.load(path).module()
    return lambda inputs: loaded(*inputs)


def _over_protobuf_limit(model: torch.nn.Module) -> bool:
    """True when the weights need ONNX's external data file (model.onnx.data): over 1.5 GB."""
    return sum(v.numel() * v.element_size() for v in model.state_dict().values()) > 1.5e9


def _onnx_export(model, example: tuple, path: Path) -> None:
    names = _input_names(example)
    try:  # the torch.export-based exporter
        torch.onnx.export(model, example, path, dynamo=True, input_names=names,
                          output_names=["output"], dynamic_shapes=_dynamic_batch(example),
                          verbose=False, external_data=_over_protobuf_limit(model))
        return
    except Exception:  # e.g. packed sequences: the TorchScript exporter handles those
        Path(path).unlink(missing_ok=True)
    axes = {n: {d: f"{n}_dim{d}" for d in range(t.dim()) if d == 0 or not t.is_floating_point()}
            for n, t in zip(names, example)}  # token sequences: their length varies too
    torch.onnx.export(model, example, path, dynamo=False, input_names=names,
                      output_names=["output"], dynamic_axes=axes)


def write_onnx(model, example: tuple, path: Path, config: dict) -> Runner:
    import onnxruntime

    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)  # the exporters' notes are not the user's concern
    try:
        _onnx_export(model, example, path)
    except Exception as e:
        raise RunError(f"torch.onnx cannot export {config['arch']['type']}: "
                       f"{_first_line(e)}") from None
    finally:
        torch_logger.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: torch.from_numpy(
        session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])


def model_from_safetensors(path: Path, trust_config: bool = False,
                           flag: str = "--trust-config") -> tuple[torch.nn.Module, dict]:
    """A fresh model (eval mode) built from the config in `path`'s metadata, its weights from
    `path`. The config is data unless `trust_config` (`flag`: how the user says so)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ConfigError(f"{path}: not a readable .safetensors file: {_first_line(e)}") from None
    if "config" not in meta:
        raise ConfigError(f"{path}: its metadata holds no 'config' (not exported by test.py "
                          f"--export, or by an older version: export it again)")
    try:
        raw = json.loads(meta["config"])
    except ValueError as e:
        raise ConfigError(f"{path}: the 'config' in its metadata is not JSON: "
                          f"{_first_line(e)}") from None
    config = ConfigParser.from_stored(raw, path, trust_config, flag,
                                      origin="a .safetensors export's metadata")
    model = config.build_model()
    load_weights(model, state, path, config["arch"]["type"])
    return model.eval(), config.config


def write_safetensors(model, example: tuple, path: Path, config: dict) -> Runner:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={"arch": config["arch"]["type"],
                                     "config": json.dumps(config, sort_keys=True)})
    # read back as written: this process made the file from a config it already accepted
    fresh, _ = model_from_safetensors(path, trust_config=True)
    return lambda inputs: fresh(*inputs)


WRITERS = {".onnx": write_onnx, ".pt2": write_pt2, ".safetensors": write_safetensors}


# ---------------------------------------------------------------- write, check, move

@torch.no_grad()
def max_abs_diff(model: torch.nn.Module, run: Runner, example: tuple) -> float:
    """Largest |exported - PyTorch| on the batch and on its first example alone."""
    worst = 0.0
    for inputs in (example, tuple(t[:1] for t in example)):
        expected, got = model(*inputs), run(inputs)
        if tuple(got.shape) != tuple(expected.shape):
            return float("inf")
        worst = max(worst, (got.double() - expected.double()).abs().max().item())
    return worst


def export_model(model: torch.nn.Module, config: dict, example: tuple, path: Path) -> float:
    """Write `model` (CPU, eval mode) to `path` in the format its suffix names, check it on
    `example` (a test batch's inputs) and return the max abs difference."""
    fmt = export_format(path)
    model = model.cpu().eval()
    example = tuple(t.cpu() for t in example)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                diff = max_abs_diff(model, WRITERS[path.suffix.lower()](
                    model, example, staged, config), example)
            if not diff <= TOLERANCE:
                raise RunError(f"--export {path}: the {fmt.name} file's outputs differ from "
                               f"PyTorch's by {diff:.3g} (more than {TOLERANCE:g}); not saved")
            for written in sorted(Path(tmp).iterdir()):
                written.chmod(0o666 & ~process_umask())  # safetensors writes 0600
                os.replace(written, path.parent / written.name)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e}") from None
    return diff


def export_test_batch(model: torch.nn.Module, config: dict, loader, path: Path) -> int:
    """test.py --export: export, check on the first test batch, print the difference."""
    batch = next(iter(loader), None)
    if batch is None:
        raise ConfigError(f"--export {path}: the test split is empty: no batch to check on")
    diff = export_model(model, config, tuple(batch)[:-1], path)
    print(f"max abs diff against PyTorch on a test batch: {diff:.3g}")
    print(f"saved {path}")
    return 0
