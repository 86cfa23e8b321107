"""Image files for ImageFolderDataLoader: which files (a class-per-folder tree or a CSV of
`path,label`), and their pixels (decoded with Pillow, the optional `vision` extra).

A folder tree follows torchvision's ImageFolder convention: `root/<class>/<image>`, the
classes sorted by folder name, the files of each class sorted by path (subfolders of a class
folder included). A CSV has a header row with the columns `path` and `label`; relative paths
are read from the CSV's folder. Labels that are all non-negative integers are the class ids;
other labels are class names, ids 0..K-1 in sorted order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from data_loader.csv_file import class_ids, resolve_path
from utils.csv_table import read_rows
from utils.errors import ArgError, RunError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MODES = {1: "L", 3: "RGB"}
INSTALL = 'pip install -e ".[vision]"'


def require_vision(what: str) -> None:
    """RunError (one line) when Pillow or kornia cannot be imported."""
    missing = []
    for module, package in (("PIL", "pillow"), ("kornia", "kornia")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise RunError(f"{what} needs {' and '.join(missing)} (the vision extra), not installed "
                       f"for {sys.executable}: {INSTALL}")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def images_under(folder: Path) -> list[Path]:
    """Every image file below `folder`, at any depth, sorted by path."""
    found = []
    for dirpath, _dirs, files in os.walk(folder, followlinks=True):
        found += [Path(dirpath) / f for f in files if is_image(Path(f))]
    return sorted(found)


def folder_tree(root: Path, arg: str = "root") -> tuple[list[Path], list[int], list[str]]:
    """(files, class ids, class names) of `root/<class>/<image>`."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise ArgError(arg, f"{root} has no class folders (expected {root}/<class>/<image>)")
    files, labels = [], []
    for k, name in enumerate(classes):
        found = images_under(root / name)
        if not found:
            raise ArgError(arg, f"{root / name}: no image files ({', '.join(IMAGE_SUFFIXES)}) "
                                f"in class folder '{name}'")
        files += found
        labels += [k] * len(found)
    return files, labels, classes


def csv_rows(path: Path, arg: str, need_label: bool = True
             ) -> tuple[list[Path], list[str], list[str]]:
    """(image paths, label cells, paths as written) of a CSV with the columns `path` and
    `label` (the label column may be missing when `need_label` is false: its cells are '')."""
    try:
        rows = read_rows(path)
    except ValueError as e:
        raise ArgError(arg, str(e)) from None
    header = [h.strip() for h in rows.pop(0)[1]] if rows else []
    wanted = ["path", "label"] if need_label else ["path"]
    for col in wanted:
        if col not in header:
            raise ArgError(arg, f"{path}: no '{col}' column in the header (expected the columns "
                                f"{','.join(wanted)}; found: {','.join(header) or 'nothing'})")
    if not rows:
        raise ArgError(arg, f"{path}: no rows below the header")
    p_col = header.index("path")
    l_col = header.index("label") if "label" in header else None
    files, labels, written = [], [], []
    for i, (line, cells) in enumerate(rows, start=1):
        if len(cells) != len(header):
            raise ArgError(arg, f"{path}: row {i} (line {line}) has {len(cells)} fields, the "
                                f"header has {len(header)}")
        written.append(cells[p_col].strip())
        file = Path(written[-1]).expanduser()
        files.append(file if file.is_absolute() else path.parent / file)
        labels.append(cells[l_col].strip() if l_col is not None else "")
        if need_label and not labels[-1]:
            raise ArgError(arg, f"{path}: row {i} (line {line}): empty label")
    return files, labels, written


def csv_table(path: Path, arg: str = "root") -> tuple[list[Path], list[int], list[str]]:
    """(files, class ids, class names) of a CSV of `path,label`."""
    files, cells, _ = csv_rows(path, arg)
    ids, names = class_ids(cells)
    if not names:  # integer labels: the ids themselves
        names = [str(k) for k in range(max(ids) + 1)]
    return files, ids, names


def image_table(root: str, arg: str = "root") -> tuple[list[Path], list[int], list[str]]:
    """(files, class ids, class names) of `root`: a folder tree or a CSV file."""
    if not isinstance(root, str) or not root:
        raise ArgError(arg, f"expected a folder of class folders or a CSV file, got {root!r}")
    path = resolve_path(root)
    if path.is_dir():
        return folder_tree(path, arg)
    if path.is_file():
        return csv_table(path, arg)
    raise ArgError(arg, f"not found: {path} (expected a folder {root}/<class>/<image> or a "
                        f"CSV file of path,label)")


def decode(path: Path, size: int, channels: int) -> torch.Tensor:
    """The image at `path` as uint8 (channels, size, size): converted to L or RGB with Pillow,
    resized (bilinear) when it is not size x size already."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(MODES[channels])
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.array(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise RunError(f"cannot read the image {path}: {e}") from None
    t = torch.from_numpy(pixels)
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()


class ImageDataset(Dataset):
    """Image files with one class id each, decoded on access: a batch is uint8
    (B, channels, size, size) and int64 (B,) labels (`__getitems__`: a whole batch per call,
    in the worker processes when num_workers > 0)."""

    def __init__(self, files: list[Path], labels: list[int], size: int, channels: int):
        self.files = list(files)
        self.targets = torch.as_tensor(labels, dtype=torch.int64)
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(self.files[index], self.size, self.channels), self.targets[index]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        images = [decode(self.files[i], self.size, self.channels) for i in indices.tolist()]
        if not images:
            return torch.zeros(0, self.channels, self.size, self.size, dtype=torch.uint8), \
                self.targets[indices]
        return torch.stack(images), self.targets[indices]

    def channel_stats(self, indices: torch.Tensor, chunk: int = 256
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (population) of the pixels in [0, 1] of `indices`."""
        total = torch.zeros(self.channels, dtype=torch.float64)
        squares = torch.zeros(self.channels, dtype=torch.float64)
        count = 0
        for part in indices.split(chunk):
            x = self.__getitems__(part)[0].double().div_(255)
            total += x.sum((0, 2, 3))
            squares += x.square().sum((0, 2, 3))
            count += x.numel() // self.channels
        mean = total / max(count, 1)
        std = (squares / max(count, 1) - mean.square()).clamp_min(0).sqrt()
        return mean.float(), std.float()
