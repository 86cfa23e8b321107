"""Issue 17: mistakes that used to escape the one-line contract. Each case runs train.py or
test.py as a subprocess and must exit with its code (2 for a mistake found up front) and one
`error:` line naming the culprit, no traceback, and leave every file under the case's folder
as it was (so no run folder appeared)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, run_mains, run_script, train

DIGITS = REPO / "config/digits_mlp.json"


def checksums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()} if root.exists() else {}


@pytest.fixture(scope="module")
def trained(digits_one_epoch) -> Path:
    """save_dir of a one-epoch digits run (tests/conftest.py, shared): cases that resume copy
    it."""
    return digits_one_epoch


@dataclass
class Ctx:
    """What a case builds its arguments from: its own folder, and helpers."""
    tmp: Path
    trained: Path
    request: pytest.FixtureRequest

    @property
    def save(self) -> Path:
        return self.tmp / "saved"

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    def folder(self, name: str) -> Path:
        (self.tmp / name).mkdir()
        return self.tmp / name

    def yaml_on_digits(self, name: str, text: str) -> Path:
        return self.file(name, f"_base_: {DIGITS}\n{text}")

    def checkpoint(self) -> Path:
        """A copy of the trained run under this case's save_dir; its epoch-1 checkpoint."""
        shutil.copytree(self.trained, self.save)
        return next(self.save.glob("models/digits_mlp/*/checkpoint-epoch1.pth"))

    def run(self, change) -> Path:
        """A copy of the trained run under this case's save_dir, with change(run folder)
        applied; the run folder."""
        run = self.checkpoint().parent
        change(run)
        return run

    def fifo(self, name: str) -> Path:
        os.mkfifo(self.tmp / name)
        return self.tmp / name

    def link(self, name: str, target: str) -> Path:
        (self.tmp / name).symlink_to(target)
        return self.tmp / name

    def edited(self, change) -> Path:
        """A copy of the trained checkpoint, outside save_dir, with change(ckpt) applied."""
        ckpt = torch.load(next(self.trained.glob("models/digits_mlp/*/checkpoint-epoch1.pth")),
                          weights_only=True)
        change(ckpt)
        torch.save(ckpt, self.tmp / "edited.pth")
        return self.tmp / "edited.pth"

    def read_only_dir(self) -> Path:
        """A folder nobody may create anything in: a read-only tmpfs when mounting is allowed
        (root ignores permissions), else a folder without write permission."""
        path = self.tmp / "ro"
        path.mkdir()
        if os.geteuid() != 0:
            path.chmod(0o500)
            self.request.addfinalizer(lambda: path.chmod(0o700))
            return path
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(path)],
                               capture_output=True)
        if mount.returncode != 0:
            pytest.skip("running as root where mounting is not allowed: nothing is read-only")
        self.request.addfinalizer(lambda: subprocess.run(["umount", str(path)]))
        return path


