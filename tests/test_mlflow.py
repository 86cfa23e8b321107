"""Issue 15 item 6: MLflow tracking (trainer.loggers: [mlflow]), read back with MlflowClient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import ENV, REPO, load, load_config, only_run, read_csv, read_json, train

from logger.mlflow_logger import PARENT_ENV
from utils.errors import ConfigError

WINE = REPO / "config/wine_mlp.yaml"
MLFLOW_ENV = {"MLFLOW_TRACKING_URI": "", "TRAIN_MLFLOW_PARENT_RUN_ID": ""}  # the default store
TINY = ["arch.args.hidden=8", "trainer.verbosity=0", "trainer.save_period=1",
        "trainer.loggers=[mlflow]"]


@pytest.fixture
def mlflow_client(save_dir):
    """A client on the run's default file store, <save_dir>/mlruns."""
    pytest.importorskip("mlflow")
    from logger import mlflow_logger

    return lambda: mlflow_logger.client((save_dir.resolve() / "mlruns").as_uri())


def runs_of(client, experiment: str = "wine_mlp") -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, experiment
    return client.search_runs([found.experiment_id])


def history(client, run_id: str, metric: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


def test_unknown_logger_and_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"^trainer.loggers\[0\]: unknown logger 'mlfow'; did "
                                          r"you mean 'mlflow'\? \(available: mlflow\)$"):
        load_config(WINE, ["trainer.loggers=[mlfow]"])
    with pytest.raises(ConfigError, match=r"^trainer.mlflow.experiments: unknown key; did you "
                                          r"mean 'experiment'"):
        load_config(WINE, ["trainer.mlflow={experiments: x}"])
    trainer = load_config(WINE)["trainer"]
    assert trainer["loggers"] == [] and trainer["mlflow"] == {"tracking_uri": None,
                                                              "experiment": None}


