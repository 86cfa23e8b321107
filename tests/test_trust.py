"""Issue 24: a checkpoint is data. Nothing the user did not write on the command line (a
checkpoint, a run folder's config.json, a sweep record, an export) picks code to run, and
nothing an export writes lands beside its FILE. Every case runs the real entry points
(train.py, test.py, api.py) as subprocesses; code execution is caught by marker files that
must not appear. Also what such input may not do otherwise: write through planted links,
leave a stale best model, pick hosts to contact (docs/checkpoints.md, "Trust")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    ENV,
    REPO,
    load,
    only_run,
    read_csv,
    run_mains,
    run_script,
    train,
    tree_snapshot,
)

from utils.best_model import best_epoch
from utils.checkpoint_arg import newest_checkpoint

DIGITS = REPO / "config/digits_mlp.json"
HINT = "(pass --trust-config to allow it)"
API_HINT = "(pass trust_config=True to allow it)"


def error_lines(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("error:")]


def craft(src: Path, dest: Path, change) -> Path:
    """A copy of the checkpoint `src` at `dest` with change(config) applied to its config."""
    ckpt = load(src)
    change(ckpt["config"])
    torch.save(ckpt, dest)
    return dest


def api_calls(path: Path, *calls: str, env: dict | None = None) -> list[str]:
    """Each api call (Python source using P, the path) run in one `python -c` process: its
    'ok' or 'ConfigError: <message>' line."""
    lines = [f"P = {str(path)!r}", "import torch, api"]
    for call in calls:
        lines += ["try:", f"    {call}", "    print('ok')",
                  "except api.ConfigError as e:", "    print('ConfigError:', e)"]
    r = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**ENV, **(env or {})})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def run_dir(digits_one_epoch) -> Path:
    """A one-epoch digits run (tests/conftest.py, shared, read only): its epoch checkpoint is
    what the crafted files start from."""
    return only_run(digits_one_epoch, "digits_mlp")


@pytest.fixture(scope="module")
def ckpt(run_dir: Path) -> Path:
    return run_dir / "checkpoint-epoch1.pth"


# --- stored configs are data (item 1) and exports (item 6)

def touch(marker: Path) -> dict:
    return {"command": f"touch {marker}"}


def popen(marker: Path) -> dict:
    return {"args": ["touch", str(marker)]}


# (key the error names, its type, how the stored config is changed to name it)
EVIL = [
    ("arch.type", "os.system",
     lambda c, m: c.update(arch={"type": "os.system", "args": touch(m)})),
    ("loss.type", "subprocess.Popen",
     lambda c, m: c.update(loss={"type": "subprocess.Popen", "args": popen(m)})),
    ("metrics[0]", "subprocess.Popen",
     lambda c, m: c.update(metrics=[{"type": "subprocess.Popen", "args": popen(m)}])),
    ("data_loader.type", "os.system",
     lambda c, m: c.update(data_loader={"type": "os.system", "args": touch(m)})),
    ("optimizer.type", "os.system",
     lambda c, m: c.update(optimizer={"type": "os.system", "args": touch(m)})),
    ("lr_scheduler.args.schedulers[0].type", "subprocess.Popen",
     lambda c, m: c.update(lr_scheduler={"type": "SequentialLR", "args": {
         "schedulers": [{"type": "subprocess.Popen", "args": popen(m)},
                        {"type": "StepLR", "args": {"step_size": 1}}], "milestones": [1]}})),
]


def refusal(where: Path | str, key: str, typ: str, hint: str = HINT) -> tuple[str, str]:
    """The start and end of the one line that refuses `typ` at `key`."""
    return f"{where}: {key}: '{typ}' is not a", hint


@pytest.fixture(scope="module")
def evil_runs(ckpt, tmp_path_factory) -> dict[str, tuple]:
    """{key: (its folder, the crafted checkpoint, test.py's result)} for each EVIL entry, all
    through test.py's main() in one process (conftest.run_mains), each in its own folder."""
    root, cases = tmp_path_factory.mktemp("evil"), []
    for key, _, change in EVIL:
        folder = root / key.replace("[", "_").replace("]", "_")
        folder.mkdir()
        evil = craft(ckpt, folder / "evil.pth", lambda c, m=folder / "MARKER", f=change: f(c, m))
        cases.append((key, folder, evil))
    results = run_mains([("test.py", ["-r", evil]) for _, _, evil in cases])
    return {key: (folder, evil, r) for (key, folder, evil), r in zip(cases, results)}


@pytest.mark.slow
@pytest.mark.parametrize("key, typ, change", EVIL, ids=[e[0] for e in EVIL])
def test_test_py_refuses_a_stored_callable_of_any_key(evil_runs, key, typ, change):
    tmp_path, evil, r = evil_runs[key]
    marker = tmp_path / "MARKER"
    assert r.returncode == 2, r.stderr
    start, end = refusal(evil, key, typ)
    assert error_lines(r) == [r.stderr.strip()] and r.stderr.strip().startswith(f"error: {start}")
    assert r.stderr.strip().endswith(end)
    assert not marker.exists()
    assert not (tmp_path / "test_metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["train -r", "test --predict", "test --export",
                                   "train -r --print-config"])
def test_every_entry_point_refuses_os_system_in_arch(ckpt, tmp_path, entry):
    marker = tmp_path / "MARKER"
    evil = craft(ckpt, tmp_path / "evil.pth", lambda c: EVIL[0][2](c, marker))
    save, export = tmp_path / "saved", tmp_path / "model.pt2"
    args = {"train -r": ["train.py", "-r", evil, "trainer.epochs=2",
                         f"trainer.save_dir={save}"],
            "test --predict": ["test.py", "-r", evil, "--predict"],
            "test --export": ["test.py", "-r", evil, "--export", export],
            "train -r --print-config": ["train.py", "-r", evil, "--print-config"]}[entry]
    r = run_script(*args)
    assert r.returncode == 2, r.stderr
    start, end = refusal(evil, "arch.type", "os.system")
    assert error_lines(r) == [f"error: {start} subclass of torch.nn.Module; a config read from "
                              f"a checkpoint is data and picks only classes of the expected "
                              f"kind {end}"]
    assert not marker.exists() and not save.exists() and not export.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pth"]  # no predictions.csv


def test_a_standard_library_name_is_refused_without_importing_it(ckpt, tmp_path):
    """`this` prints the Zen of Python when imported: it must not be."""
    evil = craft(ckpt, tmp_path / "evil.pth",
                 lambda c: c.update(arch={"type": "this.s", "args": {}}))
    r = run_script("test.py", "-r", evil)
    assert r.returncode == 2
    assert "Beautiful is better than ugly" not in r.stdout + r.stderr
    assert error_lines(r)[0].startswith(f"error: {refusal(evil, 'arch.type', 'this.s')[0]}")


def test_api_load_evaluate_predict_refuse_it(ckpt, tmp_path):
    marker = tmp_path / "MARKER"
    evil = craft(ckpt, tmp_path / "evil.pth", lambda c: EVIL[1][2](c, marker))  # loss Popen
    out = api_calls(evil, "api.load(P)", "api.evaluate(P)",
                    "api.predict(P, torch.zeros(2, 64))")
    start, end = refusal(evil, "loss.type", "subprocess.Popen", API_HINT)
    assert len(out) == 3
    assert all(line.startswith(f"ConfigError: {start}") and line.endswith(end) for line in out)
    assert not marker.exists()


def test_an_edited_config_json_read_with_allow_changed_is_data(run_dir, tmp_path):
    marker = tmp_path / "MARKER"
    save = tmp_path / "saved"
    run = save / "models" / "digits_mlp" / run_dir.name
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    EVIL[0][2](config, marker)
    (run / "config.json").write_text(json.dumps(config))
    r = train("-r", run, "--allow-changed", "trainer.epochs=2", save_dir=save)
    assert r.returncode == 2, r.stderr
    assert error_lines(r) == [
        f"error: {run / 'checkpoint-epoch1.pth'}: arch.type: 'os.system' is not a subclass of "
        f"torch.nn.Module; a config read from a run folder's config.json is data and picks only "
        f"classes of the expected kind {HINT}"]
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in run_dir.iterdir())


