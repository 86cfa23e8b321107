"""Batch transforms of ImageFolderDataLoader: kornia.augmentation classes named in the config,
run on whole batches on the model's device.

`train_transforms` / `eval_transforms` are lists of `{type, args}` (or a bare name):
a name is a class of kornia.augmentation; a dotted path is imported (utils/registry.py
resolve_type: where the config is data, only a torch.nn.Module class).

Randomness: each batch's transforms draw from torch's generator seeded with (run seed,
loader epoch, batch index, rank), inside torch.random.fork_rng: a pure function of the data
order, like the sampler's (seed, epoch) permutation. The global generator is left as it was,
so a mid-epoch resume (any num_workers) sees the same augmented batches as a straight run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from utils.errors import ArgError, unknown_name
from utils.registry import TRUSTED, Kind, Trust, is_import_path, resolve_type

MODULE = Kind("a subclass of torch.nn.Module", (nn.Module,))


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """The seed of one batch's transforms: a pure function of where the batch is."""
    value = 0x9E3779B97F4A7C15
    for part in (seed, epoch, batch, rank):
        value = (value * 1_000_003 + int(part)) % (2**63)
    return value


def kornia_augmentations() -> dict[str, type]:
    """The classes of kornia.augmentation by name."""
    import kornia.augmentation as K

    return {name: obj for name, obj in vars(K).items()
            if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_")}


def _spec(entry: Any, arg: str) -> tuple[Any, dict]:
    if isinstance(entry, str):
        return entry, {}
    if not isinstance(entry, dict) or "type" not in entry or set(entry) - {"type", "args"}:
        raise ArgError(arg, f"expected {{type: Name, args: {{...}}}} or a name, got {entry!r}")
    args = entry.get("args") or {}
    if not isinstance(args, dict):
        raise ArgError(f"{arg}.args", f"expected a mapping of argument names to values, "
                                      f"got {args!r}")
    return entry["type"], args


def build_transforms(specs: Any, arg: str, trust: Trust = TRUSTED) -> nn.Module | None:
    """An nn.Sequential of the configured transforms (None for an empty list)."""
    if specs is None:
        return None
    if not isinstance(specs, list):
        raise ArgError(arg, f"expected a list of {{type, args}}, got {specs!r}")
    found = None
    modules = []
    for i, entry in enumerate(specs):
        where = f"{arg}[{i}]"
        name, args = _spec(entry, where)
        if is_import_path(name):
            cls = resolve_type(name, f"data_loader.args.{where}.type", trust, MODULE)
        else:
            found = found if found is not None else kornia_augmentations()
            if not isinstance(name, str) or name not in found:
                raise ArgError(f"{where}.type", unknown_name("kornia augmentation", name, found))
            cls = found[name]
        try:
            module = cls(**args)
        except (TypeError, ValueError) as e:
            raise ArgError(f"{where}.args", f"{name}: {' '.join(str(e).split())}") from None
        if not isinstance(module, nn.Module):
            raise ArgError(f"{where}.type", f"{name} gave a {type(module).__name__}, not a "
                                            f"torch.nn.Module")
        modules.append(module)
    return nn.Sequential(*modules) if modules else None


class BatchTransform:
    """uint8 images to float in [0, 1] on the device, then the transforms, seeded per batch."""

    def __init__(self, module: nn.Module | None):
        self.module = module
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> None:
        self.device = torch.device(device)
        if self.module is not None:
            self.module.to(self.device)

    def __call__(self, batch: tuple, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch[0], batch[-1]
        device = self.device
        x = images.to(device, non_blocking=True).to(torch.float32).div_(255)
        y = labels.to(device, non_blocking=True)
        if self.module is None:
            return x, y
        forked = [] if device.type == "cpu" else [device.index or 0]
        with torch.random.fork_rng(devices=forked, device_type=device.type), torch.no_grad():
            torch.manual_seed(seed)
            x = self.module(x)
        return x, y
