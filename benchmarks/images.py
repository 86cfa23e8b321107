"""Images per second of train.py's loop against a hand-written loop over the same image folder.

    OMP_NUM_THREADS=1 python benchmarks/images.py [--root DIR] [--epochs 2] [--reps 3]
                                                   [--workers 0 2] [KEY.PATH=VALUE ...]

Both variants train config/images_cnn.yaml's model (same seed, so identical starts) on the
same folder (`--root`; by default the digits written by data_loader/make_image_folder.py into
a temporary folder), with the same batch size, Pillow decoding, kornia transforms and
validation pass. The hand-written loop is what a user would write: a Dataset that opens each
file with Pillow, torch's DataLoader (shuffle, default collate, the same num_workers), the
kornia augmentations called on each batch, forward / cross-entropy / backward / step, and a
validation pass. The project's loop: the Trainer with ImageFolderDataLoader.

For each num_workers in `--workers`, one process builds both, warms each up for an epoch,
then alternates them, `--reps` blocks of `--epochs` epochs; printed: the medians of the
blocks' training images per second (training-split images / epoch seconds, the validation
pass included in the seconds) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.overhead import TrainerRunner  # noqa: E402
from benchmarks.plain_loop import EpochRunner, alternating_seconds  # noqa: E402
from trainer.config.parse_config import ConfigParser  # noqa: E402

CONFIG = REPO / "config/images_cnn.yaml"
WARMUP_EPOCHS = 1


def build(args, workers: int, epochs: int):
    """config/images_cnn.yaml's components, outputs in a temporary folder, quiet logs."""
    tmp = tempfile.mkdtemp(prefix="images-bench-")
    ns = argparse.Namespace(config=CONFIG, resume=None, lr=None, bs=None, overrides=[
        f"data_loader.args.root={args.root}", f"data_loader.args.num_workers={workers}",
        *args.overrides, f"trainer.save_dir={tmp}", "trainer.verbosity=0",
        f"trainer.epochs={epochs}", "trainer.save_period=1000000", "trainer.monitor=off",
        "trainer.early_stop=0", "trainer.tensorboard=false"])
    config = ConfigParser.from_args(ns)
    return config, config.build_all()


class Files(torch.utils.data.Dataset):
    """The hand-written dataset: (path, label) pairs, each opened with Pillow on access."""

    def __init__(self, items: list[tuple[Path, int]], size: int, mode: str):
        self.items, self.size, self.mode = items, size, mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            im = im.convert(self.mode)
            if im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.array(im, dtype=np.uint8))
        x = x.unsqueeze(0) if self.mode == "L" else x.permute(2, 0, 1)
        return x, label


class PlainRunner(EpochRunner):
    """The loop a user would write by hand over the same files and splits."""

    def __init__(self, config, parts, workers: int):
        import kornia.augmentation as K

        loader = parts.data_loader
        files, labels = loader.dataset.files, loader.dataset.targets.tolist()
        args = config["data_loader"]["args"]
        mode = "L" if args["channels"] == 1 else "RGB"

        def subset(indices):
            return Files([(files[i], labels[i]) for i in indices.tolist()],
                         args["image_size"], mode)

        bs = args["batch_size"]
        self.train = torch.utils.data.DataLoader(subset(loader.train_indices), bs, shuffle=True,
                                                 num_workers=workers)
        self.valid = torch.utils.data.DataLoader(subset(loader.valid_indices), bs,
                                                 num_workers=workers)
        self.augment = torch.nn.Sequential(*[getattr(K, t["type"])(**t.get("args", {}))
                                             for t in args["train_transforms"]])
        self.model, self.optimizer = parts.model, parts.optimizer
        self.scheduler = parts.lr_scheduler

    def epoch(self) -> None:
        model = self.model
        model.train()
        for x, y in self.train:
            with torch.no_grad():
                x = self.augment(x.float() / 255)
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            self.optimizer.step()
        model.eval()
        with torch.no_grad():
            vloss, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
            for x, y in self.valid:
                out = model(x.float() / 255)
                vloss += F.cross_entropy(out, y, reduction="sum")
                correct += (out.argmax(1) == y).sum()
        self.last = (vloss.item(), correct.item())
        if self.scheduler is not None:
            self.scheduler.step()


def time_worker(args) -> dict:
    total = WARMUP_EPOCHS + args.reps * args.epochs
    workers = args.worker_count
    trainer = TrainerRunner(*build(args, workers, total))
    plain = PlainRunner(*build(args, workers, total), workers)
    n_train = len(trainer.trainer.data_loader.indices)
    trainer.run(WARMUP_EPOCHS)
    plain.run(WARMUP_EPOCHS)
    seconds = alternating_seconds(trainer, plain, args.reps, args.epochs)
    rates = {name: [n_train / t for t in times] for name, times in seconds.items()}
    return {"rates": rates, "train_images": n_train,
            "valid_images": len(trainer.trainer.valid_data_loader.indices)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="image folder (default: the digits, written into a "
                                       "temporary folder)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed block")
    parser.add_argument("--reps", type=int, default=3, help="timed blocks per variant")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="num_workers settings to time (default: 0 2)")
    parser.add_argument("--worker-count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE")
    args = parser.parse_args(argv)
    if args.worker_count is not None:
        print(json.dumps(time_worker(args)))
        return 0
    if args.root is None:
        args.root = str(Path(tempfile.mkdtemp(prefix="digits-png-")) / "digits_png")
        subprocess.run([sys.executable, str(REPO / "data_loader/make_image_folder.py"),
                        args.root], check=True, capture_output=True)
    print(f"config: {CONFIG.relative_to(REPO)} {' '.join(args.overrides)}".rstrip())
    print(f"{args.reps} blocks of {args.epochs} epochs per variant, alternating in one process; "
          f"median training images per second (validation pass included in the time)")
    for workers in args.workers:
        cmd = [sys.executable, __file__, "--worker-count", str(workers), "--root", args.root,
               "--epochs", str(args.epochs), "--reps", str(args.reps), *args.overrides]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"error: the num_workers={workers} worker failed:\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        med = {m: statistics.median(r) for m, r in result["rates"].items()}
        blocks = {m: ", ".join(f"{r:.0f}" for r in rs) for m, rs in result["rates"].items()}
        print(f"num_workers={workers} ({result['train_images']} training, "
              f"{result['valid_images']} validation images per epoch)")
        for m in ("plain", "trainer"):
            print(f"  {m + ':':9} {med[m]:8.0f} images/s (blocks: {blocks[m]})")
        print(f"  ratio trainer/plain: {med['trainer'] / med['plain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