def test_mlflow_missing_names_the_pip_command(monkeypatch):
    from logger import mlflow_logger
    from logger.writer import check_loggers_installed

    check_loggers_installed({"loggers": []})  # not asked for: never looked up
    monkeypatch.setattr(mlflow_logger, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as e:
        check_loggers_installed({"loggers": ["mlflow"]})
    assert str(e.value) == ("trainer.loggers: mlflow is not installed; install it with: "
                            "pip install mlflow-skinny  (or: pip install -e '.[mlflow]')")


@pytest.mark.slow
def test_run_interrupted_and_resumed_is_one_mlflow_run(save_dir, mlflow_client):
    args = ["-c", WINE, *TINY, "data_loader.args.batch_size=1", "trainer.epochs=3"]
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args),
                             f"trainer.save_dir={save_dir}"], cwd=REPO, env={**ENV, **MLFLOW_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = save_dir / "log" / "wine_mlp"
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            len(read_csv(p)) >= 1 for p in log.glob("*/metrics.csv")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    ckpt = Path(err.strip().splitlines()[-1].split("checkpoint: ")[1])
    client = mlflow_client()
    (cut,) = runs_of(client)
    assert cut.info.status == "KILLED" and load(ckpt)["mlflow_run_id"] == cut.info.run_id

    r = train("-r", ckpt, save_dir=save_dir, env=MLFLOW_ENV)
    assert r.returncode == 0, r.stderr
    run_dir = only_run(save_dir, "wine_mlp")
    (run,) = runs_of(client)  # the same MLflow run, continued
    assert run.info.run_id == cut.info.run_id and run.info.status == "FINISHED"
    for path in run_dir.glob("*.pth"):  # plain data: weights_only loads it
        assert load(path)["mlflow_run_id"] == run.info.run_id
    config = read_json(run_dir / "config.json")
    assert run.data.params["trainer.epochs"] == "3"
    assert run.data.params["optimizer.args.lr"] == json.dumps(config["optimizer"]["args"]["lr"])
    assert run.data.params["arch.type"] == "MLP"
    assert run.data.params["trainer.loggers"] == '["mlflow"]'
    assert run.data.tags["run_dir"] == str(run_dir)
    rows = read_csv(run_dir.parent.parent.parent / "log/wine_mlp" / run_dir.name / "metrics.csv")
    for metric in ("loss", "val_loss", "val_accuracy", "lr"):  # every epoch once, equal values
        assert history(client, run.info.run_id, metric) == \
            [(int(row["epoch"]), pytest.approx(float(row[metric]))) for row in rows], metric
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model_best.pth"]
    stored = Path(urlparse(run.info.artifact_uri).path) / "model_best.pth"  # the file store's
    assert stored.read_bytes() == (run_dir / "model_best.pth").read_bytes()


@pytest.mark.slow
def test_sweep_trials_are_children_of_one_parent(save_dir, mlflow_client, monkeypatch):
    args = ("-c", WINE, *TINY, "trainer.epochs=2", "-m", "optimizer.args.lr=0.01,0.001",
            "arch.args.depth=1,2", "--jobs", "2")
    r = train(*args, save_dir=save_dir, env=MLFLOW_ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    (folder,) = (save_dir / "sweeps" / "wine_mlp").iterdir()
    client = mlflow_client()
    runs = runs_of(client)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    parent = parents[0]
    assert read_json(folder / "mlflow_parent.json") == {"run_id": parent.info.run_id}
    assert parent.info.run_name == f"wine_mlp/{folder.name}" and parent.info.status == "FINISHED"
    assert parent.data.params["sweep.parameters.arch.args.depth"] == "[1, 2]"
    children = {run.data.tags["run_dir"]: run for run in runs if run is not parent}
    rows = read_csv(folder / "summary.csv")
    assert set(children) == {row["run_dir"] for row in rows}
    for row in rows:
        child = children[row["run_dir"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.params["optimizer.args.lr"] == row["optimizer.args.lr"]
        assert child.data.params["arch.args.depth"] == row["arch.args.depth"]
        assert [s for s, _ in history(client, child.info.run_id, "val_loss")] == [1, 2]
        assert min(v for _, v in history(client, child.info.run_id, "val_loss")) == \
            pytest.approx(float(row["best_val_loss"]))
        assert [f.path for f in client.list_artifacts(child.info.run_id)] == ["model_best.pth"]

    # a rerun of the command re-opens the same parent (here in this process: no new trials)
    import train as train_py
    from sweep.mlflow_parent import open_parent
    from sweep.spec import load_sweep

    monkeypatch.setenv(PARENT_ENV, "")  # both restored after the test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    sweep = load_sweep(train_py.parse_args([*map(str, args), f"trainer.save_dir={save_dir}"]))
    assert sweep.folder.resolve() == folder.resolve()
    assert open_parent(sweep) == parent.info.run_id == os.environ[PARENT_ENV]
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"
    assert sorted(run.info.run_id for run in runs_of(client)) == \
        sorted(run.info.run_id for run in runs)


def test_an_epoch_logged_before_a_kill_is_not_logged_again(tmp_path, monkeypatch, mlflow_client):
    """kill -9 after epoch 2 was logged but before its checkpoint: the resume from epoch 1
    trains epoch 2 again; MLflow keeps one value per epoch."""
    from logger.mlflow_logger import MlflowLogger

    monkeypatch.setenv(PARENT_ENV, "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    config = {"name": "unit", "trainer": {"save_dir": str(tmp_path / "saved"), "epochs": 3,
                                          "mlflow": None}}
    rows = [{"epoch": e, "loss": 1.0 / e, "lr": 0.1, "seconds": 0.5} for e in (1, 2, 3)]
    first = MlflowLogger(config, "unit/a", tmp_path, None, [])
    first.write(rows[0], 1)
    first.write(rows[1], 2)
    first.close("KILLED")
    again = MlflowLogger(config, "unit/a", tmp_path, first.run_id, rows[:1])
    for row in rows[1:]:
        again.write(row, row["epoch"])
    again.close()
    client = mlflow_client()
    assert history(client, first.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and "seconds" not in run.data.metrics
    assert run.data.params == {"name": "unit", "trainer.save_dir": str(tmp_path / "saved"),
                               "trainer.epochs": "3", "trainer.mlflow": "null"}


def test_parent_run_is_shared_and_replaced_when_gone(tmp_path, monkeypatch, mlflow_client):
    from sweep import mlflow_parent
    from sweep.definition import Param, Sweep

    monkeypatch.setenv(PARENT_ENV, "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    base = {"name": "unit", "trainer": {"save_dir": str(tmp_path / "saved"), "mlflow": None,
                                        "loggers": ["mlflow"]}}
    sweep = Sweep(name="unit", method="grid", params=[Param("seed", values=[0, 1])],
                  metric="min val_loss", base=base, source="x", sweep_id="abc")
    client = mlflow_client()
    first = mlflow_parent.open_parent(sweep)
    assert os.environ[PARENT_ENV] == first and mlflow_parent.open_parent(sweep) == first
    assert client.get_run(first).data.params["sweep.parameters.seed"] == "[0, 1]"

    other = client.create_run(client.get_run(first).info.experiment_id).info.run_id
    (sweep.folder / mlflow_parent.ID_FILE).unlink()
    real_claim = mlflow_parent._claim

    def lose_the_race(path, run_id):  # another process writes the file first
        real_claim(path, other)
        return real_claim(path, run_id)

    monkeypatch.setattr(mlflow_parent, "_claim", lose_the_race)
    assert mlflow_parent.open_parent(sweep) == other
    assert {r.info.run_id for r in runs_of(client, "unit")} == {first, other}  # its own: deleted

    client.delete_run(other)
    replaced = mlflow_parent.open_parent(sweep)  # the recorded run was deleted: a new one
    assert replaced not in (first, other)
    assert read_json(sweep.folder / mlflow_parent.ID_FILE) == {"run_id": replaced}
