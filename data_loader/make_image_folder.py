"""Write scikit-learn's bundled digits as 28x28 grayscale PNGs in DIR/<class>/ (offline):

    python data_loader/make_image_folder.py DIR

Each of the 1,797 8x8 digits is scaled up (bicubic) to 19 to 21 pixels, turned by up to 5
degrees and placed in a 28x28 black canvas up to 1 pixel off centre: light jitter, drawn
from a generator seeded with --seed, so the same command writes the same files. Names:
DIR/<digit>/<index>.png (index: the digit's row in load_digits). Needs Pillow (the vision
extra: pip install -e ".[vision]").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

CANVAS = 28


def render(digit: np.ndarray, rng: np.random.Generator):
    """One 8x8 digit (values 0..16) as a 28x28 'L' image with light jitter."""
    from PIL import Image

    pixels = np.clip(digit.reshape(8, 8) * (255 / 16), 0, 255).astype(np.uint8)
    side = int(rng.integers(19, 22))
    angle = float(rng.uniform(-5, 5))
    dx, dy = (int(v) for v in rng.integers(-1, 2, size=2))
    glyph = Image.fromarray(pixels, mode="L").resize((side, side), Image.Resampling.BICUBIC)
    glyph = glyph.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    offset = (CANVAS - side) // 2
    canvas.paste(glyph, (offset + dx, offset + dy))
    return canvas


def write_digits(folder: Path, seed: int = 0) -> int:
    """Write the PNGs under `folder`; the number of files written."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    for k in range(10):
        (folder / str(k)).mkdir(parents=True, exist_ok=True)
    for i, (digit, label) in enumerate(zip(x, y)):
        render(digit, rng).save(folder / str(int(label)) / f"{i:04d}.png", optimize=False)
    return len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", metavar="DIR", help="where to write DIR/<class>/<index>.png")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter (default 0)")
    args = parser.parse_args(argv)
    try:
        import PIL  # noqa: F401
    except ImportError:
        print('error: this script needs Pillow (the vision extra): pip install -e ".[vision]"',
              file=sys.stderr)
        return 1
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        print(f"error: {folder} exists and is not a folder", file=sys.stderr)
        return 2
    n = write_digits(folder, args.seed)
    print(f"wrote {n} images in {folder}/<class>/ (10 classes, 28x28 grayscale PNG)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
