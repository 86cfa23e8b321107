"""Shared helpers: run train.py / test.py as a user would, in a temporary save_dir."""

from __future__ import annotations

import csv
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from utils.run_pointer import LATEST_NAME  # noqa: E402  (the checkout's own modules)

# keep subprocesses light on the 2-core CI machine
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: float = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)],
                          cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


MAINS_DRIVER = r"""
import contextlib, io, json, sys, traceback
sys.path.insert(0, sys.argv[1])
cases, results = json.loads(open(sys.argv[2]).read()), []
for script, args in cases:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = __import__(script.removesuffix(".py")).main(args)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:  # a bug: its traceback, as the script would print it
            traceback.print_exc()
            code = 1
    results.append([code, out.getvalue(), err.getvalue()])
open(sys.argv[3], "w").write(json.dumps(results))
"""


def run_mains(cases: list[tuple[str, list]], cwd: Path | None = None,
              timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Each (script, args) through that script's own main(args), one after the other in ONE
    Python process: the same parsing, checks and `error:` line as `python script args`, less
    a start-up (torch's import) per case. For tables of mistakes that stop before a run
    starts; anything that trains or signals runs as its own process (run_script)."""
    with tempfile.TemporaryDirectory() as tmp:
        todo, done = Path(tmp) / "cases.json", Path(tmp) / "results.json"
        todo.write_text(json.dumps([[script, [str(a) for a in args]] for script, args in cases]))
        r = subprocess.run([sys.executable, "-c", MAINS_DRIVER, str(REPO), str(todo), str(done)],
                           cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                           env=ENV)
        assert r.returncode == 0 and done.exists(), r.stderr
        results = json.loads(done.read_text())
    return [subprocess.CompletedProcess([script, *map(str, args)], code, out, err)
            for (script, args), (code, out, err) in zip(cases, results)]


def train(*args: str, save_dir: Path, **kw) -> subprocess.CompletedProcess:
    """train.py with outputs under `save_dir` (an override appended to the command line)."""
    return run_script("train.py", *args, f"trainer.save_dir={save_dir}", **kw)


def run_dirs(save_dir: Path, name: str) -> list[Path]:
    """The experiment's run folders, oldest first (its `latest` pointer is none, nor the
    .lock of --resume auto)."""
    return sorted((p for p in (save_dir / "models" / name).iterdir()
                   if p.is_dir() and p.name != LATEST_NAME),
                  key=lambda p: p.stat().st_mtime)


def trial_run_dirs(save_dir: Path, name: str) -> list[Path]:
    """The run folders of sweep (fold, repeat) trials: they live in their sweep folder,
    saved/sweeps/<name>/<sweep_id>/models/<config name>/<run_id>/, not in saved/models/."""
    return sorted(p for p in (save_dir / "sweeps" / name).glob("*/models/*/*") if p.is_dir())


def only_run(save_dir: Path, name: str) -> Path:
    runs = run_dirs(save_dir, name)
    assert len(runs) == 1, runs
    return runs[0]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def tree_snapshot(root: Path) -> dict:
    """{relative path: (size, mtime)} of every file under root (a run folder's .lock aside:
    a resume takes it before it looks inside the folder, and leaves the run's files alone)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


def copy_checkout(dest: Path) -> Path:
    """The checkout's tracked (and untracked, not ignored) files copied to `dest`, outputs
    excluded: a place where commands run as printed without touching this checkout."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture
def save_dir(tmp_path: Path) -> Path:
    return tmp_path / "saved"


def shared_save_dir(tmp_path_factory, name: str, *args: str) -> Path:
    """save_dir of `train.py *args` trained once per test session, for the pytest-xdist
    workers together (the first to ask trains it under a lock; the others wait and reuse
    it). Tests only read it, or copy it before they change anything."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder the workers' own base folders share
    save, done = root / f"shared-{name}" / "saved", root / f"shared-{name}.done"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(save.parent, ignore_errors=True)
            result = train(*args, save_dir=save)
            assert result.returncode == 0, result.stderr
            done.touch()
    return save


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One full run of the README's main job (config/digits_mlp.json); its run folder. One
    per pytest worker: some tests write test.py's outputs into it."""
    save = tmp_path_factory.mktemp("digits") / "saved"
    result = train("-c", REPO / "config/digits_mlp.json", save_dir=save)
    assert result.returncode == 0, result.stderr
    return only_run(save, "digits_mlp")


@pytest.fixture(scope="session")
def digits_one_epoch(tmp_path_factory) -> Path:
    """save_dir of a one-epoch run of config/digits_mlp.json (its checkpoint-epoch1.pth is
    "some trained checkpoint"); tests that change or resume it copy it first."""
    return shared_save_dir(tmp_path_factory, "digits-one-epoch", "-c",
                           REPO / "config/digits_mlp.json", "trainer.epochs=1")


def load_config(path: Path, overrides: list[str] | None = None) -> dict:
    """The validated config of a file plus overrides, as train.py reads it."""
    from trainer.config.parse_config import validate_config
    from utils.config_io import apply_overrides, load_config_file

    return validate_config(apply_overrides(load_config_file(path), overrides or []))[0]


# --- the fast tier's module check
#
# `python -m pytest -m "not slow"` (the whole fast tier, no paths or -k given) or any run with
# --module-check: every process of the run (the pytest workers and each python they start,
# through tests/module_log/sitecustomize.py on PYTHONPATH) records the checkout's files it
# imported; at the end the run fails, naming them, if a project module (a tracked .py file
# outside tests/) was imported by none. Tests that set PYTHONPATH themselves are not recorded.
# (new_project.py copies this file without tests/module_log/: there the check is off.)

MODULE_LOG_SITE = Path(__file__).resolve().parent / "module_log"
module_log_key = pytest.StashKey[Path]()
missing_key = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--module-check", action="store_true",
                     help="fail unless the tests run import every project module (on by "
                          "itself for the whole fast tier, -m 'not slow')")


def project_modules() -> list[str]:
    """The checkout's Python files outside tests/ (tracked or new, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    return sorted(f for f in files if not f.startswith("tests/") and (REPO / f).is_file())


def module_check_wanted(config: pytest.Config) -> bool:
    if config.getoption("module_check"):
        return True
    return (config.getoption("markexpr") or "").strip() == "not slow" \
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS \
        and not config.getoption("keyword")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not MODULE_LOG_SITE.is_dir() \
            or not module_check_wanted(config):
        return  # xdist workers inherit the environment set below
    log = Path(tempfile.mkdtemp(prefix="module-log-"))
    config.stash[module_log_key] = log
    paths = [str(MODULE_LOG_SITE), *filter(None, [os.environ.get("PYTHONPATH")])]
    for env in (os.environ, ENV):  # ENV was copied before this hook ran
        env.update(PROJECT_MODULE_LOG=str(log), PROJECT_MODULE_ROOT=str(REPO),
                   PYTHONPATH=os.pathsep.join(paths))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.environ.get("PROJECT_MODULE_LOG") and MODULE_LOG_SITE.is_dir():
        spec = importlib.util.spec_from_file_location("module_log_record",
                                                      MODULE_LOG_SITE / "sitecustomize.py")
        recorder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(recorder)
        recorder.record()  # this process's own imports (a pytest worker's, or the only one's)
    log = session.config.stash.get(module_log_key, None)
    if log is None:
        return
    seen = {line for f in log.glob("*.txt") for line in f.read_text().splitlines()}
    shutil.rmtree(log, ignore_errors=True)
    missing = [m for m in project_modules() if m not in seen]
    session.config.stash[missing_key] = missing
    if missing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    missing = config.stash.get(missing_key, None)
    if missing is None:
        return
    if missing:
        terminalreporter.write_line(f"module check: FAILED, {len(missing)} project module(s) "
                                    f"imported by no test: {', '.join(missing)}", red=True)
    else:
        terminalreporter.write_line(f"module check: every project module "
                                    f"({len(project_modules())}) was imported", green=True)
