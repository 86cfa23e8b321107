"""Issue 15 item 5: Optuna's storage as the trial queue shared by several sweep processes."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import ENV, REPO, read_csv, read_json, trial_run_dirs

optuna = pytest.importorskip("optuna", reason="needs the optional extra: pip install optuna")

GRID = {"optimizer.args.lr": [0.003, 0.01, 0.03, 0.1], "arch.args.depth": [1, 2]}  # 8 trials


def wine_config(path: Path, save: Path, epochs: int, sweep: dict) -> Path:
    """config/wine_mlp.yaml made tiny, with a sweep section and a short heartbeat grace."""
    config = yaml.safe_load((REPO / "config/wine_mlp.yaml").read_text())
    config["arch"]["args"]["hidden"] = 16
    config["data_loader"]["args"]["batch_size"] = 4
    config["trainer"].update(epochs=epochs, save_period=1, verbosity=0, save_dir=str(save))
    config["sweep"] = {"heartbeat_interval": 1, "grace_period": 4, **sweep}
    path.write_text(yaml.safe_dump(config))
    return path


def start(cfg: Path, out: Path) -> subprocess.Popen:
    """One sweep worker: train.py -c CFG, its output in `out`."""
    with open(out, "w") as f:  # the worker keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "-c", str(cfg)],
                                cwd=REPO, env=ENV, stdout=f, stderr=subprocess.STDOUT)
    proc.out = out
    return proc


def finish(*procs: subprocess.Popen, timeout: float = 400) -> None:
    for proc in procs:
        assert proc.wait(timeout) == 0, f"exit {proc.returncode}: {proc.out.read_text()}"


def launches(folder: Path) -> dict[int, list[str]]:
    """The train.py commands started for each trial (one '$ ' line each in its log)."""
    out = {}
    for log in sorted((folder / "logs").glob("trial-*.log")):
        number = int(log.stem.split("-")[1])
        out[number] = [line for line in log.read_text().splitlines()
                       if line.startswith("$ ") and "train.py" in line]
    return out


def only_folder(save: Path) -> Path:
    (folder,) = (save / "sweeps" / "wine_mlp").iterdir()
    return folder


def check_grid_done(save: Path, outputs: list[Path]) -> Path:
    """8 distinct trials finished, each trained once (one train.py start each); the started
    lines of the workers' outputs split the trials between them."""
    folder = only_folder(save)
    rows = read_csv(folder / "summary.csv")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"finished"}
    assert len({(r["optimizer.args.lr"], r["arch.args.depth"]) for r in rows}) == 8
    assert len({r["run_dir"] for r in rows}) == 8 and len(trial_run_dirs(save, "wine_mlp")) == 8
    started = [[int(n) for n in re.findall(r"^trial (\d+) started", out.read_text(), re.M)]
               for out in outputs]
    assert all(started), started  # both workers took trials
    return folder


@pytest.mark.slow
def test_two_workers_split_a_grid_and_a_killed_one_is_resumed(tmp_path):
    save = tmp_path / "saved"
    cfg = wine_config(tmp_path / "wine.yaml", save, epochs=6, sweep={"parameters": GRID})
    a, b = start(cfg, tmp_path / "a.out"), start(cfg, tmp_path / "b.out")
    deadline, victim = time.time() + 200, None
    while victim is None:  # worker a is in a trial that has saved its first epoch
        assert time.time() < deadline and a.poll() is None, (tmp_path / "a.out").read_text()
        for n in re.findall(r"^trial (\d+) started", (tmp_path / "a.out").read_text(), re.M):
            run = tmp_path / "saved/sweeps/wine_mlp"
            found = glob.glob(str(run / f"*/runs/trial-{int(n):03d}.json"))
            run_dir = (read_json(Path(found[0])) or {}).get("run_dir") if found else None
            trial = glob.glob(str(run / f"*/trials/trial-{int(n):03d}.json"))
            if run_dir and (Path(run_dir) / "checkpoint-epoch1.pth").is_file() and not trial:
                victim = int(n)
        time.sleep(0.05)
    a.send_signal(signal.SIGKILL)  # the worker only: its train.py saves and exits
    a.wait(10)
    again = start(cfg, tmp_path / "a2.out")
    finish(b, again)
    folder = check_grid_done(save, [tmp_path / "b.out", tmp_path / "a2.out"])
    starts = launches(folder)
    assert sorted(starts) == list(range(8))
    for n, cmds in starts.items():  # trained once; the killed trial resumed once
        assert len(cmds) == (2 if n == victim else 1), (n, cmds)
    first, resumed = starts[victim]
    run_dir = read_json(folder / "trials" / f"trial-{victim:03d}.json")["run_dir"]
    assert " -c " in first and f" -r {run_dir}/checkpoint-" in resumed
    metrics = read_csv(Path(read_json(folder / "runs" / f"trial-{victim:03d}.json")["log_dir"])
                       / "metrics.csv")
    assert [int(r["epoch"]) for r in metrics] == list(range(1, 7))  # each epoch once
    study = optuna.load_study(study_name=f"wine_mlp-{folder.name}",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(
                                      str(folder / "study.journal"))))
    state = optuna.trial.TrialState
    assert not study.get_trials(states=(state.RUNNING, state.WAITING))
    assert sorted(t.user_attrs["point"] for t in study.get_trials(states=(state.COMPLETE,))) \
        == list(range(8))


