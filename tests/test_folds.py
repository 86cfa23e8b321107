"""Issue 15: k-fold cross-validation and repeated seeds as sweeps, with mean ± std."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import ENV, REPO, load, read_csv, read_json, run_script, train

EPOCHS = 25


def wine_config(path: Path) -> Path:
    """config/wine_mlp.yaml made small: batch 2 so an epoch takes a moment, a checkpoint
    every epoch."""
    config = yaml.safe_load((REPO / "config/wine_mlp.yaml").read_text())
    config["data_loader"]["args"]["batch_size"] = 2
    config["trainer"].update(epochs=EPOCHS, save_period=1, verbosity=0)
    path.write_text(yaml.safe_dump(config))
    return path


def sweep_folder(save_dir: Path, name: str = "wine_mlp") -> Path:
    (folder,) = (save_dir / "sweeps" / name).iterdir()
    return folder


def launches(folder: Path, trial: int) -> list[str]:
    """The train.py commands the sweep started for a trial (its log has one '$ ' line each)."""
    log = (folder / "logs" / f"trial-{trial:03d}.log").read_text()
    return [line for line in log.splitlines() if line.startswith("$ ")]


def metrics_rows(run_dir: Path) -> list[dict]:
    log_dir = Path(str(run_dir).replace(os.sep + "models" + os.sep, os.sep + "log" + os.sep))
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_csv(log_dir / "metrics.csv")]


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    """A 3-fold run on wine from one command, never interrupted: its sweep folder."""
    tmp = tmp_path_factory.mktemp("folds")
    result = train("-c", wine_config(tmp / "wine.yaml"), "--folds", "3", save_dir=tmp / "saved")
    assert result.returncode == 0, result.stderr + result.stdout
    return sweep_folder(tmp / "saved")


def test_fold_split_partitions_the_training_part_stratified():
    from base.base_data_loader import fold_indices
    from data_loader.data_loaders import SklearnDataLoader

    loader = SklearnDataLoader("wine", validation_split=0.15, test_split=0.25, split_seed=3)
    test = loader.test_indices.clone()
    pool = torch.cat([loader.train_indices, loader.valid_indices]).sort().values
    labels = loader.dataset.tensors[1]
    valids = []
    for fold in range(5):
        again = SklearnDataLoader("wine", validation_split=0.15, test_split=0.25, split_seed=3)
        again.select_fold(5, fold)
        assert torch.equal(again.test_indices, test)  # the test split is untouched
        assert torch.equal(torch.cat([again.train_indices, again.valid_indices]).sort().values,
                           pool)
        assert torch.equal(again.indices, again.train_indices)  # what training reads
        valids.append(again.valid_indices)
        # stratified: each class's share of a fold is within one sample of even
        per_class = torch.bincount(labels[again.valid_indices], minlength=3)
        assert ((per_class - torch.bincount(labels[pool]) / 5).abs() <= 1).all()
    assert torch.equal(torch.cat(valids).sort().values, pool)  # every sample validates once
    # a pure function of split_seed; another seed, other folds
    assert torch.equal(fold_indices(pool, labels[pool], 5, 2, 3)[1], valids[2])
    assert not torch.equal(fold_indices(pool, labels[pool], 5, 2, 4)[1], valids[2])


@pytest.mark.slow
def test_three_folds_summary_is_mean_and_sample_std_of_the_folds(unbroken):
    rows = sorted(read_csv(unbroken / "summary.csv"), key=lambda r: int(r["trial"]))
    assert [r["data_loader.args.fold"] for r in rows] == ["0", "1", "2"]
    assert {r["status"] for r in rows} == {"finished"}
    run_dirs = [Path(r["run_dir"]) for r in rows]
    assert len(set(run_dirs)) == 3
    # the folds' runs live in their sweep folder, not among the user's runs in saved/models
    assert all(r.parent.parent.parent == unbroken for r in run_dirs)
    assert not (unbroken.parent.parent.parent / "models").exists()
    for fold, run_dir in enumerate(run_dirs):
        args = read_json(run_dir / "config.json")["data_loader"]["args"]
        assert (args["folds"], args["fold"]) == (3, fold)
    (group,) = read_csv(unbroken / "groups.csv")
    assert group["n"] == "3"
    for col in ("best_val_loss", "val_accuracy", "val_f1_macro", "loss"):
        values = np.array([float(r[col]) for r in rows])
        assert float(group[f"{col}_mean"]) == pytest.approx(values.mean(), rel=1e-12)
        assert float(group[f"{col}_std"]) == pytest.approx(values.std(ddof=1), rel=1e-12)
    md = (unbroken / "summary.md").read_text()
    assert "sample std, ddof=1" in md
    mean, std = float(group["val_accuracy_mean"]), float(group["val_accuracy_std"])
    assert f"{mean:.6g} ± {std:.6g}" in md


@pytest.mark.slow
def test_test_py_on_the_fold_folder_reports_mean_std_and_the_ensemble(unbroken, tmp_path):
    from trainer.config.parse_config import ConfigParser

    out = tmp_path / "folds_test.json"
    result = run_script("test.py", "-r", unbroken, "--output", out)
    assert result.returncode == 0, result.stderr
    report = read_json(out)
    assert report["n"] == 3 and len(report["trials"]) == 3
    for k in ("loss", "accuracy"):
        values = np.array([t[k] for t in report["trials"]])
        assert report["mean"][k] == pytest.approx(values.mean(), rel=1e-12)
        assert report["stdev"][k] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert f"{k}: {values.mean():.6f} ± {values.std(ddof=1):.6f}  (n=3)" in result.stdout
    probs, target = [], None
    for t in report["trials"]:  # the ensemble, recomputed here
        config = ConfigParser.from_checkpoint(Path(t["checkpoint"]))
        loader = config.build_data_loader(training=False)
        model = config.build_model()
        model.load_state_dict(load(Path(t["checkpoint"]))["model_state_dict"])
        model.eval()
        x, target = loader.dataset.tensors[0][loader.indices], loader.dataset.tensors[1][
            loader.indices]
        with torch.no_grad():
            probs.append(torch.softmax(model(x), dim=1))
    accuracy = (torch.stack(probs).mean(0).argmax(1) == target).double().mean().item()
    assert report["ensemble"] == {"models": 3, "accuracy": pytest.approx(accuracy)}


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.slow
def test_kill_9_during_a_fold_then_rerun_resumes_it_and_matches_unbroken(unbroken, tmp_path):
    save = tmp_path / "saved"
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(wine_config(tmp_path / "wine.yaml")),
           "--folds", "3", f"trainer.save_dir={save}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        run_file = None
        while time.time() < deadline:  # fold 1 (the second) has saved its third epoch
            found = list(save.glob("sweeps/*/*/runs/trial-001.json"))
            run_file = found[0] if found else None
            run = read_json(run_file) if run_file else None
            if run and (Path(run["run_dir"]) / "checkpoint-epoch3.pth").is_file():
                break
            assert proc.poll() is None, "the sweep ended before fold 1 could be interrupted"
            time.sleep(0.02)
        kids = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the sweep and its trial, like a lost machine
        for kid in kids:
            os.kill(kid, signal.SIGKILL)
    finally:
        proc.wait(10)
    folder = run_file.parent.parent
    killed_run = Path(read_json(run_file)["run_dir"])
    assert not (folder / "trials" / "trial-001.json").exists()
    assert not (killed_run / f"checkpoint-epoch{EPOCHS}.pth").exists()

    result = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "1 finished earlier, 2 to run" in result.stdout
    assert len(launches(folder, 0)) == 1  # fold 0 was not retrained
    first, again = launches(folder, 1)
    # from its newest checkpoint: an epoch's, or the interrupt checkpoint its train.py saved
    # on the SIGTERM it gets when its sweep dies (Linux), before the SIGKILL reached it
    assert " -c " in first and f" -r {killed_run}/checkpoint-" in again
    assert len(launches(folder, 2)) == 1
    # the resumed fold prints the epochs it trains, not again those of its first start
    shown = [int(e) for e in re.findall(rf"^\[trial 1\] epoch (\d+)/{EPOCHS} ", result.stdout,
                                        re.M)]
    assert shown and shown[-1] == EPOCHS and min(shown) > 3 and len(shown) == len(set(shown))

    def summary(f: Path) -> list[dict]:
        rows = sorted(read_csv(f / "summary.csv"), key=lambda r: int(r["trial"]))
        return [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]

    assert summary(folder) == summary(unbroken)
    assert (folder / "groups.csv").read_text() == (unbroken / "groups.csv").read_text()
    rows = sorted(read_csv(folder / "summary.csv"), key=lambda r: int(r["trial"]))
    assert Path(rows[1]["run_dir"]) == killed_run  # resumed in its own run folder
    for mine, theirs in zip(rows, sorted(read_csv(unbroken / "summary.csv"),
                                         key=lambda r: int(r["trial"]))):
        assert metrics_rows(Path(mine["run_dir"])) == metrics_rows(Path(theirs["run_dir"]))
        a = load(Path(mine["run_dir"]) / "model_best.pth")["model_state_dict"]
        b = load(Path(theirs["run_dir"]) / "model_best.pth")["model_state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_repeat_with_a_grid_groups_trials_by_everything_but_the_seed(tmp_path):
    save = tmp_path / "saved"
    cfg = wine_config(tmp_path / "wine.yaml")
    result = train("-c", cfg, "-m", "optimizer.args.lr=0.003,0.03", "--repeat", "2",
                   "trainer.epochs=2", "data_loader.args.batch_size=32", "--jobs", "2",
                   save_dir=save)
    assert result.returncode == 0, result.stderr + result.stdout
    folder = sweep_folder(save)
    rows = read_csv(folder / "summary.csv")
    assert sorted((r["optimizer.args.lr"], r["seed"]) for r in rows) == [
        ("0.003", "42"), ("0.003", "43"), ("0.03", "42"), ("0.03", "43")]
    groups = read_csv(folder / "groups.csv")
    assert [g["rank"] for g in groups] == ["1", "2"]
    for g in groups:
        values = np.array([float(r["best_val_loss"]) for r in rows
                           if r["optimizer.args.lr"] == g["optimizer.args.lr"]])
        assert g["n"] == "2"
        assert float(g["best_val_loss_mean"]) == pytest.approx(values.mean(), rel=1e-12)
        assert float(g["best_val_loss_std"]) == pytest.approx(values.std(ddof=1), rel=1e-12)
    means = [float(g["best_val_loss_mean"]) for g in groups]
    assert means == sorted(means)  # ranked by the mean (min val_loss)
    assert "## Mean ± std over seed" in (folder / "summary.md").read_text()
    # issue 26 item 16: the printed summary stays under 100 characters a line (paths aside),
    # every group's values on the terminal too; summary.md keeps the tables
    summary = result.stdout[result.stdout.index("# Sweep wine_mlp"):]
    assert all(len(line) <= 100 for line in summary.splitlines() if "/" not in line), summary
    assert summary.count("- rank 1  optimizer.args.lr") == 1 and "best_val_loss_mean" not in summary
    for g in groups:
        mean = f"best_val_loss {float(g['best_val_loss_mean']):.6g} ± "
        assert mean in summary
    assert "[trial 3] epoch 2/2  loss " in result.stdout
    # test.py on a sweep folder is for folds and repeats only
    result = run_script("test.py", "-r", folder)
    assert result.returncode == 2 and "also varies optimizer.args.lr" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds: expected an integer >= 2"),
    (["--repeat", "0"], "--repeat: expected a positive integer"),
    (["-m", "seed=1,2", "--repeat", "2"], "--repeat sweeps the seed itself"),
    (["+data_loader.args.folds=3", "+data_loader.args.fold=3"],
     "data_loader.args.fold: expected an integer from 0 to 2"),
    (["+data_loader.args.fold=1"], "data_loader.args.fold: needs data_loader.args.folds"),
])
def test_fold_and_repeat_usage_errors(tmp_path, args, message):
    result = train("-c", wine_config(tmp_path / "wine.yaml"), *args, save_dir=tmp_path / "s")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()