def test_a_sweep_folders_trial_checkpoint_is_data(ckpt, tmp_path):
    """test.py -r on a folds/repeats sweep folder follows its trial records to their
    checkpoints: a crafted one is refused like any other."""
    marker = tmp_path / "MARKER"
    folder = tmp_path / "sweeps" / "digits_mlp" / "0101_000000_abcdef"
    trial_run = folder / "models" / "digits_mlp" / "run0"
    trial_run.mkdir(parents=True)
    evil = craft(ckpt, trial_run / "model_best.pth",
                 lambda c: EVIL[2][2](c, marker))  # a metric that is subprocess.Popen
    (folder / "trials").mkdir()
    (folder / "sweep.json").write_text(json.dumps({"parameters": {"seed": [0, 1]}}))
    (folder / "trials" / "trial-000.json").write_text(json.dumps(
        {"trial": 0, "status": "finished", "run_dir": str(trial_run), "params": {"seed": 0}}))
    r = run_script("test.py", "-r", folder)
    assert r.returncode == 2, r.stderr
    start, end = refusal(evil, "metrics[0]", "subprocess.Popen")
    assert len(error_lines(r)) == 1 and error_lines(r)[0].startswith(f"error: {start}")
    assert error_lines(r)[0].endswith(end)
    assert not marker.exists() and not (folder / "test_metrics.json").exists()


