"""ImageFolderDataLoader: image files (a class-per-folder tree or a CSV of path,label),
decoded with Pillow, augmented per batch with kornia on the model's device.

The dataset yields uint8 batches (in the worker processes when num_workers > 0); the loader's
iterator moves each batch to its device (`set_device`, called by the training code once the
model is there), scales it to [0, 1] and runs the split's transforms (data_loader/
image_transforms.py, seeded by the batch's place in the data order). Normalization belongs to
the model: `normalize` fills its input_mean / input_std buffers (feature_stats), as the
tabular loaders' standardization does, so test.py and --predict need nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from base import BaseDataLoader
from base.base_data_loader import IndexedLoader
from data_loader.image_files import (
    ImageDataset,
    csv_rows,
    image_table,
    images_under,
    is_image,
    require_vision,
)
from data_loader.image_transforms import BatchTransform, batch_seed, build_transforms
from utils.errors import ArgError, ConfigError
from utils.registry import TRUSTED, Trust


class OnDevice:
    """Mixin of an IndexedLoader whose batches go through a BatchTransform on iteration."""

    transform: BatchTransform

    def set_device(self, device: torch.device) -> None:
        """Move batches to `device` and transform them there."""
        self.transform.to(device)

    def __iter__(self):
        sampler = self.batch_sampler
        seed, epoch, rank = sampler.seed, sampler.epoch, sampler.rank
        for i, batch in enumerate(super().__iter__(), start=sampler.start_batch):
            yield self.transform(batch, batch_seed(seed, epoch, i, rank))


class ImageBatches(OnDevice, IndexedLoader):
    """An IndexedLoader over image files with a BatchTransform (validation and predictions)."""

    def __init__(self, dataset: ImageDataset, indices: torch.Tensor, batch_size: int,
                 transform: BatchTransform, **kwargs: Any):
        self.transform = transform
        super().__init__(dataset, indices, batch_size, False, even=False, **kwargs)


def _check_normalize(normalize: Any, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Explicit {mean, std} as (channels,) tensors; None for auto or null."""
    if normalize is None or normalize == "auto":
        return None
    if not isinstance(normalize, dict) or set(normalize) != {"mean", "std"}:
        raise ArgError("normalize", f"expected auto, null or {{mean: [..], std: [..]}} (one "
                                    f"number per channel), got {normalize!r}")
    stats = []
    for key in ("mean", "std"):
        v = normalize[key]
        ok = isinstance(v, list) and len(v) == channels and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        if not ok or (key == "std" and any(x <= 0 for x in v)):
            what = "positive numbers" if key == "std" else "numbers"
            raise ArgError(f"normalize.{key}", f"expected a list of {channels} {what} (one per "
                                               f"channel), got {v!r}")
        stats.append(torch.tensor(v, dtype=torch.float32))
    return stats[0], stats[1]


class ImageFolderDataLoader(OnDevice, BaseDataLoader):
    """Images in `root/<class>/<image>` (png, jpg; classes sorted by folder name) or listed in a
    CSV file of `path,label`, resized to `image_size` x `image_size` with `channels` 1 (L) or
    3 (RGB). Batches are float32 (B, channels, image_size, image_size) in [0, 1], after the
    transforms of the split (`train_transforms` for training, `eval_transforms` otherwise).

    `normalize`: auto (per-channel mean and std of the training split, stored in the model's
    input_mean / input_std buffers), {mean: [..], std: [..]}, or null (none).
    """

    def __init__(self, root: str, image_size: int, channels: int = 3, batch_size: int = 64,
                 shuffle: bool = True, validation_split=0.1, test_split=0.2,
                 num_workers: int = 0, normalize: str | dict | None = None,
                 train_transforms: list | None = None, eval_transforms: list | None = None,
                 split_seed: int = 0, training: bool = True, seed: int = 0,
                 trust: Trust = TRUSTED):
        require_vision("data_loader.type: ImageFolderDataLoader")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ArgError("image_size", f"expected a positive integer (pixels per side), got "
                                         f"{image_size!r}")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise ArgError("channels", f"expected 1 (grayscale) or 3 (RGB), got {channels!r}")
        self.explicit_stats = _check_normalize(normalize, channels)
        self.normalize = normalize
        self.image_size, self.channels = image_size, channels
        train = build_transforms(train_transforms, "train_transforms", trust)
        evaluation = build_transforms(eval_transforms, "eval_transforms", trust)
        self.eval_transform = BatchTransform(evaluation)
        self.transform = BatchTransform(train) if training else self.eval_transform
        files, labels, self.class_names = image_table(root)
        dataset = ImageDataset(files, labels, image_size, channels)
        super().__init__(dataset, batch_size, shuffle, validation_split, num_workers,
                         test_split=test_split, training=training, seed=seed,
                         split_seed=split_seed)

    def set_device(self, device: torch.device) -> None:
        self.transform.to(device)
        self.eval_transform.to(device)

    def split_validation(self) -> ImageBatches | None:
        if not self.training or len(self.valid_indices) == 0:
            return None
        return ImageBatches(self.dataset, self.valid_indices, self.eval_batch_size,
                            self.eval_transform, **self.loader_args)

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-channel (channels, 1, 1) mean and std for the model's buffers, or None."""
        if self.normalize is None:
            return None
        if self.explicit_stats is not None:
            mean, std = self.explicit_stats
        else:
            mean, std = self.dataset.channel_stats(self.train_indices)
        return mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)

    def prediction_batches(self, source: str) -> tuple[ImageBatches, list[str]]:
        """(batches of the images in a folder, at any depth, or listed in a CSV's `path`
        column, through the eval transforms; their paths as the table shows them)."""
        path = Path(source).expanduser()
        if path.is_dir():
            files = images_under(path)
            shown = [str(f.relative_to(path)) for f in files]
        elif path.is_file() and not is_image(path):
            try:
                files, _, shown = csv_rows(path, "--predict", need_label=False)
            except ArgError as e:
                raise ConfigError(f"--predict: {e}") from None
        else:
            raise ConfigError(f"--predict {source}: not found (expected a folder of images or a "
                              f"CSV file with a path column)")
        if not files:
            raise ConfigError(f"--predict {source}: no image files in it")
        dataset = ImageDataset(files, [0] * len(files), self.image_size, self.channels)
        batches = ImageBatches(dataset, torch.arange(len(files)), self.eval_batch_size,
                               self.eval_transform, **self.loader_args)
        return batches, shown
