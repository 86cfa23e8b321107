"""Issue 3: every user mistake costs one line and exit code 2, before anything is written."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from conftest import REPO, load, only_run, read_json, run_mains, run_script, train, tree_snapshot

DIGITS = REPO / "config/digits_mlp.json"
BASE = json.loads(DIGITS.read_text())


def write(path, text):
    path.write_text(text)
    return path


def config_with(tmp_path, edit, suffix=".json"):
    cfg = json.loads(json.dumps(BASE))
    edit(cfg)
    return write(tmp_path / f"bad{suffix}", json.dumps(cfg))


def drop(key):
    return lambda c: c.pop(key)


class Malicious:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/_template_test_pwned"

# (id, how to build the command line from tmp_path, text the error must name)
CASES = [
    ("malformed-json", lambda t: ["-c", write(t / "c.json", '{"name": "x",\n  "seed": }')],
     "c.json:2:"),
    ("malformed-yaml", lambda t: ["-c", write(t / "c.yaml", "name: x\narch: {type: MLP\n")],
     "c.yaml:"),
    ("missing-file", lambda t: ["-c", t / "nope.yaml"], "nope.yaml"),
    ("not-a-mapping", lambda t: ["-c", write(t / "c.yaml", "- a\n- b\n")], "c.yaml"),
    ("unknown-arch", lambda t: ["-c", DIGITS, "arch.type=MLQ"], "arch.type"),
    ("unknown-loss", lambda t: ["-c", DIGITS, "loss=cross_entrpy"], "loss"),
    ("unknown-metric", lambda t: ["-c", DIGITS, "metrics=[accuracy, acc]"], "metrics[1]"),
    ("unknown-optimizer", lambda t: ["-c", DIGITS, "optimizer.type=Adamw"], "optimizer.type"),
    ("unknown-scheduler", lambda t: ["-c", DIGITS, "lr_scheduler.type=StepLr"],
     "lr_scheduler.type"),
    ("unknown-data-loader", lambda t: ["-c", DIGITS, "data_loader.type=DigitLoader"],
     "data_loader.type"),
    ("misspelt-arch-arg", lambda t: ["-c", config_with(t, lambda c: c["arch"]["args"].update(
        hiden=3))], "arch.args.hiden"),
    ("misspelt-optimizer-arg", lambda t: ["-c", DIGITS, "+optimizer.args.lrr=0.1"],
     "optimizer.args.lrr"),
    ("misspelt-scheduler-arg", lambda t: ["-c", DIGITS, "+lr_scheduler.args.step=3"],
     "lr_scheduler.args.step"),
    ("missing-required-arg", lambda t: ["-c", config_with(t, lambda c: c["arch"]["args"].pop(
        "in_features"))], "arch.args.in_features"),
    ("lr-not-a-number", lambda t: ["-c", DIGITS, "optimizer.args.lr=fast"], "optimizer.args.lr"),
    ("epochs-a-string", lambda t: ["-c", DIGITS, "trainer.epochs=ten"], "trainer.epochs"),
    ("negative-epochs", lambda t: ["-c", DIGITS, "trainer.epochs=-3"], "trainer.epochs"),
    ("zero-batch-size", lambda t: ["-c", DIGITS, "--bs", "0"], "data_loader.args.batch_size"),
    ("validation-split-1.5", lambda t: ["-c", DIGITS, "data_loader.args.validation_split=1.5"],
     "data_loader.args.validation_split"),
    ("test-split-count-too-big", lambda t: ["-c", DIGITS, "data_loader.args.test_split=5000"],
     "data_loader.args.test_split"),
    ("bad-monitor-string", lambda t: ["-c", DIGITS, "trainer.monitor=lowest val_loss"],
     "trainer.monitor"),
    ("monitor-not-logged", lambda t: ["-c", DIGITS, "trainer.monitor=max val_f1"],
     "trainer.monitor"),
    ("monitor-val-without-validation", lambda t: ["-c", DIGITS,
                                                  "data_loader.args.validation_split=0"],
     "trainer.monitor"),
    ("override-missing-key", lambda t: ["-c", DIGITS, "trainer.epoch=3"], "trainer.epoch"),
    ("override-without-equals", lambda t: ["-c", DIGITS, "trainer.epochs"], "trainer.epochs"),
    ("unknown-trainer-key", lambda t: ["-c", config_with(t, lambda c: c["trainer"].update(
        save_every=2))], "trainer.save_every"),
    ("missing-section", lambda t: ["-c", config_with(t, drop("optimizer"))], "optimizer"),
    ("injected-loader-arg", lambda t: ["-c", DIGITS, "+data_loader.args.seed=3"],
     "data_loader.args.seed"),
    ("loss-reduction-none", lambda t: ["-c", DIGITS, "loss={type: CrossEntropyLoss, args: "
                                       "{reduction: none}}"], "loss.args.reduction"),
    ("bad-container", lambda t: ["-c", DIGITS, "arch.args.container=tuple"], "arch.args"),
    ("no-config", lambda t: [], "-c"),
    ("missing-checkpoint", lambda t: ["-r", t / "missing.pth"], "missing.pth"),
    ("not-a-checkpoint", lambda t: ["-r", write(t / "notes.pth", "hello")], "notes.pth"),
    ("config-suffix", lambda t: ["-c", write(t / "c.txt", "{}")], "c.txt"),
]


@pytest.fixture(scope="module")
def bad_train_runs(tmp_path_factory) -> dict[str, tuple]:
    """{case id: (its folder, train.py's result)}, every case through train.py's main() in
    one process (conftest.run_mains), each with a folder of its own."""
    root, folders, cases = tmp_path_factory.mktemp("bad-train"), [], []
    for case_id, make_args, _ in CASES:
        folder = root / case_id
        folder.mkdir()
        folders.append(folder)
        cases.append(("train.py", [*make_args(folder), f"trainer.save_dir={folder / 'saved'}"]))
    return {c[0]: (f, r) for c, f, r in zip(CASES, folders, run_mains(cases))}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_train_input(bad_train_runs, case):
    case_id, _, named = case
    folder, r = bad_train_runs[case_id]
    save = folder / "saved"
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:"), r.stderr
    assert all(not line.startswith("error:") for line in lines[:-1])
    assert named in lines[-1], lines[-1]
    assert "Traceback" not in r.stderr
    assert not save.exists()


def test_missing_file_names_the_path(tmp_path):
    r = run_script("train.py", "-c", tmp_path / "nope.json")
    assert r.stderr.strip() == f"error: config file not found: {tmp_path / 'nope.json'}"


@pytest.mark.slow
def test_did_you_mean_and_listing():
    r = run_script("train.py", "-c", DIGITS, "+optimizer.args.lrr=0.1")
    assert "did you mean 'lr'?" in r.stderr
    r = run_script("train.py", "-c", DIGITS, "arch.args.hiden=3")
    assert "did you mean 'arch.args.hidden'?" in r.stderr and "+arch.args.hiden" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "malicious", "not-ours"])
def test_bad_checkpoints_for_test_py(tmp_path, digits_run, kind):
    path = tmp_path / "ckpt.pth"
    if kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "truncated":
        data = (digits_run / "model_best.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "malicious":
        torch.save({"epoch": 1, "payload": Malicious()}, path)
    elif kind == "not-ours":
        torch.save({"weights": torch.zeros(3)}, path)
    before = tree_snapshot(digits_run)
    r = run_script("test.py", "-r", path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert str(path) in r.stderr and "Traceback" not in r.stderr
    assert tree_snapshot(digits_run) == before


@pytest.mark.slow
def test_malicious_checkpoint_never_runs(tmp_path):
    import os

    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / "evil.pth"
    torch.save({"epoch": 1, "model_state_dict": Malicious()}, path)
    for script in ("train.py", "test.py"):
        r = run_script(script, "-r", path)
        assert r.returncode == 2 and "refused" in r.stderr, r.stderr
    assert not os.path.exists(MARKER)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


@pytest.mark.slow
def test_overrides_set_values_and_are_saved(save_dir):
    r = train("-c", REPO / "config/digits_mlp.yaml", "trainer.epochs=2", "arch.args.depth=3",
              "optimizer.type=SGD", "optimizer.args={lr: 0.05, momentum: 0.9}", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    run = only_run(save_dir, "digits_mlp")
    saved = read_json(run / "config.json")
    assert saved["trainer"]["epochs"] == 2 and saved["arch"]["args"]["depth"] == 3
    assert saved["optimizer"] == {"type": "SGD",  # a mapping merges into the file's (Hydra)
                                  "args": {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.9}}
    ckpt = load(run / "checkpoint-epoch2.pth")
    assert ckpt["epoch"] == 2 and ckpt["config"] == saved
    hidden_linears = [k for k in ckpt["model_state_dict"] if k.startswith("hidden.")
                      and k.endswith(".weight")]
    assert len(hidden_linears) == 3
    # the saved config repeats the run exactly
    again = save_dir.parent / "again"
    r = train("-c", run / "config.json", save_dir=again)
    assert r.returncode == 0, r.stderr
    other = load(only_run(again, "digits_mlp") / "checkpoint-epoch2.pth")["model_state_dict"]
    assert all(torch.equal(v, other[k]) for k, v in ckpt["model_state_dict"].items())


@pytest.mark.slow
def test_lr_and_bs_shortcuts(save_dir):
    r = train("-c", DIGITS, "--lr", "0.005", "--bs", "32", "trainer.epochs=1", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    saved = read_json(only_run(save_dir, "digits_mlp") / "config.json")
    assert saved["optimizer"]["args"]["lr"] == 0.005
    assert saved["data_loader"]["args"]["batch_size"] == 32


def test_dry_run_builds_prints_and_writes_nothing(save_dir):
    r = train("-c", DIGITS, "--dry-run", "arch.args.hidden=16", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert "Trainable parameters: " in r.stdout
    assert '"hidden": 16' in r.stdout  # the resolved config
    assert not save_dir.exists()


@pytest.mark.slow
def test_unknown_top_level_key_is_a_warning(save_dir, tmp_path):
    cfg = config_with(tmp_path, lambda c: c.update(notes="tried lr 0.01 first"))
    r = train("-c", cfg, "--dry-run", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert "unknown top-level key 'notes'" in r.stdout + r.stderr


@pytest.mark.slow
def test_checkpoint_messages_say_what_is_wrong_and_only_what_works(tmp_path, digits_run):
    """A folder is named as such; a pickle is refused without torch's weights_only advice."""
    evil = tmp_path / "evil.pth"
    torch.save({"epoch": 1, "payload": torch.nn.Linear(2, 2)}, evil)
    r = run_script("test.py", "-r", evil)
    assert r.returncode == 2 and "refused to load" in r.stderr
    assert "weights_only" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    for script in ("train.py", "test.py"):
        r = run_script(script, "-r", empty)
        assert r.returncode == 2
        assert r.stderr.strip() == f"error: {empty}: the folder holds no checkpoint (no " \
            "model_best.pth, checkpoint-epoch<N>.pth or checkpoint-interrupted.pth)"
    r = run_script("train.py", "-r", digits_run)  # a run folder resumes its newest checkpoint
    assert r.returncode == 0, r.stderr
    assert f"{digits_run / 'checkpoint-epoch30.pth'}: the checkpoint is at epoch 30" in r.stdout


def test_test_py_takes_a_run_folders_best_model(tmp_path, digits_run):
    r = run_script("test.py", "-r", digits_run, "--output", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert read_json(tmp_path / "m.json")["accuracy"] > 0.9


@pytest.mark.parametrize("script", ["train.py", "test.py"])
def test_a_missing_dependency_is_one_line_saying_how_to_install(script):
    """Python without site-packages (-S) stands for a shell where the venv is not active."""
    import subprocess
    import sys

    args = ["-c", "config/digits_mlp.json"] if script == "train.py" else ["-r", "x.pth"]
    r = subprocess.run([sys.executable, "-S", script, *args], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: the package '") and "source .venv/bin/activate" in r.stderr