def rewrite_metadata_config(path: Path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    config = json.loads(meta["config"])
    change(config)
    save_file(state, path, metadata={**meta, "config": json.dumps(config)})


@pytest.mark.slow
def test_a_safetensors_export_keeps_its_config_inside_and_loads_it_as_data(ckpt, tmp_path):
    pytest.importorskip("safetensors")
    target = tmp_path / "digits.safetensors"
    mine = tmp_path / "digits.json"
    mine.write_text('{"the user\'s": "file"}\n')
    r = run_script("test.py", "-r", ckpt, "--export", target)
    assert r.returncode == 0, r.stderr
    assert mine.read_text() == '{"the user\'s": "file"}\n'  # no sidecar replaced it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.json", "digits.safetensors"]
    assert api_calls(target, "api.load(P)") == ["ok"]

    marker = tmp_path / "MARKER"
    rewrite_metadata_config(target, lambda c: EVIL[0][2](c, marker))
    out = api_calls(target, "api.load(P)", "api.predict(P, torch.zeros(1, 64))")
    start, end = refusal(target, "arch.type", "os.system", API_HINT)
    assert len(out) == 2 and all(line.startswith(f"ConfigError: {start}") for line in out)
    assert all("a config read from a .safetensors export's metadata is data" in line
               and line.endswith(end) for line in out)
    assert not marker.exists()


@pytest.mark.slow
def test_export_replaces_an_existing_file_only_with_force(ckpt, tmp_path):
    target, victim = tmp_path / "model.pt2", tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    target.symlink_to(victim)  # a link planted at FILE: replaced, never followed
    r = run_script("test.py", "-r", ckpt, "--export", target)
    assert r.returncode == 2
    assert error_lines(r) == [f"error: --export {target}: {target} exists; pass --force to "
                              f"replace it"]
    r = run_script("test.py", "-r", ckpt, "--export", target, "--force")
    assert r.returncode == 0, r.stderr
    assert not target.is_symlink() and target.stat().st_size > 1000
    assert victim.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2", "victim.txt"]


# --trust-config, and what is allowed without it

PACKAGE = {
    "__init__.py": "",
    "losses.py": "import torch.nn.functional as F\n\n\n"
                 "def smooth_ce(output, target, smoothing: float = 0.1):\n"
                 "    return F.cross_entropy(output, target, label_smoothing=smoothing)\n",
    "nets.py": "import torch.nn as nn\n\n\n"
               "class Net(nn.Module):\n"
               "    def __init__(self, in_features: int, out_features: int):\n"
               "        super().__init__()\n"
               "        self.layer = nn.Linear(in_features, out_features)\n\n"
               "    def forward(self, x):\n"
               "        return self.layer(x)\n",
}


@pytest.fixture(scope="module")
def pkg_env(tmp_path_factory) -> dict:
    """A tiny package of the user's on PYTHONPATH: a loss function and a model class."""
    root = tmp_path_factory.mktemp("pkg")
    (root / "trustpkg").mkdir()
    for name, text in PACKAGE.items():
        (root / "trustpkg" / name).write_text(text)
    return {"PYTHONPATH": str(root)}


def train_on(tmp_path_factory, env: dict, *overrides: str) -> Path:
    save = tmp_path_factory.mktemp("pkgrun") / "saved"
    r = train("-c", DIGITS, "trainer.epochs=1", *overrides, save_dir=save, env=env)
    assert r.returncode == 0, r.stderr
    return only_run(save, "digits_mlp") / "checkpoint-epoch1.pth"


@pytest.fixture(scope="module")
def function_loss_ckpt(tmp_path_factory, pkg_env) -> Path:
    """A run whose -c config (trusted) names a loss function by import path."""
    return train_on(tmp_path_factory, pkg_env, "loss={type: trustpkg.losses.smooth_ce}")


@pytest.mark.slow
def test_trust_config_lets_a_users_function_through(function_loss_ckpt, pkg_env, tmp_path):
    start, end = refusal(function_loss_ckpt, "loss.type", "trustpkg.losses.smooth_ce")
    r = run_script("test.py", "-r", function_loss_ckpt, "--output", tmp_path / "m.json",
                   env=pkg_env)
    assert r.returncode == 2
    assert error_lines(r) == [f"error: {start} subclass of torch.nn.Module; a config read from "
                              f"a checkpoint is data and picks only classes of the expected "
                              f"kind {end}"]
    r = run_script("test.py", "-r", function_loss_ckpt, "--trust-config", "--output",
                   tmp_path / "m.json", env=pkg_env)
    assert r.returncode == 0, r.stderr
    assert set(json.loads((tmp_path / "m.json").read_text())) >= {"loss", "accuracy"}
    out = api_calls(function_loss_ckpt, "api.evaluate(P)", "api.evaluate(P, trust_config=True)",
                    env=pkg_env)
    assert out[0].startswith("ConfigError:") and out[0].endswith(API_HINT) and out[1] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("extra, code", [([], 2), (["--trust-config"], 0),
                                         (["loss={type: trustpkg.losses.smooth_ce}"], 0)],
                         ids=["stored", "trust-config", "set-on-the-command-line"])
def test_train_resume_trusts_the_flag_and_its_own_overrides(function_loss_ckpt, pkg_env,
                                                            tmp_path, extra, code):
    copy = shutil.copy(function_loss_ckpt, tmp_path / "copy.pth")  # the shared run stays as is
    r = train("-r", copy, "trainer.epochs=2", *extra, save_dir=tmp_path / "saved", env=pkg_env)
    assert r.returncode == code, r.stderr
    if code == 2:
        assert error_lines(r)[0].endswith(HINT) and "loss.type" in error_lines(r)[0]
        assert not (tmp_path / "saved").exists()


@pytest.mark.slow
def test_classes_of_the_right_kind_need_no_flag(tmp_path_factory, pkg_env, tmp_path):
    """A package's nn.Module, torch.optim.AdamW and a dotted torch.nn loss class: a stored
    config may name them."""
    ckpt = train_on(tmp_path_factory, pkg_env, "~arch", "+arch={type: trustpkg.nets.Net, args: "
                    "{in_features: 64, out_features: 10}}", "optimizer.type=torch.optim.AdamW",
                    "loss={type: torch.nn.CrossEntropyLoss}")
    r = run_script("test.py", "-r", ckpt, "--output", tmp_path / "m.json", env=pkg_env)
    assert r.returncode == 0, r.stderr
    assert api_calls(ckpt, "api.load(P)", "print(api.predict(P, [0.0] * 64).shape)",
                     env=pkg_env) == ["ok", "torch.Size([1, 10])", "ok"]
    r = train("-r", ckpt, "trainer.epochs=2", save_dir=tmp_path / "saved", env=pkg_env)
    assert r.returncode == 0, r.stderr


def test_a_package_that_is_not_installed_is_an_import_error(ckpt, tmp_path):
    evil = craft(ckpt, tmp_path / "evil.pth",
                 lambda c: c.update(arch={"type": "nopkg_x.nets.Net", "args": {}}))
    r = run_script("test.py", "-r", evil)
    assert r.returncode == 2
    assert error_lines(r) == [f"error: {evil}: the stored config is invalid here: arch.type: "
                              f"cannot import 'nopkg_x.nets.Net': no "
                              f"module named 'nopkg_x' (is it installed, or its folder on "
                              f"PYTHONPATH?)"]
    assert os.listdir(tmp_path) == ["evil.pth"]


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_sweep_with_an_unreachable_tracking_server_fails_before_its_folder(save_dir):
    pytest.importorskip("mlflow")
    uri = f"http://127.0.0.1:{closed_port()}"
    r, seconds = timed_train("-c", WINE, "-m", "arch.args.hidden=4,8", *MLFLOW_TINY[1:],
                             f"+trainer.mlflow.tracking_uri={uri}", save_dir=save_dir)
    assert_one_tracker_line(r, seconds)
    assert not save_dir.exists()  # no sweep folder, no parent run


@pytest.mark.slow
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


# --- sweep journals, plans, config limits (items 4, 5, 8)


def one_error(result, code: int, *named: str) -> str:
    """The run exited `code` with exactly one `error:` line naming each of `named`, and no
    traceback; that line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert all(n in lines[0] for n in named), (named, lines[0])
    return lines[0]


def tiny_wine(path: Path) -> Path:
    """config/wine_mlp.yaml cut to one quick epoch."""
    config = yaml.safe_load(WINE.read_text())
    config["arch"]["args"]["hidden"] = 16
    config["trainer"].update(epochs=1, verbosity=0)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_a_torn_journal_line_is_dropped_with_a_warning_and_the_sweep_goes_on(tmp_path):
    """A worker killed in the middle of an append leaves half a line at the end of
    study.journal: the rerun drops it (saying so), never appends onto it, and finishes."""
    optuna = pytest.importorskip("optuna", reason="the journal is Optuna's (the sweep extra)")
    save = tmp_path / "saved"
    command = ["-c", tiny_wine(tmp_path / "wine.yaml"), "-m", "optimizer.args.lr=0.003,0.01"]
    first = train(*command, save_dir=save)
    assert first.returncode == 0, first.stderr
    (journal,) = save.glob("sweeps/wine_mlp/*/study.journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    torn = lines[-1][:len(lines[-1]) // 2]  # the first half of a line a worker was writing
    journal.write_bytes(b"".join(lines) + torn)

    again = train(*command, save_dir=save)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    (warning,) = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert str(journal) in warning and f"dropped {len(torn)} bytes" in warning
    assert [json.loads(line) for line in journal.read_bytes().splitlines()]  # all whole
    rows = read_csv(journal.parent / "summary.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"finished"}
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal)))
    (study,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2

    third = train(*command, save_dir=save)  # a whole journal: nothing to drop, no warning
    assert third.returncode == 0 and "warning:" not in third.stderr, third.stderr


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_more_folds_than_the_smallest_class_stops_before_anything_runs(tmp_path, extra):
    """wine's smallest class has 37 samples outside the test split: --folds 200 is one line
    naming the limit, with or without --dry-run; no sweep folder, no trial process."""
    save = tmp_path / "saved"
    r = train("-c", WINE, "--folds", "200", *extra, save_dir=save)
    line = one_error(r, 2, "data_loader.args.folds", "200 folds", "use at most 37 folds")
    assert "class" in line
    assert not save.exists() and "trial 0" not in r.stdout


def test_as_many_folds_as_the_smallest_class_is_a_valid_plan(tmp_path):
    r = train("-c", WINE, "--folds", "37", "--dry-run", save_dir=tmp_path / "saved")
    assert r.returncode == 0, r.stderr
    assert "trial 36: data_loader.args.fold=36" in r.stdout
    assert not (tmp_path / "saved").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args, named", [
    (["--repeat", "0"], ["--repeat", "a positive integer", "got 0"]),
    (["--folds", "1"], ["--folds", "an integer >= 2", "got 1"]),
], ids=["repeat-0", "folds-1"])
def test_plans_that_cannot_run_are_one_line(tmp_path, args, named):
    save = tmp_path / "saved"
    one_error(train("-c", WINE, *args, save_dir=save), 2, *named)
    assert not save.exists()


def deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


def config_with(tmp_path: Path, suffix: str, key: str, raw_value: str) -> Path:
    """config/wine_mlp.yaml as JSON or YAML text with `key` (top level) set to the literal
    `raw_value`, written without a parser (which would refuse to build it)."""
    config = yaml.safe_load(WINE.read_text())
    config[key] = "PLACEHOLDER"
    text = json.dumps(config) if suffix == ".json" else yaml.safe_dump(config, width=1000)
    placeholder = '"PLACEHOLDER"' if suffix == ".json" else "PLACEHOLDER"
    path = tmp_path / f"c{suffix}"
    path.write_text(text.replace(placeholder, raw_value))
    return path


BIG = "9" * 5000


FILE_CASES = [  # (id, suffix, key, value, texts the error names)
    ("int-json", ".json", "seed", BIG, ["c.json", "seed", "5,000 digits", "64 bits"]),
    ("int-yaml", ".yaml", "seed", BIG, ["c.yaml", "seed", "5,000 digits", "64 bits"]),
    ("deep-json", ".json", "extra", deep(200_000), ["c.json", "deeper than 100 levels"]),
    ("deep-yaml", ".yaml", "extra", deep(200_000), ["c.yaml", "deeper than 100 levels"]),
    ("deep-yaml-mappings", ".yaml", "extra",
     deep(200_000, "{a: ", "}").replace("{a: }", "{a: 1}"), ["c.yaml", "deeper than 100 levels"]),
]
OVERRIDE_CASES = [  # (id, overrides, texts the error names)
    ("int", [f"seed={BIG}"], ["override 'seed=999", "seed: an integer of 5,000 digits"]),
    ("deep-lists", [f"+extra={deep(3000)}"], ["override '+extra=[[[", "deeper than 100 levels"]),
    ("deep-mappings", [f"+extra={deep(3000, '{a: ', '}').replace('{a: }', '{a: 1}')}"],
     ["override '+extra={a: {a:", "deeper than 100 levels"]),
    ("deep-101-in-all", [f"+extra={deep(100)}"], ["extra.0.0", "deeper than 100 levels"]),
    ("int64-max-plus-1", ["seed=9223372036854775808"],
     ["seed", "an integer of 19 digits", "64 bits"]),
    ("sweep", ["-m", f"seed=1,{BIG}"], ["override 'seed=1,999", "5,000 digits"]),
]


@pytest.fixture(scope="module")
def limit_runs(tmp_path_factory) -> dict[str, tuple]:
    """{case id: (its save_dir, train.py's result)} for FILE_CASES and OVERRIDE_CASES, all
    through train.py's main() in one process (conftest.run_mains), each in its own folder."""
    root, cases, saves = tmp_path_factory.mktemp("limits"), [], []
    for case_id, suffix, key, value, _ in FILE_CASES:
        (root / case_id).mkdir()
        config = config_with(root / case_id, suffix, key, value)
        saves.append((case_id, root / case_id / "saved"))
        cases.append(("train.py", ["-c", config, "--dry-run", f"trainer.save_dir={saves[-1][1]}"]))
    for case_id, overrides, _ in OVERRIDE_CASES:
        saves.append((case_id, root / case_id / "saved"))
        cases.append(("train.py", ["-c", WINE, *overrides, "--dry-run",
                                   f"trainer.save_dir={saves[-1][1]}"]))
    return {case_id: (save, r) for (case_id, save), r in zip(saves, run_mains(cases))}


@pytest.mark.slow
@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_huge_integers_and_deep_nesting_in_a_file_are_one_line(limit_runs, case):
    save, r = limit_runs[case[0]]
    one_error(r, 2, *case[-1])
    assert not save.exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", OVERRIDE_CASES, ids=[c[0] for c in OVERRIDE_CASES])
def test_huge_integers_and_deep_nesting_in_an_override_are_one_line(limit_runs, case):
    save, r = limit_runs[case[0]]
    one_error(r, 2, *case[-1])
    assert not save.exists()


def test_a_config_at_the_limits_is_accepted(tmp_path):
    """int64's ends and 100 levels (the top-level mapping being the first) are fine."""
    r = train("-c", WINE, f"++extra={deep(99)}", "seed=9223372036854775807", "--print-config",
              "json", save_dir=tmp_path / "saved")
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)
    assert config["seed"] == 2**63 - 1 and json.dumps(config["extra"]) == deep(99)


# --- planted links, model_best after a kill, checkpoint size (items 2, 3, 8)

VICTIM_TEXT = "a file outside the run folder\n"


def digits_run(save: Path, *overrides: str) -> Path:
    """save_dir of a digits run with `overrides`, trained there."""
    r = train("-c", DIGITS, *overrides, save_dir=save)
    assert r.returncode == 0, r.stderr
    return save


@pytest.fixture(scope="module")
def one_epoch(digits_one_epoch) -> Path:
    """save_dir of a one-epoch digits run (tests/conftest.py, shared): the cases copy it."""
    return digits_one_epoch


def copied_run(one_epoch: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(save_dir, run folder, log folder) of a copy of the one-epoch run."""
    save = tmp_path / "saved"
    shutil.copytree(one_epoch, save)
    run = only_run(save, "digits_mlp")
    return save, run, save / "log" / "digits_mlp" / run.name


def plant(place: Path, victims: Path, hard: bool = False) -> Path:
    """A link at `place` (replacing the file there) to a victim file outside the run."""
    victim = victims / place.name
    victim.write_text(VICTIM_TEXT)
    place.unlink(missing_ok=True)
    (os.link if hard else os.symlink)(victim, place)
    return victim


def assert_replaced(places: dict[Path, Path]) -> None:
    """Each victim is unchanged; each planted place now holds a regular file of its own."""
    for place, victim in places.items():
        assert victim.read_text() == VICTIM_TEXT, victim
        assert not place.is_symlink() and place.is_file(), place
        assert place.stat().st_nlink == 1 and place.stat().st_ino != victim.stat().st_ino, place


@pytest.mark.slow
def test_links_planted_in_run_and_log_folders_are_replaced_not_followed(one_epoch, tmp_path):
    save, run, log = copied_run(one_epoch, tmp_path)
    victims = tmp_path / "victims"
    victims.mkdir()
    places = {p: plant(p, victims) for p in (log / "metrics.csv", run / "test_metrics.json",
                                             run / "confusion_matrix.csv",
                                             run / "classification_report.json",
                                             run / "confusion_matrix.png",
                                             run / "predictions.csv")}
    (victims / "hard").mkdir()
    places[log / "info.log"] = plant(log / "info.log", victims / "hard", hard=True)

    r = train("-r", run, "trainer.epochs=2", save_dir=save)
    assert r.returncode == 0, r.stderr
    assert only_run(save, "digits_mlp") == run
    assert run_script("test.py", "-r", run).returncode == 0
    r = run_script("test.py", "-r", run, "--predict")
    assert r.returncode == 0, r.stderr
    assert_replaced(places)
    assert (log / "metrics.csv").read_text().count("\n") == 3  # header and two epochs
    assert "resuming from" in (log / "info.log").read_text()
    assert (run / "predictions.csv").read_text().startswith("index,target,prediction")


@pytest.mark.slow
def test_tensorboard_event_files_carry_a_random_suffix(tmp_path):
    """TensorBoard creates its event file itself: a random suffix in its name means no link
    planted in the log folder beforehand can be named after it."""
    save = digits_run(tmp_path / "saved", "trainer.epochs=1", "trainer.tensorboard=true")
    log = next((save / "log" / "digits_mlp").iterdir())
    events = list(log.glob("events.out.tfevents.*"))
    assert len(events) == 1 and len(events[0].name.rsplit(".", 1)[-1]) == 12, events


def test_a_lock_file_planted_as_a_link_is_refused(one_epoch, tmp_path):
    save, run, _ = copied_run(one_epoch, tmp_path)
    victims = tmp_path / "victims"
    victims.mkdir()
    victim = plant(run / ".lock", victims)
    r = train("-r", run, "trainer.epochs=2", save_dir=save)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(run / ".lock") in lines[0] and "link" in lines[0], r.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert not (run / "checkpoint-epoch2.pth").exists()


def history_best(path: Path) -> int:
    named = best_epoch(load(path))
    assert named is not None, path
    return named[0]


def assert_best_is_true(run: Path) -> int:
    """model_best.pth holds the epoch the run's newest checkpoint's history names best."""
    newest = newest_checkpoint(run)
    best = history_best(newest)
    assert load(run / "model_best.pth")["epoch"] == best, (newest, best)
    return best


@pytest.mark.slow
def test_sigkill_right_after_a_checkpoint_leaves_model_best_true(tmp_path):
    """kill -9 as soon as checkpoint-epoch2.pth appears (polled, bounded): model_best.pth is
    the best epoch the newest checkpoint names; so after a resume, and for test.py."""
    save = tmp_path / "saved"
    cmd = [sys.executable, str(REPO / "train.py"), "-c", str(DIGITS), "trainer.epochs=30",
           "trainer.save_period=1", "trainer.early_stop=0", f"trainer.save_dir={save}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(save.glob("models/digits_mlp/*/checkpoint-epoch2.pth")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint-epoch2.pth within 240 s"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    run = only_run(save, "digits_mlp")
    assert_best_is_true(run)

    epochs = load(newest_checkpoint(run))["epoch"] + 1
    r = run_script("train.py", "-r", run, f"trainer.epochs={epochs}")
    assert r.returncode == 0, r.stderr
    best = assert_best_is_true(run)
    r = run_script("test.py", "-r", save / "models" / "digits_mlp" / "latest")
    assert r.returncode == 0, r.stderr
    assert f"checkpoint: {run / 'model_best.pth'}" in r.stdout
    assert load(run / "model_best.pth")["epoch"] == best


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory) -> Path:
    """save_dir of a 3-epoch digits run monitoring the training loss upwards (so epoch 1 is
    best), a checkpoint every epoch."""
    return digits_run(tmp_path_factory.mktemp("three") / "saved", "trainer.epochs=3",
                      "trainer.save_period=1", "trainer.monitor=max loss")


@pytest.mark.slow
def test_a_kill_between_model_best_and_the_epoch_checkpoint_resumes_from_model_best(
        tmp_path):
    """model_best.pth is written first: killed before checkpoint-epoch3.pth was, the run goes
    on from model_best.pth (epoch 3), in its own folder."""
    save = digits_run(tmp_path / "saved", "trainer.epochs=3", "trainer.save_period=1",
                      "trainer.monitor=min loss")
    run = only_run(save, "digits_mlp")
    assert history_best(run / "checkpoint-epoch3.pth") == 3  # the training loss falls
    (run / "checkpoint-epoch3.pth").unlink()  # as if killed right after model_best.pth
    r = run_script("train.py", "-r", run, "trainer.epochs=4")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {run / 'model_best.pth'} (epoch 3)" in r.stdout
    assert only_run(save, "digits_mlp") == run
    assert load(run / "checkpoint-epoch4.pth")["epoch"] == 4
    assert_best_is_true(run)


@pytest.mark.slow
def test_a_stale_model_best_is_repaired_on_resume_and_by_test(three_epochs, tmp_path):
    """A model_best.pth older than the epoch the history names best (a kill between the two
    writes of an older version) is copied again from that epoch's checkpoint by train.py -r
    of the finished run ("nothing to train") and by test.py; when that checkpoint is gone,
    both say so."""
    save = tmp_path / "saved"
    shutil.copytree(three_epochs, save)
    run = only_run(save, "digits_mlp")
    assert history_best(run / "checkpoint-epoch3.pth") == 1  # max loss: the first epoch
    stale = (run / "checkpoint-epoch2.pth").read_bytes()

    (run / "model_best.pth").write_bytes(stale)
    r = train("-r", run, save_dir=save)
    assert r.returncode == 0, r.stderr
    assert "nothing to train" in r.stdout and "repaired" in r.stdout + r.stderr
    assert (run / "model_best.pth").read_bytes() == (run / "checkpoint-epoch1.pth").read_bytes()

    (run / "model_best.pth").write_bytes(stale)
    r = run_script("test.py", "-r", save / "models" / "digits_mlp" / "latest")
    assert r.returncode == 0, r.stderr
    assert "repaired" in r.stderr and load(run / "model_best.pth")["epoch"] == 1

    (run / "model_best.pth").write_bytes(stale)
    (run / "checkpoint-epoch1.pth").unlink()  # as trainer.keep_last would
    r = run_script("test.py", "-r", run)
    assert r.returncode == 0, r.stderr
    assert "checkpoint-epoch1.pth is gone" in r.stderr and "keep_last" in r.stderr


def test_a_best_model_planted_as_a_link_to_dev_zero_is_replaced_by_the_best_epoch(
        one_epoch, tmp_path):
    save, run, _ = copied_run(one_epoch, tmp_path)
    (run / "model_best.pth").unlink()
    (run / "model_best.pth").symlink_to("/dev/zero")
    r = run_script("test.py", "-r", run)
    assert r.returncode == 0, r.stderr
    assert "repaired" in r.stderr
    assert not (run / "model_best.pth").is_symlink()
    assert (run / "model_best.pth").read_bytes() == (run / "checkpoint-epoch1.pth").read_bytes()


def deflated(source: Path, dest: Path) -> None:
    """`source` (a zip written by torch.save) with every entry recompressed with deflate."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), compresslevel=9)


def peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """test.py run from a small wrapper that reports the child's peak resident memory."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "file=sys.stderr); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, str(REPO / "test.py"),
                        *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    return r, int(r.stderr.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_a_deflate_recompressed_checkpoint_is_refused_before_loading(one_epoch, tmp_path):
    """A checkpoint holding 64 MB of zeros, deflated to a few hundred KB: refused on its
    central directory (exit 2, one line naming it), with no more memory than a plain test."""
    ckpt = load(next(one_epoch.glob("models/digits_mlp/*/checkpoint-epoch1.pth")))
    ckpt["model_state_dict"]["padding"] = torch.zeros(16 * 2**20)
    torch.save(ckpt, tmp_path / "big.pth")
    deflated(tmp_path / "big.pth", tmp_path / "bomb.pth")
    (tmp_path / "big.pth").unlink()
    size = (tmp_path / "bomb.pth").stat().st_size
    assert size < 2**20
    r, bomb_mb = peak_rss_mb("-r", str(tmp_path / "bomb.pth"))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(tmp_path / "bomb.pth") in lines[0], r.stderr
    assert "uncompressed" in lines[0] and "10x" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "test_metrics.json").exists()
    plain = next(one_epoch.glob("models/digits_mlp/*/checkpoint-epoch1.pth"))
    shutil.copy(plain, tmp_path / "plain.pth")
    r, plain_mb = peak_rss_mb("-r", str(tmp_path / "plain.pth"))
    assert r.returncode == 0, r.stderr
    assert bomb_mb < plain_mb + 32, (bomb_mb, plain_mb)
