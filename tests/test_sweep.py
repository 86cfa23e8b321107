"""Issue 5: sweeps (multirun grids, sweep: sections, parallel trials, resume, Optuna)."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    ENV,
    REPO,
    read_csv,
    read_json,
    run_script,
    train,
    tree_snapshot,
    trial_run_dirs,
)

TINY = {
    "name": "tiny",
    "seed": 1,
    "arch": {"type": "MLP", "args": {"in_features": 64, "out_features": 10, "hidden": 16,
                                     "depth": 1}},
    "data_loader": {"type": "DigitsDataLoader",
                    "args": {"batch_size": 128, "validation_split": 0.1, "test_split": 0.2}},
    "optimizer": {"type": "Adam", "args": {"lr": 0.01}},
    "loss": "cross_entropy",
    "metrics": ["accuracy"],
    "trainer": {"epochs": 1, "save_dir": "saved/", "verbosity": 0, "monitor": "min val_loss"},
}
HAS_OPTUNA = importlib.util.find_spec("optuna") is not None


def write_config(path: Path, sweep: dict | None = None, **trainer) -> Path:
    config = {**TINY, "trainer": {**TINY["trainer"], **trainer}}
    if sweep is not None:
        config["sweep"] = sweep
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def sweep_folder(save_dir: Path, name: str) -> Path:
    (folder,) = (save_dir / "sweeps" / name).iterdir()
    return folder


def model_runs(save_dir: Path, name: str = "tiny") -> list[Path]:
    """The trials' run folders (in the sweep folder); the user's own saved/models stays empty."""
    assert not (save_dir / "models").exists() and not (save_dir / "log").exists()
    return trial_run_dirs(save_dir, name)


@pytest.mark.slow  # the fast tier keeps within 3 minutes; the full suite runs it
def test_grid_with_two_jobs_then_rerun_trains_nothing(tmp_path, save_dir):
    cfg = write_config(tmp_path / "c.yaml")
    args = ("-c", cfg, "-m", "optimizer.args.lr=0.01,0.001", "arch.args.depth=1,2", "--jobs", "2")
    result = train(*args, save_dir=save_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 at once with 1 CPU thread(s) each" in result.stdout  # OMP_NUM_THREADS=1 caps it
    runs = model_runs(save_dir)
    assert len(runs) == 4 and all((r / "model_best.pth").is_file() for r in runs)

    folder = sweep_folder(save_dir, "tiny")
    rows = read_csv(folder / "summary.csv")
    assert [r["status"] for r in rows] == ["finished"] * 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    values = [float(r["best_val_loss"]) for r in rows]
    assert values == sorted(values)
    assert {(r["optimizer.args.lr"], r["arch.args.depth"]) for r in rows} == \
        {("0.01", "1"), ("0.01", "2"), ("0.001", "1"), ("0.001", "2")}
    assert {Path(r["run_dir"]).name for r in rows} == {r.name for r in runs}
    for r in rows:  # each trial is an ordinary run: its config holds its values
        config = read_json(Path(r["run_dir"]) / "config.json")
        assert config["optimizer"]["args"]["lr"] == float(r["optimizer.args.lr"])
        assert "sweep" not in config
    definition = read_json(folder / "sweep.json")
    assert definition["method"] == "grid" and definition["metric"] == "min val_loss"
    assert definition["parameters"] == {"optimizer.args.lr": [0.01, 0.001],
                                        "arch.args.depth": [1, 2]}
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("# Sweep tiny") and "| 1 |" in summary
    assert f"- checkpoint: {rows[0]['run_dir']}/model_best.pth" in summary
    assert "Best: trial" in result.stdout
    for r in rows:  # issue 26 item 16: a line per finished epoch of each trial, as it comes
        line = re.search(rf"^\[trial {r['trial']}\] epoch 1/1  loss \S+  val_loss (\S+)",
                         result.stdout, re.M)
        assert line, result.stdout
        assert float(line.group(1)) == pytest.approx(float(r["best_val_loss"]), rel=1e-3)

    assert all(r.parent.parent.parent == folder for r in runs)  # <sweep folder>/models/tiny/
    before = tree_snapshot(folder / "models")
    again = train(*args, save_dir=save_dir)
    assert again.returncode == 0, again.stderr
    assert "4 finished earlier, 0 to run" in again.stdout
    assert tree_snapshot(folder / "models") == before
    assert [r["run_dir"] for r in read_csv(folder / "summary.csv")] == \
        [r["run_dir"] for r in rows]


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_others_finish_and_test(tmp_path, save_dir):
    cfg = write_config(tmp_path / "c.yaml")
    # -1: the optimizer rejects it (exit 2); 1e10 with ReLU: a NaN loss (exit 1)
    args = ("-c", cfg, "-m", "optimizer.args.lr=0.01,-1,1.0e+10", "optimizer.type=SGD",
            "+arch.args.activation=ReLU", "--jobs", "2", "--test")
    result = train(*args, save_dir=save_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: 2 of 3 trials failed")
    rows = {r["optimizer.args.lr"]: r for r in read_csv(sweep_folder(save_dir, "tiny") /
                                                       "summary.csv")}
    good, bad, nan = rows["0.01"], rows["-1"], rows["10000000000.0"]
    assert good["status"] == "finished" and good["rank"] == "1"
    tested = read_json(Path(good["run_dir"]) / "test_metrics.json")
    assert float(good["test_accuracy"]) == pytest.approx(tested["accuracy"])
    assert bad["status"] == "failed" and bad["rank"] == ""
    assert "Invalid learning rate: -1" in bad["error"]
    assert nan["status"] == "failed" and "non-finite loss" in nan["error"]
    assert len(model_runs(save_dir)) == 2  # the NaN trial got as far as its run folder

    again = train(*args, save_dir=save_dir)  # finished trials are kept, failed ones rerun
    assert again.returncode == 1
    assert "1 finished earlier, 2 to run" in again.stdout
    assert len(model_runs(save_dir)) == 3


def test_sweep_section_random_plan_is_seeded_and_within_bounds(tmp_path):
    import train as train_py
    from sweep.spec import load_sweep
    from utils.override_items import parse_value

    assert parse_value("[64,32],[128]").values == [[64, 32], [128]]
    assert parse_value("'a,b',c").values == ["a,b", "c"]
    sweep_def = {"method": "random", "trials": 5, "seed": 3, "metric": "max val_accuracy",
                 "parameters": {
                     "optimizer.args.lr": {"distribution": "log_uniform", "low": 1e-4,
                                           "high": 1e-1},
                     "arch.args.hidden": {"distribution": "int_uniform", "low": 8, "high": 64},
                     "+arch.args.activation": ["Tanh", "ReLU"]}}
    cfg = write_config(tmp_path / "c.yaml", sweep_def)
    plans = [load_sweep(train_py.parse_args(["-c", str(cfg)])).plan for _ in range(2)]
    assert [t.params for t in plans[0]] == [t.params for t in plans[1]]
    assert len(plans[0]) == 5 and len({t.key for t in plans[0]}) == 5
    for t in plans[0]:
        assert 1e-4 <= t.params["optimizer.args.lr"] <= 1e-1
        assert 8 <= t.params["arch.args.hidden"] <= 64
        assert t.config["arch"]["args"]["activation"] in ("Tanh", "ReLU")
    # a command-line list replaces the section's definition of that key; commas in brackets
    sweep = load_sweep(train_py.parse_args(["-c", str(cfg), "-m", "arch.args.hidden=4,8",
                                            "metrics=[accuracy],[accuracy,top_k_acc]"]))
    assert [p.values for p in sweep.params[-2:]] == [[4, 8], [["accuracy"],
                                                              ["accuracy", "top_k_acc"]]]
    assert {t.params["arch.args.hidden"] for t in sweep.plan} <= {4, 8}


def test_each_trial_gets_its_share_of_the_cores(monkeypatch):
    from sweep import launcher as sweep_run

    monkeypatch.setattr(sweep_run, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [sweep_run.threads_per_trial(j) for j in (1, 3, 4, 32)] == [16, 5, 4, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert sweep_run.threads_per_trial(4) == 2


BAD = [
    ({"method": "gird"}, [], "sweep.method: expected one of grid, random"),
    ({"parameters": {"optimizer.args.lr": {"distribution": "uniform", "low": 0.1, "high": 1}}},
     [], "method grid needs a list of values"),
    ({"method": "random", "parameters": {"optimizer.args.lr": [0.1]}}, [],
     "sweep.trials: method random needs a positive number of trials"),
    ({"metric": "max val_acc", "parameters": {"optimizer.args.lr": [0.1]}}, [],
     "sweep.metric: 'val_acc' is not logged"),
    ({"parameters": {"optimizer.args.lr": {"distribution": "log_uniform", "low": 0,
                                           "high": 1}}}, [], "needs low > 0"),
    (None, ["-m", "arch.args.depth=1,two"],
     "sweep trial 1 (arch.args.depth=two): arch.args.depth: expected an integer"),
    (None, ["-m", "arch.args.nope=1,2"], "arch.args.nope"),
    (None, ["-m", "optimizer.args.lr=0.1,0.2", "--jobs", "0"], "--jobs: expected a positive"),
    (None, ["arch.args.depth=2", "--test"], "--jobs and --test apply to sweeps"),
]


@pytest.mark.parametrize("section,argv,message", BAD)
def test_bad_sweep_definitions_exit_2_and_write_nothing(tmp_path, capsys, section, argv,
                                                        message):
    import train as train_py

    save = tmp_path / "saved"
    cfg = write_config(tmp_path / "c.yaml", section, save_dir=str(save))
    code = train_py.main(["-c", str(cfg), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not save.exists()


def test_optuna_method_without_optuna_names_the_pip_command(tmp_path):
    fake = tmp_path / "fake" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    cfg = write_config(tmp_path / "c.yaml", {
        "method": "tpe", "trials": 2,
        "parameters": {"optimizer.args.lr": [0.1, 0.01]}}, save_dir=str(tmp_path / "saved"))
    result = run_script("train.py", "-c", cfg, env={"PYTHONPATH": str(fake.parent)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: " + f"{cfg}: sweep.method: 'tpe' runs on Optuna, which is not installed; "
        "install it with: pip install optuna  (or: pip install -e '.[sweep]')"]
    assert not (tmp_path / "saved").exists()


@pytest.mark.slow
def test_without_optuna_a_grid_runs_in_one_process_as_before(tmp_path, save_dir):
    fake = tmp_path / "fake" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    cfg = write_config(tmp_path / "c.yaml", save_dir=str(save_dir))
    args = ("-c", cfg, "-m", "optimizer.args.lr=0.01,0.001")
    result = run_script("train.py", *args, env={"PYTHONPATH": str(fake.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finished earlier, 2 to run" in result.stdout and "queue" not in result.stdout
    folder = sweep_folder(save_dir, "tiny")
    assert {r["status"] for r in read_csv(folder / "summary.csv")} == {"finished"}
    assert not (folder / "study.journal").exists() and len(model_runs(save_dir)) == 2
    bad = run_script("train.py", *args, "+sweep.storage=sqlite:///x.db",
                     env={"PYTHONPATH": str(fake.parent)})
    assert bad.returncode == 2 and "sweep.storage: the shared trial queue runs on Optuna" in \
        bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OPTUNA, reason="needs the optional extra: pip install optuna")
def test_two_optuna_workers_share_one_sqlite_study(tmp_path, save_dir):
    import optuna

    db = tmp_path / "study.db"
    cfg = write_config(tmp_path / "c.yaml", {
        "method": "tpe", "trials": 6, "storage": f"sqlite:///{db}", "study": "shared",
        "pruner": "none",  # every trial must complete (a pruner could stop one)
        "parameters": {"optimizer.args.lr": {"distribution": "log_uniform", "low": 1e-3,
                                             "high": 1e-1},
                       "arch.args.hidden": [8, 16, 32]}}, save_dir=str(save_dir))
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(cfg)]
    workers = [subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, out + err
    started = [int(n) for out, _ in outputs for n in re.findall(r"^trial (\d+) started", out,
                                                                 re.M)]
    assert sorted(started) == list(range(6))  # each trial run once, by one of the workers

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6
    assert len(model_runs(save_dir)) == 6
    rows = read_csv(sweep_folder(save_dir, "tiny") / "summary.csv")
    assert len(rows) == 6 and {r["status"] for r in rows} == {"finished"}
    assert float(rows[0]["best_val_loss"]) == pytest.approx(study.best_value)


@pytest.mark.slow
def test_ctrl_c_stops_launching_and_leaves_a_consistent_summary(tmp_path, save_dir):
    cfg = write_config(tmp_path / "c.yaml", epochs=500, save_period=1000)
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(cfg), "-m",
           "optimizer.args.lr=0.01,0.001,0.0001", f"trainer.save_dir={save_dir}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = "sweeps/tiny/*/log/tiny/*/metrics.csv"
    while not list(save_dir.glob(metrics)) or \
            len(list(save_dir.glob(metrics))[0].read_text().splitlines()) < 3:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    rows = read_csv(sweep_folder(save_dir, "tiny") / "summary.csv")
    assert [r["status"] for r in rows] == ["interrupted", "pending", "pending"]
    # it saved where it stopped (mid-epoch, or the epoch it had just finished; save_period
    # is 1000, so no other checkpoint exists)
    assert list(Path(rows[0]["run_dir"]).glob("checkpoint-*.pth"))
    assert len(model_runs(save_dir)) == 1


def test_wide_summary_tables_print_as_lines_of_at_most_100_characters():
    """Issue 26 item 16: a fold summary's tables (400 characters a line) are folded for the
    terminal; a narrow table prints as it is."""
    from sweep.records import for_console
    header = ["rank", "n", *[f"val_metric_number_{i}" for i in range(12)]]
    row = ["1", "3", *[f"0.{i}23456 ± 0.0{i}56789" for i in range(12)]]
    md = "\n".join(["# Sweep x", "", "| " + " | ".join(header) + " |",
                    "|" + "---|" * len(header), "| " + " | ".join(row) + " |", "",
                    "| a | b |", "|---|---|", "| 1 | x \\| y |"]) + "\n"
    assert max(map(len, md.splitlines())) > 250
    out = for_console(md)
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), out
    assert lines[2].startswith("- rank 1  n 3  val_metric_number_0 0.023456 ± 0.0056789")
    assert all(f"val_metric_number_{i} 0.{i}23456 ± 0.0{i}56789" in out for i in range(12))
    assert lines[-3:] == ["| a | b |", "|---|---|", "| 1 | x \\| y |"]
