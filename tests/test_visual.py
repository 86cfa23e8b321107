"""Issue 7: TensorBoard, learning-curve plots, model summary, confusion matrix, predictions."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO, load_config, read_csv, read_json, run_dirs, run_script, train

# one worker runs this file's tests: its module fixtures train once (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("visual")

DIGITS_JSON = REPO / "config/digits_mlp.json"
TINY = ("trainer.epochs=2", "trainer.verbosity=1")


def log_dir_of(run: Path) -> Path:
    return run.parents[2] / "log" / run.parent.name / run.name


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def plot(*args) -> subprocess.CompletedProcess:
    """python -m logger.plot ARGS, run from the repository root as a user would."""
    return subprocess.run([sys.executable, "-m", "logger.plot", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=ENV)


def hide_tensorboard(folder: Path) -> dict:
    """An environment in which `import tensorboard` fails, as when it is not installed."""
    stub = folder / "tensorboard"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('tensorboard hidden by the test')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny digits runs with trainer.tensorboard on: A with histograms every epoch;
    B with another lr and TensorBoard not importable (warning, training goes on)."""
    tmp = tmp_path_factory.mktemp("visual")
    save = tmp / "saved"
    r = train("-c", DIGITS_JSON, *TINY, "trainer.tensorboard=true",
              "+trainer.histogram_period=1", save_dir=save)
    assert r.returncode == 0, r.stderr
    r = train("-c", DIGITS_JSON, *TINY, "trainer.tensorboard=true", "optimizer.args.lr=0.01",
              save_dir=save, env=hide_tensorboard(tmp / "stub"))
    assert r.returncode == 0, r.stderr
    assert "pip install tensorboard" in r.stdout + r.stderr
    a, b = run_dirs(save, "digits_mlp")
    return a, b


