"""Issue 24: a checkpoint is data. What a crafted checkpoint, run folder, sweep folder or
export may not do (run code, write through links, leave a stale best model, pick hosts to
contact), tried through the real entry points (docs/checkpoints.md, "Trust")."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, load, only_run, train, tree_snapshot

# --- trackers (item 7)

WINE = REPO / "config/wine_mlp.yaml"
NO_ENV_STORE = {"MLFLOW_TRACKING_URI": "", "TRAIN_MLFLOW_PARENT_RUN_ID": ""}  # default store
MLFLOW_TINY = ["arch.args.hidden=8", "trainer.verbosity=0", "trainer.loggers=[mlflow]"]
BOUND_S = 30  # the contract: an unreachable tracker fails within 30 s


class Listener:
    """A TCP socket on 127.0.0.1 this test owns, counting the connections it gets. It never
    answers: it holds each connection open (a hung server), or closes it at once (`hang_up`)."""

    def __init__(self, hang_up: bool = False):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.hang_up, self.held, self.connections = hang_up, [], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            if self.hang_up:
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def listener():
    pytest.importorskip("mlflow")
    made: list[Listener] = []

    def make(hang_up: bool = False) -> Listener:
        made.append(Listener(hang_up))
        return made[-1]

    yield make
    for one in made:
        one.close()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def timed_train(*args: str, save_dir: Path):
    start = time.monotonic()
    r = train(*args, save_dir=save_dir, env=NO_ENV_STORE)
    return r, time.monotonic() - start


def assert_one_tracker_line(r, seconds: float) -> None:
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: trainer.mlflow.tracking_uri: cannot "
                                                   "reach the MLflow tracking server"), r.stderr
    assert seconds < BOUND_S, seconds


@pytest.mark.parametrize("server", ["refused", "hung"])
def test_an_unreachable_tracking_server_fails_in_seconds_before_a_run_folder(
        server, listener, save_dir):
    hung = listener() if server == "hung" else None
    uri = hung.uri if hung else f"http://127.0.0.1:{closed_port()}"
    r, seconds = timed_train("-c", WINE, *MLFLOW_TINY, f"+trainer.mlflow.tracking_uri={uri}",
                             save_dir=save_dir)
    assert_one_tracker_line(r, seconds)
    assert uri in r.stderr
    assert not save_dir.exists()  # no run folder, no `latest`, no mlruns
    if hung:
        assert hung.connections >= 1  # it was asked, and the wait for its answer is bounded


def test_a_sweep_with_an_unreachable_tracking_server_fails_before_its_folder(save_dir):
    pytest.importorskip("mlflow")
    uri = f"http://127.0.0.1:{closed_port()}"
    r, seconds = timed_train("-c", WINE, "-m", "arch.args.hidden=4,8", *MLFLOW_TINY[1:],
                             f"+trainer.mlflow.tracking_uri={uri}", save_dir=save_dir)
    assert_one_tracker_line(r, seconds)
    assert not save_dir.exists()  # no sweep folder, no parent run


def test_a_tracking_uri_stored_in_a_checkpoint_is_contacted_only_when_the_command_names_it(
        listener, save_dir):
    r = train("-c", WINE, *MLFLOW_TINY, "trainer.epochs=1", save_dir=save_dir, env=NO_ENV_STORE)
    assert r.returncode == 0, r.stderr
    run_dir = only_run(save_dir, "wine_mlp")
    ckpt_path = run_dir / "checkpoint-epoch1.pth"
    ckpt = load(ckpt_path)
    run_id = ckpt["mlflow_run_id"]
    server = listener(hang_up=True)  # the host a crafted checkpoint names
    ckpt["config"]["trainer"]["mlflow"]["tracking_uri"] = server.uri
    torch.save(ckpt, ckpt_path)
    (run_dir / "config.json").write_text(json.dumps(ckpt["config"], indent=2))  # consistent
    before = tree_snapshot(save_dir)

    # named on this command line: used (probed, and it does not answer); nothing written
    r, seconds = timed_train("-r", ckpt_path, "trainer.epochs=2",
                             f"trainer.mlflow.tracking_uri={server.uri}", save_dir=save_dir)
    assert_one_tracker_line(r, seconds)
    assert server.connections >= 1
    assert tree_snapshot(save_dir) == before

    # not named: never contacted; the resume goes on in the default store, same MLflow run
    contacted = server.connections
    r = train("-r", ckpt_path, "trainer.epochs=2", save_dir=save_dir, env=NO_ENV_STORE)
    assert r.returncode == 0, r.stderr
    assert server.connections == contacted
    warning = next(line for line in (r.stdout + r.stderr).splitlines()
                   if line.startswith("warning: trainer.mlflow.tracking_uri:"))
    assert repr(server.uri) in warning and "not contacted on -r" in warning
    assert load(run_dir / "checkpoint-epoch2.pth")["mlflow_run_id"] == run_id
    from logger import mlflow_logger

    client = mlflow_logger.client((save_dir.resolve() / "mlruns").as_uri())
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]
    assert json.loads((run_dir / "config.json").read_text())["trainer"]["mlflow"][
        "tracking_uri"] is None  # the next resume has nothing to drop