@pytest.mark.slow
def test_tpe_with_two_workers_completes_its_trials_after_one_is_killed(tmp_path):
    save = tmp_path / "saved"
    cfg = wine_config(tmp_path / "wine.yaml", save, epochs=8, sweep={
        "method": "tpe", "trials": 4, "pruner": "none",
        "parameters": {"optimizer.args.lr": {"distribution": "log_uniform", "low": 1e-3,
                                             "high": 1e-1}}})
    a, b = start(cfg, tmp_path / "a.out"), start(cfg, tmp_path / "b.out")
    deadline = time.time() + 200
    while not re.search(r"^trial \d+ started", (tmp_path / "a.out").read_text(), re.M) or \
            not glob.glob(str(save / "sweeps/*/*/models/*/*/checkpoint-epoch1.pth")):
        assert time.time() < deadline and a.poll() is None, (tmp_path / "a.out").read_text()
        time.sleep(0.05)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    finish(b)
    folder = only_folder(save)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    study = optuna.load_study(study_name=f"wine_mlp-{folder.name}", storage=storage)
    state = optuna.trial.TrialState
    assert not study.get_trials(states=(state.RUNNING, state.WAITING))  # none stuck
    assert len(study.get_trials(states=(state.COMPLETE,))) == 4
    retried = [t for t in study.trials if "failed_trial" in t.system_attrs]
    assert len(retried) == 1 and retried[0].state == state.COMPLETE
    original = retried[0].system_attrs["failed_trial"]
    assert study.trials[original].state == state.FAIL
    assert f"trial {original} started (retry of trial {original})" in \
        (tmp_path / "b.out").read_text()
    rows = read_csv(folder / "summary.csv")
    assert sorted(int(r["trial"]) for r in rows) == sorted(
        t.system_attrs.get("failed_trial", t.number) for t in study.trials
        if t.state == state.COMPLETE)
    assert {r["status"] for r in rows} == {"finished"}


def test_a_trial_whose_heartbeat_stops_is_failed_and_requeued(tmp_path):
    """The heartbeat alone (no dead process on this host to notice): after grace_period
    seconds without a beat the trial is failed and a copy waits for the next worker."""
    from sweep.definition import Sweep
    from sweep.queue import TrialQueue

    sweep = Sweep(name="hb", method="grid", params=[], metric="min val_loss",
                  base={"trainer": {"save_dir": str(tmp_path)}}, source="x", sweep_id="abc",
                  heartbeat_interval=1, grace_period=2)
    sweep.folder.mkdir(parents=True)
    queue = TrialQueue(sweep, optuna)
    assert queue.enqueue([0, 1]) == 2 and queue.enqueue([0, 1]) == 0  # enqueued once
    trial = queue.take()
    storage = queue.study._storage
    storage.set_trial_system_attr(trial._trial_id, "sweep:owner", "elsewhere 1")
    with queue.heartbeat(trial):
        time.sleep(3)  # beating: not stale
    with queue.locked():
        queue.fail_stale()
    assert queue.frozen(trial).state == optuna.trial.TrialState.RUNNING
    time.sleep(3)  # no beat for longer than the grace period
    with queue.locked():
        queue.fail_stale()
    state = optuna.trial.TrialState
    assert queue.frozen(trial).state == state.FAIL
    waiting = queue.trials(state.WAITING)
    assert sorted(t.user_attrs["point"] for t in waiting) == [0, 1]
    copy = [t for t in waiting if t.system_attrs.get("failed_trial") == trial.number]
    assert len(copy) == 1 and queue.folder_number(queue.take()) in (0, 1)


# ---------------------------------------------------------------- PostgreSQL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free local port (Debian's postgresql package),
    run as an unprivileged user when the tests run as root; its URL."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or not os.path.isfile(os.path.join(bins[-1], "pg_ctl")):
        pytest.skip("PostgreSQL binaries not found in /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql); this storage is not tested here")
    pytest.importorskip("psycopg2", reason="needs the postgres extra: pip install psycopg2-binary")
    bin_dir = Path(bins[-1])
    data = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    os.chmod(data, 0o777)
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if shutil.which("runuser") and
                     subprocess.run(["id", u], capture_output=True).returncode == 0), None)
        if user is None:
            pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
        shutil.chown(data, user)
        prefix = ["runuser", "-u", user, "--"]
    port = free_port()
    pgdata, log = data / "db", data / "server.log"
    try:
        init = subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(pgdata), "-U",
                               "postgres", "--auth=trust", "-E", "UTF8"],
                              capture_output=True, text=True, timeout=120, cwd=data)
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL could not be initialised: {init.stderr.strip()[-300:]}")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{data}'"
        up = subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l",
                             str(log), "-o", opts, "-w", "-t", "60", "start"],
                            capture_output=True, text=True, timeout=120, cwd=data)
        if up.returncode != 0:
            text = log.read_text() if log.is_file() else up.stderr
            pytest.skip(f"PostgreSQL could not start: {text.strip()[-300:]}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (pgdata / "postmaster.pid").is_file():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=60, cwd=data)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_split_a_grid_on_postgresql(tmp_path, postgres_url):
    save = tmp_path / "saved"
    cfg = wine_config(tmp_path / "wine.yaml", save, epochs=2,
                      sweep={"parameters": GRID, "storage": postgres_url})
    a, b = start(cfg, tmp_path / "a.out"), start(cfg, tmp_path / "b.out")
    finish(a, b)
    assert f"queue {postgres_url}" in (tmp_path / "a.out").read_text()
    folder = check_grid_done(save, [tmp_path / "a.out", tmp_path / "b.out"])
    starts = launches(folder)
    assert sorted(starts) == list(range(8)) and all(len(c) == 1 for c in starts.values())
    assert not (folder / "study.journal").exists()
    study = optuna.load_study(study_name=f"wine_mlp-{folder.name}", storage=postgres_url)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["point"] for t in complete) == list(range(8))