def load_script(name: str):
    """train.py or test.py as a module, to call its main() in this process (cheap)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(script: str, *args, capsys) -> tuple[int, str, str]:
    code = load_script(script).main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


# ---------------------------------------------------------------- TensorBoard

def test_tensorboard_events_hold_scalars_histograms_and_config(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = log_dir_of(runs[0])
    assert list(log_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(log_dir), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    rows = read_csv(log_dir / "metrics.csv")
    expected = {"loss/train": "loss", "loss/valid": "val_loss", "accuracy/train": "accuracy",
                "accuracy/valid": "val_accuracy", "top_k_acc/train": "top_k_acc",
                "top_k_acc/valid": "val_top_k_acc", "lr": "lr"}
    for tag, column in expected.items():
        assert tag in tags["scalars"], tag
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([float(r[column]) for r in rows],
                                                           rel=1e-5)
    params = ["hidden.0.weight", "hidden.0.bias", "hidden.2.weight", "hidden.2.bias",
              "output.weight", "output.bias"]
    for name in params:
        assert f"parameters/{name}" in tags["histograms"], name
        assert [h.step for h in events.Histograms(f"parameters/{name}")] == [1, 2]
    assert any(t.startswith("config") for t in tags["tensors"])


def test_tensorboard_enabled_but_missing_warns_and_trains(runs):
    b = runs[1]  # trained with tensorboard hidden: warned (checked in the fixture), trained
    assert (b / "checkpoint-epoch2.pth").is_file()
    assert len(read_csv(log_dir_of(b) / "metrics.csv")) == 2
    assert not list(log_dir_of(b).glob("events.out.tfevents.*"))


def test_histogram_period_is_validated():
    from utils.errors import ConfigError

    assert load_config(DIGITS_JSON)["trainer"]["histogram_period"] == 10  # the default
    with pytest.raises(ConfigError, match=r"trainer\.histogram_period: expected an integer >= 0"):
        load_config(DIGITS_JSON, ["+trainer.histogram_period=-1"])


# ---------------------------------------------------------------- plots

def test_plot_one_run_and_two_runs(runs, tmp_path):
    a, b = runs
    r = plot(log_dir_of(a))
    assert r.returncode == 0, r.stderr
    png = log_dir_of(a) / "learning_curve.png"
    assert f"saved {png}" in r.stdout
    # panels: loss, accuracy, top_k_acc
    assert png_size(png) == (1200, 320)  # three 400 x 320 panels in a row
    assert png.stat().st_size > 10_000

    from logger.plot import main

    out = tmp_path / "both.png"
    assert main([str(a), str(log_dir_of(b) / "metrics.csv"), "-o", str(out)]) == 0  # a models
    # folder and a metrics.csv, overlaid
    assert png_size(out) == (1200, 320)
    assert out.stat().st_size > 10_000


def test_plot_best_epoch_follows_the_monitor(runs):
    from logger.plot import load_run

    run = load_run(runs[0])
    rows = read_csv(log_dir_of(runs[0]) / "metrics.csv")
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert run.monitor == ("min", "val_loss")
    assert run.best_epoch == int(best["epoch"])
    assert run.curves == ["loss", "accuracy", "top_k_acc"]


def write_summary(folder: Path) -> Path:
    """A sweep summary as the sweep command writes it (sweep/records.py): one row per trial,
    and sweep.json with the sweep's metric."""
    folder.mkdir(parents=True)
    rows = [
        ["rank", "trial", "status", "optimizer.args.lr", "arch.args.hidden",
         "arch.args.activation", "best_val_loss", "best_epoch", "seconds", "run_dir", "error"],
        [3, 0, "finished", 0.001, 32, "Tanh", 0.41, 2, 1.0, "a", ""],
        [1, 1, "finished", 0.01, 64, "ReLU", 0.22, 2, 1.0, "b", ""],
        [2, 2, "finished", 0.1, 128, "Tanh", 0.35, 2, 1.0, "c", ""],
        ["", 3, "failed", 1.0, 32, "ReLU", "", "", 1.0, "d", "non-finite loss"],
    ]
    with open(folder / "summary.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    (folder / "sweep.json").write_text(json.dumps({"metric": "min val_loss"}))
    return folder


def test_plot_sweep_folder_gives_metric_against_each_swept_value(tmp_path):
    from logger.plot import load_sweep_table

    folder = write_summary(tmp_path / "sweeps" / "digits_mlp" / "1122_000000_abcdef")
    sweep = load_sweep_table(folder)
    assert sweep.params == ["optimizer.args.lr", "arch.args.hidden", "arch.args.activation"]
    assert sweep.value_column == "best_val_loss" and sweep.mode == "min"
    assert [t["value"] for t in sweep.trials] == [0.41, 0.22, 0.35]  # the failed trial is left out
    from logger.plot import main

    assert main([str(folder)]) == 0
    assert png_size(folder / "sweep.png") == (1200, 320)


def test_plot_bad_paths_are_clear_errors(tmp_path, capsys):
    from logger.plot import main

    assert "no such file" in one_error(main([str(tmp_path / "nowhere")]), capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert "no metrics.csv" in one_error(main([str(tmp_path / "empty")]), capsys.readouterr().err)


# ---------------------------------------------------------------- model summary

def test_summary_counts_trainable_and_frozen_parameters():
    from model.model import MLP
    from trainer.run.summary import summarize

    model = MLP(64, 10, hidden=32, depth=2, batch_norm=True, dropout=0.1)
    for p in model.hidden[0].parameters():
        p.requires_grad_(False)
    x = torch.randn(7, 64)
    rng = torch.get_rng_state()
    summary = summarize(model, (x,))
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.frozen == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert summary.frozen == 64 * 32 + 32
    assert summary.total == sum(p.numel() for p in model.parameters())
    assert sum(r.trainable for r in summary.rows) == summary.trainable
    assert sum(r.frozen for r in summary.rows) == summary.frozen
    shapes = {r.name: r.output_shape for r in summary.rows}
    assert shapes["hidden.0"] == "[7, 32]" and shapes["output"] == "[7, 10]"
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert summary.size_mb == pytest.approx(size / 2**20)
    text = summary.format()
    assert f"Total parameters:     {summary.total:,}" in text
    assert f"Frozen parameters:    {summary.frozen:,}" in text


def test_summary_in_dry_run_and_in_the_run_log(runs, tmp_path, capsys):
    from model.model import MLP

    total = sum(p.numel() for p in MLP(64, 10, hidden=128, depth=2).parameters())
    code, out, err = in_process("train", "-c", DIGITS_JSON, "--dry-run",
                                f"trainer.save_dir={tmp_path / 'saved'}", capsys=capsys)
    assert code == 0, err
    assert "Model summary (input [64, 64])" in out
    assert f"Total parameters:     {total:,}" in out
    assert "output    Linear  [64, 10]" in out
    assert not (tmp_path / "saved").exists()
    log = (log_dir_of(runs[0]) / "info.log").read_text()
    assert "Model summary" in log and f"Trainable parameters: {total:,}" in log


# ---------------------------------------------------------------- test.py report and predictions

@pytest.fixture(scope="module")
def tested(runs) -> str:
    """test.py on run A's best checkpoint (metrics, confusion matrix, report); its stdout."""
    r = run_script("test.py", "-r", runs[0] / "model_best.pth")
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def split_predictions(runs, tested) -> Path:
    """test.py --predict on run A's best checkpoint: predictions.csv of the test split."""
    r = run_script("test.py", "-r", runs[0] / "model_best.pth", "--predict")
    assert r.returncode == 0, r.stderr
    return runs[0] / "predictions.csv"


def test_confusion_matrix_and_report_agree_with_test_metrics(runs, tested):
    metrics = read_json(runs[0] / "test_metrics.json")
    assert list(metrics) == ["loss", "accuracy", "top_k_acc"]
    assert f"accuracy: {metrics['accuracy']:.6f}" in tested
    assert "confusion matrix" in tested and "per-class report" in tested
    with open(runs[0] / "confusion_matrix.csv", newline="") as f:
        matrix = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    n = sum(map(sum, matrix))
    assert n == 359  # the digits test split: 20% of 1797
    assert sum(matrix[i][i] for i in range(10)) / n == pytest.approx(metrics["accuracy"])
    report = read_json(runs[0] / "classification_report.json")
    assert report["accuracy"] == pytest.approx(metrics["accuracy"])
    assert sum(report[str(c)]["support"] for c in range(10)) == n
    assert png_size(runs[0] / "confusion_matrix.png")[0] > 300


def read_predictions(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_test_split_predictions_score_like_test_metrics(runs, split_predictions):
    from data_loader.data_loaders import DigitsDataLoader

    metrics = read_json(runs[0] / "test_metrics.json")
    rows = read_predictions(split_predictions)
    assert list(rows[0])[:3] == ["index", "target", "prediction"]
    assert list(rows[0])[3:] == [f"prob_{c}" for c in range(10)]
    accuracy = sum(r["prediction"] == r["target"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-6)
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in range(10)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert max(range(10), key=probs.__getitem__) == int(row["prediction"])
    test_idx = DigitsDataLoader(training=False).indices.tolist()
    assert [int(r["index"]) for r in rows] == test_idx
    assert read_json(runs[0] / "test_metrics.json") == metrics  # --predict leaves it alone


@pytest.mark.slow
def test_predictions_for_a_csv_of_raw_features(runs, split_predictions, tmp_path):
    from sklearn.datasets import load_digits

    by_index = {int(r["index"]): r for r in read_predictions(split_predictions)}
    chosen = sorted(by_index)[:6]
    x, _ = load_digits(return_X_y=True)
    features = tmp_path / "features.csv"
    with open(features, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"pixel_{i}" for i in range(64)])
        writer.writerows(x[chosen].tolist())
    out = tmp_path / "out" / "predictions.csv"
    r = run_script("test.py", "-r", runs[0] / "model_best.pth", "--predict", features,
                   "--output", out)
    assert r.returncode == 0, r.stderr
    rows = read_predictions(out)
    assert [int(r["row"]) for r in rows] == list(range(1, 7))
    for row, i in zip(rows, chosen):  # raw features in, the model standardizes them itself
        assert row["prediction"] == by_index[i]["prediction"]
        assert float(row["prob_0"]) == pytest.approx(float(by_index[i]["prob_0"]), abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("case, expected", [
    ("columns", ["row 2 (line 2)", "has 63 columns", "expected 64"]),
    ("cell", ["row 3 (line 4)", "column 6 ('pixel_5')", "expected a number, got 'abc'"]),
    ("empty_cell", ["row 1 (line 2)", "column 1 ('pixel_0')", "got an empty value"]),
    ("missing", ["input file not found"]),
])
def test_bad_prediction_inputs_are_one_line_errors(runs, tmp_path, capsys, case, expected):
    header = [f"pixel_{i}" for i in range(64)]
    rows = [[str(float(i % 16)) for i in range(64)] for _ in range(4)]
    if case == "columns":
        header = None
        rows[1] = rows[1][:63]
    elif case == "cell":
        rows[2][5] = "abc"
    elif case == "empty_cell":
        rows[0][0] = ""
    bad = tmp_path / f"{case}.csv"
    if case != "missing":
        with open(bad, "w", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(header)
            writer.writerows(rows)
    out = tmp_path / "predictions.csv"
    code, _, err = in_process("test", "-r", runs[1] / "model_best.pth", "--predict", bad,
                              "--output", out, capsys=capsys)
    line = one_error(code, err)
    assert str(bad) in line
    for text in expected:
        assert text in line, line
    assert not out.exists()


@pytest.mark.slow
def test_plot_without_matplotlib_says_how_to_install(runs, tmp_path):
    stub = tmp_path / "stub" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('matplotlib hidden by the test')\n")
    r = subprocess.run([sys.executable, "-m", "logger.plot", str(runs[0])], cwd=REPO,
                       capture_output=True, text=True, timeout=60,
                       env={**ENV, "PYTHONPATH": str(stub.parent)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and "pip install matplotlib" in lines[0]
