"""Issue 27: image folders (ImageFolderDataLoader), kornia transforms on the device, exact
resume with augmentation, normalization in the model's buffers, --predict for images."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    ENV,
    REPO,
    assert_same_weights,
    load,
    only_run,
    read_csv,
    read_json,
    run_script,
    train,
)

pytest.importorskip("PIL")
pytest.importorskip("kornia")

from PIL import Image  # noqa: E402

CONFIG = REPO / "config/images_cnn.yaml"
# a small, quick variant: 16x16, a tiny CNN, most images held out, affine + flip augmentation
SMALL = ["data_loader.args.image_size=16", "arch.args.height=16", "arch.args.width=16",
         "arch.args.channels=[4,8]", "arch.args.hidden=16", "data_loader.args.test_split=0.7",
         "data_loader.args.batch_size=8", "trainer.epochs=2", "trainer.save_period=1",
         "lr_scheduler.args.T_max=2",
         "data_loader.args.train_transforms=[{type: RandomAffine, args: {degrees: 10, "
         "translate: [0.1, 0.1]}}, {type: RandomHorizontalFlip, args: {p: 0.5}}]"]


@pytest.fixture(scope="module")
def digits_png(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images") / "digits_png"
    r = run_script("data_loader/make_image_folder.py", folder)
    assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture(scope="module")
def small_run(digits_png, tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("small") / "saved"
    r = train("-c", CONFIG, f"data_loader.args.root={digits_png}", *SMALL, save_dir=save)
    assert r.returncode == 0, r.stderr
    return only_run(save, "images_cnn")


def test_make_image_folder_writes_the_digits_deterministically(digits_png, tmp_path):
    files = sorted(digits_png.rglob("*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in digits_png.iterdir()) == [str(k) for k in range(10)]
    with Image.open(files[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    again = tmp_path / "again"
    assert run_script("data_loader/make_image_folder.py", again).returncode == 0
    for f in files[::97]:
        assert (again / f.relative_to(digits_png)).read_bytes() == f.read_bytes()


@pytest.mark.slow
def test_example_reaches_its_bar(digits_png, tmp_path):
    save = tmp_path / "saved"
    started = time.monotonic()
    r = train("-c", CONFIG, f"data_loader.args.root={digits_png}", save_dir=save, timeout=600)
    assert r.returncode == 0, r.stderr
    print(f"config/images_cnn.yaml trained in {time.monotonic() - started:.1f} s")
    run = only_run(save, "images_cnn")
    r = run_script("test.py", "-r", run / "model_best.pth")
    assert r.returncode == 0, r.stderr
    assert read_json(run / "test_metrics.json")["accuracy"] >= 0.95


def test_folder_and_csv_give_the_same_classes(tmp_path):
    sys.path.insert(0, str(REPO))
    from data_loader.image_files import image_table

    for name, colour in (("b", 40), ("a", 80), ("10", 120), ("2", 160)):
        (tmp_path / "tree" / name).mkdir(parents=True)
        Image.new("RGB", (5, 7), (colour, 0, 0)).save(tmp_path / "tree" / name / "x.png")
    files, labels, names = image_table(str(tmp_path / "tree"))
    assert names == ["10", "2", "a", "b"]  # sorted as torchvision's ImageFolder sorts them
    assert [f.parent.name for f in files] == names and labels == [0, 1, 2, 3]
    rows = "".join(f"tree/{n}/x.png,{n}\n" for n in ("a", "2", "b", "10"))
    (tmp_path / "list.csv").write_text("path,label\n" + rows)
    files_c, labels_c, names_c = image_table(str(tmp_path / "list.csv"))
    assert names_c == names and labels_c == [2, 1, 3, 0]
    assert [f.resolve() for f in files_c] == [files[k].resolve() for k in labels_c]


def test_transforms_are_a_function_of_the_batch_and_leave_torch_rng_alone():
    sys.path.insert(0, str(REPO))
    from data_loader.image_transforms import BatchTransform, build_transforms

    transform = BatchTransform(build_transforms(
        [{"type": "RandomAffine", "args": {"degrees": 30, "translate": [0.2, 0.2]}}], "t"))
    batch = (torch.randint(0, 256, (6, 1, 12, 12), dtype=torch.uint8), torch.arange(6))
    state = torch.get_rng_state()
    a, b, c = transform(batch, 1)[0], transform(batch, 1)[0], transform(batch, 2)[0]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, batch[0].float() / 255)


def test_normalize_auto_goes_to_the_buffers_and_test_py_uses_them(small_run, digits_png,
                                                                   tmp_path):
    ckpt = load(small_run / "model_best.pth")
    mean, std = ckpt["model_state_dict"]["input_mean"], ckpt["model_state_dict"]["input_std"]
    # the training split's pixels, read here with Pillow alone (same split as the loader's)
    sys.path.insert(0, str(REPO))
    from base.base_data_loader import split_indices

    files = sorted(digits_png.rglob("*.png"), key=lambda p: (p.parent.name, p.name))
    train_idx, _, _ = split_indices(len(files), 0.1, 0.7, 0)
    pixels = np.stack([np.asarray(Image.open(files[i]).resize((16, 16), Image.BILINEAR),
                                  dtype=np.float64) / 255 for i in train_idx.tolist()])
    assert mean.shape == std.shape == (1, 16, 16)
    assert torch.allclose(mean, torch.full_like(mean, pixels.mean()), atol=1e-5)
    assert torch.allclose(std, torch.full_like(std, pixels.std()), atol=1e-5)

    r = run_script("test.py", "-r", small_run / "model_best.pth", "--predict", "--output",
                   tmp_path / "with.csv")
    assert r.returncode == 0, r.stderr
    ckpt["model_state_dict"]["input_mean"].zero_()  # the same model without normalization
    ckpt["model_state_dict"]["input_std"].fill_(1)
    torch.save(ckpt, tmp_path / "plain.pth")
    r = run_script("test.py", "-r", tmp_path / "plain.pth", "--predict", "--output",
                   tmp_path / "without.csv")
    assert r.returncode == 0, r.stderr
    with_rows, without_rows = read_csv(tmp_path / "with.csv"), read_csv(tmp_path / "without.csv")
    assert len(with_rows) == len(without_rows) == int(1797 * 0.7)  # the test split
    assert [r["prob_0"] for r in with_rows] != [r["prob_0"] for r in without_rows]


def test_predict_writes_one_row_per_image(small_run, digits_png, tmp_path):
    out = tmp_path / "sevens.csv"
    r = run_script("test.py", "-r", small_run, "--predict", digits_png / "7", "--output", out)
    assert r.returncode == 0, r.stderr
    rows = read_csv(out)
    sevens = sorted(p.name for p in (digits_png / "7").iterdir())
    assert [row["path"] for row in rows] == sevens
    assert list(rows[0]) == ["path", "prediction", *[f"prob_{k}" for k in range(10)]]
    for row in rows:
        probs = [float(row[f"prob_{k}"]) for k in range(10)]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["prediction"] == str(int(np.argmax(probs)))

    listing = tmp_path / "list.csv"
    listing.write_text(f"path\n{digits_png / '3' / '0003.png'}\n{digits_png / '7' / sevens[0]}\n")
    r = run_script("test.py", "-r", small_run, "--predict", listing, "--output", out)
    assert r.returncode == 0, r.stderr
    rows2 = read_csv(out)
    assert [row["path"] for row in rows2] == [str(digits_png / "3" / "0003.png"),
                                              str(digits_png / "7" / sevens[0])]
    assert rows2[1]["prob_7"] == rows[0]["prob_7"]  # the same image, the same numbers


def start(args: list, save_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args),
                             f"trainer.save_dir={save_dir}"], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def epoch_logged(save_dir: Path) -> bool:
    """Whether the run under `save_dir` has finished its first epoch (a row in metrics.csv)."""
    found = list((save_dir / "log/images_cnn").glob("*/metrics.csv"))
    return bool(found) and len(read_csv(found[0])) >= 1


def wait_for(predicate, timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_interrupted_run_with_augmentation_resumes_bit_identically(digits_png, tmp_path):
    common = ["-c", CONFIG, f"data_loader.args.root={digits_png}", *SMALL,
              "data_loader.args.batch_size=4", "trainer.epochs=3", "lr_scheduler.args.T_max=3",
              "trainer.save_period=100"]
    finals = {}
    for workers in (0, 2):
        args = [*common, f"data_loader.args.num_workers={workers}"]
        straight_dir, cut_dir = tmp_path / f"straight{workers}", tmp_path / f"cut{workers}"
        r = train(*args, save_dir=straight_dir)
        assert r.returncode == 0, r.stderr
        finals[workers] = load(only_run(straight_dir, "images_cnn") / "checkpoint-epoch3.pth")

        proc = start(args, cut_dir)
        assert wait_for(lambda d=cut_dir: epoch_logged(d))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 130, err
        run = only_run(cut_dir, "images_cnn")
        ckpt_path = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
        if ckpt_path.name == "checkpoint-interrupted.pth":
            assert load(ckpt_path)["partial_epoch"]["batches_done"] > 0
        r = train("-r", ckpt_path, save_dir=cut_dir)
        assert r.returncode == 0, r.stderr
        assert_same_weights(finals[workers]["model_state_dict"],
                            load(run / "checkpoint-epoch3.pth")["model_state_dict"])
    # decoding in worker processes changes nothing: the transforms run in the main process
    assert_same_weights(finals[0]["model_state_dict"], finals[2]["model_state_dict"])


def one_line_error(r: subprocess.CompletedProcess, code: int = 2) -> str:
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_bad_image_configs_are_one_line_errors(digits_png, tmp_path):
    root = f"data_loader.args.root={digits_png}"
    line = one_line_error(train("-c", CONFIG, root, "data_loader.args.train_transforms="
                                "[{type: RandomAfine}]", "--dry-run", save_dir=tmp_path))
    assert "data_loader.args.train_transforms[0].type: unknown kornia augmentation " \
           "'RandomAfine'; did you mean 'RandomAffine'?" in line
    line = one_line_error(train("-c", CONFIG, "data_loader.args.root=no/such/folder",
                                "--dry-run", save_dir=tmp_path))
    assert "data_loader.args.root: not found" in line and "no/such/folder" in line
    line = one_line_error(train("-c", CONFIG, root, "data_loader.args.eval_transforms="
                                "[{type: RandomAffine, args: {degree: 3}}]", "--dry-run",
                                save_dir=tmp_path))
    assert "data_loader.args.eval_transforms[0].args: RandomAffine" in line
    line = one_line_error(train("-c", CONFIG, root, "data_loader.args.channels=2",
                                "--dry-run", save_dir=tmp_path))
    assert "data_loader.args.channels: expected 1 (grayscale) or 3 (RGB), got 2" in line
    assert not (tmp_path / "models").exists()


def test_a_checkpoint_names_only_module_transforms(small_run, tmp_path):
    ckpt = load(small_run / "model_best.pth")
    ckpt["config"]["data_loader"]["args"]["eval_transforms"] = [{"type": "collections.Counter"}]
    torch.save(ckpt, tmp_path / "odd.pth")
    line = one_line_error(run_script("test.py", "-r", tmp_path / "odd.pth"))
    assert "data_loader.args.eval_transforms[0].type: 'collections.Counter' is not a " \
           "subclass of torch.nn.Module" in line and "--trust-config" in line
    ckpt["config"]["data_loader"]["args"]["eval_transforms"] = [
        {"type": "kornia.augmentation.CenterCrop", "args": {"size": 16}}]
    torch.save(ckpt, tmp_path / "fine.pth")
    r = run_script("test.py", "-r", tmp_path / "fine.pth", "--output", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr


def test_missing_vision_extra_is_one_line(digits_png, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "kornia.py").write_text("raise ModuleNotFoundError(\"No module named 'kornia'\", "
                                      "name='kornia')\n")
    line = one_line_error(train("-c", CONFIG, f"data_loader.args.root={digits_png}",
                                "--dry-run", save_dir=tmp_path, env={"PYTHONPATH": str(shadow)}),
                          code=1)
    assert 'needs kornia (the vision extra)' in line and 'pip install -e ".[vision]"' in line