def bomb(levels: int = 6) -> str:
    """Nested aliases: a few hundred bytes that expand to 9**levels nodes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def on_digits(*overrides):
    return lambda c: ["-c", DIGITS, *overrides]


def lock_a_folder(run: Path) -> None:
    (run / ".lock").unlink()
    (run / ".lock").mkdir()


def only_best_to_dev_zero(run: Path) -> None:
    """model_best.pth a link to /dev/zero, and no other checkpoint to repair it from."""
    (run / "checkpoint-epoch1.pth").unlink()
    (run / "model_best.pth").unlink()
    (run / "model_best.pth").symlink_to("/dev/zero")


# (id, script, the arguments from a Ctx, texts the error line must contain, exit code)
CASES = [
    # config time: paths
    ("save-dir-a-file", "train.py",
     lambda c: ["-c", DIGITS, f"trainer.save_dir={c.file('afile', 'x')}"],
     ["trainer.save_dir", "is a file"], 2),
    ("save-dir-under-a-file", "train.py",
     lambda c: ["-c", DIGITS, f"trainer.save_dir={c.file('afile', 'x')}/sub"],
     ["trainer.save_dir", "is a file"], 2),
    ("save-dir-not-writable", "train.py",
     lambda c: ["-c", DIGITS, f"trainer.save_dir={c.read_only_dir()}/saved"],
     ["trainer.save_dir", "cannot create folders"], 2),
    ("name-with-nul", "train.py",
     lambda c: ["-c", c.file("n.json", f'{{"_base_": "{DIGITS}", "name": "a\\u0000b"}}')],
     ["name", "NUL"], 2),
    ("name-too-long", "train.py", on_digits("name=" + "n" * 300), ["name", "255"], 2),
    ("save-dir-part-too-long", "train.py",
     lambda c: ["-c", DIGITS, f"trainer.save_dir={c.tmp}/{'s' * 300}/x"],
     ["trainer.save_dir", "255"], 2),
    # config time: numbers beyond int64
    ("seed-beyond-int64", "train.py", on_digits("seed=99999999999999999999"), ["seed"], 2),
    ("batch-size-beyond-int64", "train.py", on_digits("--bs", "99999999999999999999"),
     ["data_loader.args.batch_size"], 2),
    # config time: reading the file
    ("non-utf8-config", "train.py",
     lambda c: ["-c", c.file("c.yaml", b"name: x\n\xff\n")], ["UTF-8"], 2),
    ("recursive-alias", "train.py",
     lambda c: ["-c", c.file("r.yaml", "a: &a [1, *a]\n")], ["recursive alias"], 2),
    ("billion-laughs", "train.py", lambda c: ["-c", c.yaml_on_digits("b.yaml", bomb())],
     ["10,000 nodes"], 2),
    # config time: components
    ("optimizer-betas-shape", "train.py", on_digits("+optimizer.args.betas=[0.9]"),
     ["optimizer.args.betas", "2 numbers"], 2),
    ("model-too-large", "train.py", on_digits("arch.args.hidden=1000000000"),
     ["arch.args", "1,000,000,076,000,000,138 parameters"], 2),
    # the loss tried on one batch of model output (digits: output [64, 10], target [64])
    ("loss-margin-ranking", "train.py", on_digits("loss={type: MarginRankingLoss}"),
     ["loss.type", "MarginRankingLoss", "[64, 10]", "[64]"], 2),
    ("loss-ctc", "train.py", on_digits("loss={type: CTCLoss}"),
     ["loss.type", "CTCLoss", "[64, 10]", "input_lengths"], 2),
    ("loss-mse-class-on-classifier", "train.py", on_digits("loss={type: MSELoss}"),
     ["loss.type", "MSELoss", "[64, 10] float32", "[64] int64"], 2),
    ("loss-mse-on-classifier", "train.py", on_digits("loss=mse_loss"),
     ["loss: mse_loss", "[64, 10] float32", "[64] int64"], 2),
    # checkpoints: weights that no longer fit, hand-edited values, files that are not ours
    ("resume-weights-do-not-fit", "train.py",
     lambda c: ["-r", c.checkpoint(), "arch.args.hidden=64", "trainer.epochs=2"],
     ["hidden.0.weight", "[128, 64]", "[64, 64]", "fine-tune with -c"], 2),
    ("edited-epoch-a-string", "train.py",
     lambda c: ["-r", c.edited(lambda k: k.update(epoch="5")), "trainer.epochs=2"],
     ["'epoch'", "str '5'"], 2),
    ("edited-state-dict-missing", "train.py",
     lambda c: ["-r", c.edited(lambda k: k.pop("model_state_dict")), "trainer.epochs=2"],
     ["lacks the key model_state_dict"], 2),
    ("edited-optimizer-a-list", "train.py",
     lambda c: ["-r", c.edited(lambda k: k.update(optimizer_state_dict=[1, 2]))],
     ["'optimizer_state_dict'", "list"], 2),
    ("edited-partial-epoch", "test.py",
     lambda c: ["-r", c.edited(lambda k: k.update(partial_epoch={"epoch": "x"}))],
     ["'partial_epoch'"], 2),
    # issue 18: a file that is not a checkpoint never repeats torch's weights_only advice
    ("not-a-checkpoint-test", "test.py", lambda c: ["-r", c.file("notes.pth", "hello")],
     ["notes.pth", "not a checkpoint this project wrote"], 2),
    ("plain-pickle-train", "train.py", lambda c: ["-r", c.file(
        "p.pth", pickle.dumps({"epoch": 1}, protocol=4))],
     ["p.pth", "not a checkpoint this project wrote", "refused to load"], 2),
    ("numpy-file-test", "test.py", lambda c: ["-r", c.file("a.npy", b"\x93NUMPY\x01\x00v\x00")],
     ["a.npy", "not a checkpoint this project wrote"], 2),
    ("a-tensor-not-a-mapping", "test.py",
     lambda c: ["-r", (torch.save(torch.zeros(2), c.tmp / "t.pth"), c.tmp / "t.pth")[1]],
     ["t.pth", "not a checkpoint this project wrote", "Tensor"], 2),
    # issue 18: a folder is not "not found"; a misspelt key suggests only what is accepted
    ("test-a-folder-without-checkpoints", "test.py", lambda c: ["-r", c.folder("run")],
     ["run", "the folder holds no checkpoint", "model_best.pth"], 2),
    ("resume-a-folder-without-checkpoints", "train.py", lambda c: ["-r", c.folder("run")],
     ["run", "the folder holds no checkpoint"], 2),
    ("misspelt-key", "train.py", on_digits("trainer.epochz=5"),
     ["trainer.epochz", "no such key", "did you mean 'trainer.epochs'"], 2),
    # a metric is tried on one batch of model output too, like the loss
    ("metric-cannot-take-output", "train.py",
     on_digits("metrics=[torch.nn.functional.mse_loss]"),
     ["metrics[0]", "mse_loss", "[64, 10] float32", "[64] int64"], 2),
    # issue 24: exports are checked before any work; weights that do not fit, said in full
    ("export-onto-a-folder", "test.py",
     lambda c: ["-r", c.checkpoint(), "--export", c.folder("out.onnx")],
     ["--export", "out.onnx", "is a folder"], 2),
    ("export-file-exists", "test.py",
     lambda c: ["-r", c.checkpoint(), "--export", c.file("model.pt2", "the user's")],
     ["model.pt2 exists", "--force"], 2),
    ("test-weights-do-not-fit", "test.py",
     lambda c: ["-r", c.edited(lambda k: k["config"]["arch"]["args"].update(hidden=64))],
     ["edited.pth", "the weights do not fit the model MLP", "hidden.0.weight is [128, 64] in the "
      "file and [64, 64] in the model", "more mismatches"], 2),
    # issue 24, minor items
    ("new-project-under-a-file", "new_project.py",
     lambda c: [f"{c.file('afile', 'x')}/project"], ["afile", "is a file, not a folder"], 2),
    ("find-lr-apply-onto-an-existing-file", "train.py",
     lambda c: ["-c", c.yaml_on_digits("d.yaml", ""), "--find-lr", "--apply",
                (c.file("d_lr.yaml", "kept: true\n"), "trainer.epochs=1")[1]],
     ["--apply", "d_lr.yaml exists", "never replaces"], 2),
    ("find-lr-with-m", "train.py", on_digits("--find-lr", "-m", "optimizer.args.lr=0.1,0.2"),
     ["--find-lr", "does not sweep", "drop -m"], 2),
    ("base-on-the-command-line", "train.py", on_digits("+_base_=[x.yaml]"),
     ["'+_base_=[x.yaml]'", "_base_ works only inside a config file"], 2),
    ("save-dir-blank", "train.py", on_digits("trainer.save_dir='  '"),
     ["trainer.save_dir", "not blank", "'  '"], 2),
    # issue 24: files that are no checkpoint are named for what they are, never read
    ("lock-a-folder", "train.py", lambda c: ["-r", c.run(lock_a_folder), "trainer.epochs=2"],
     [".lock is a folder", "remove it"], 2),
    ("best-a-link-to-dev-zero", "test.py", lambda c: ["-r", c.run(only_best_to_dev_zero)],
     ["model_best.pth is a link to /dev/zero, a character device"], 2),
    ("fifo-as-checkpoint-test", "test.py", lambda c: ["-r", c.fifo("pipe.pth")],
     ["pipe.pth is a FIFO", "not a regular file"], 2),
    ("fifo-as-checkpoint-train", "train.py", lambda c: ["-r", c.fifo("pipe.pth")],
     ["pipe.pth is a FIFO", "not a regular file"], 2),
    ("dev-zero-as-checkpoint", "test.py", lambda c: ["-r", "/dev/zero"],
     ["/dev/zero is a character device", "not a regular file"], 2),
    ("link-to-dev-zero-as-checkpoint", "train.py", lambda c: ["-r", c.link("z.pth", "/dev/zero")],
     ["z.pth is a link to /dev/zero", "not a regular file"], 2),
]


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory, trained, request) -> dict[str, tuple]:
    """{case id: (its folder, the folder's checksums before, the result, or why skipped)}:
    every case through its script's main() in one process (conftest.run_mains), each in a
    folder of its own."""
    root, prepared, cases = tmp_path_factory.mktemp("error-table"), {}, []
    for case_id, script, make_args, _, _ in CASES:
        folder = root / case_id
        folder.mkdir()
        try:
            args = [str(a) for a in make_args(Ctx(folder, trained, request))]
        except pytest.skip.Exception as e:
            prepared[case_id] = (folder, {}, str(e))
            continue
        if script == "train.py" and not any(a.startswith("trainer.save_dir=") for a in args):
            args.append(f"trainer.save_dir={folder / 'saved'}")
        prepared[case_id] = (folder, checksums(folder), None)
        cases.append((case_id, (script, args)))
    for (case_id, _), result in zip(cases, run_mains([c for _, c in cases])):
        prepared[case_id] = prepared[case_id][:2] + (result,)
    return prepared


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_error_line_and_nothing_written(table_runs, case):
    case_id, _, _, named, code = case
    folder, before, r = table_runs[case_id]
    if isinstance(r, str):
        pytest.skip(r)
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(n in lines[0] for n in named), r.stderr
    assert "Traceback" not in r.stderr and "weights_only" not in r.stderr
    if "did you mean" in lines[0]:  # it never suggests +key, which would then fail
        assert "+" not in lines[0].split("did you mean")[1]
    assert checksums(folder) == before


def small_disk(path: Path, size: str) -> Path:
    """A tmpfs of `size` mounted at `path` (the test is skipped where mounting is not
    allowed); the caller unmounts it."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                                            "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs is not allowed here")
    return path


def fill(disk: Path) -> None:
    """Fill the disk to its last byte."""
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_save(tmp_path):
    """A small tmpfs holds two checkpoints of the digits MLP (340 KB each), not a third: exit 1,
    one error line naming the file and the cause on stderr and in info.log, the earlier
    checkpoints load, no temporary file is left."""
    from utils.checkpoint import load_checkpoint

    disk = small_disk(tmp_path / "disk", "900k")
    try:
        r = train("-c", DIGITS, "trainer.epochs=5", "trainer.save_period=1",
                  "trainer.monitor=off", save_dir=disk)
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = one_error_line(r)
        assert "checkpoint-epoch3.pth" in line and "No space left on device" in line
        log = next(disk.glob("log/digits_mlp/*/info.log")).read_text().splitlines()
        assert log[-1].endswith(line)
        run = next(p for p in disk.glob("models/digits_mlp/*") if p.is_dir())
        assert [load_checkpoint(run / f"checkpoint-epoch{n}.pth")["epoch"] for n in (1, 2)] == \
            [1, 2]
        assert not (run / "checkpoint-epoch3.pth").exists()
        assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.slow
def test_two_resume_auto_runs_of_one_config_never_both_start_fresh(tmp_path):
    """The same `--resume auto` command started twice at once (a job requeued while its first
    copy still runs): one trains; the other either stops with one line naming the holder's
    process, or (had the first already finished) finds nothing to train. One run folder."""
    save = tmp_path / "saved"
    command = [sys.executable, str(REPO / "train.py"), "-c", str(REPO / "config/wine_mlp.yaml"),
               "--resume", "auto", "trainer.epochs=2", f"trainer.save_dir={save}"]
    procs = [subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]  # waits, bounded
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes in ([0, 0], [0, 2]), [(p.returncode, err) for p, _, err in results]
    for p, out, err in results:
        if p.returncode == 2:
            lines = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(lines) == 1 and "Traceback" not in err, err
            other = next(q for q in procs if q is not p)
            assert "--resume auto" in lines[0] and f"process {other.pid}" in lines[0]
        elif codes == [0, 0] and "starting fresh" not in out + err:
            assert "nothing to train" in out + err
    runs = [p for p in (save / "models" / "wine_mlp").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    again = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True,
                           timeout=300)  # a later requeue: finished, nothing to train
    assert again.returncode == 0 and "nothing to train" in again.stdout + again.stderr
    assert [p for p in (save / "models" / "wine_mlp").iterdir() if p.is_dir()] == runs
def test_disk_full_during_predictions_leaves_no_csv(tmp_path, trained):
    """test.py --predict onto a full disk: exit 1, one line naming the file and the cause, and
    no predictions file, whole or partial, and no temporary file."""
    checkpoint = next(trained.glob("models/digits_mlp/*/checkpoint-epoch1.pth"))
    disk = small_disk(tmp_path / "disk", "64k")
    try:
        fill(disk)
        r = run_script("test.py", "-r", checkpoint, "--predict", "--output",
                       disk / "predictions.csv")
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = one_error_line(r)
        assert "predictions.csv" in line and "No space left on device" in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.slow
def test_disk_full_during_new_project_leaves_no_folder(tmp_path):
    """new_project.py onto a disk too small for the skeleton: exit 1, one line naming the
    folder and the cause, and nothing left on the disk."""
    disk = small_disk(tmp_path / "disk", "64k")
    try:
        r = run_script("new_project.py", disk / "project")
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = one_error_line(r)
        assert str(disk / "project") in line and "No space left on device" in line
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)])
