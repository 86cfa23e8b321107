"""A run imports only what its config uses (docs/performance.md, "Start-up").

train.py runs in a subprocess exactly as from the command line (`main()` of the checkout's
train.py); when it returns, the names in sys.modules are the modules the run loaded. A dry run
builds everything a real run builds before its first step (config, data, model, trainer parts,
one trial batch), so what it loads is what a run loads up to there.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ENV, REPO

PROJECT = ("base", "data_loader", "logger", "model", "sweep", "trainer", "utils", "api")
# optional extras and heavy packages a plain run never needs
NEVER = ("sweep", "optuna", "mlflow", "tensorboard", "torch.utils.tensorboard", "matplotlib",
         "pandas", "scipy")
# a digits run needs at most this many of the project's modules (packages included; 67 on
# 2026-12-05, 85 before the registries were lazy and sweep/ deferred); the project has over
# 100: the registries import only the modules that define the names the config uses, and
# nothing of sweep/, the test command or the LR finder is imported
MAX_PROJECT_MODULES_DIGITS = 79  # 77 measured (2026-12-05, data_loader/digits.py added)

PROBE = """
import json, sys
sys.path.insert(0, {repo!r})
sys.argv = ["train.py", *{args!r}]
import runpy
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    code = e.code
print("MODULES " + json.dumps(sorted(sys.modules)))
print("EXIT " + str(code))
"""


def loaded_modules(*args: str, script: str = "train.py") -> list[str]:
    """The modules in sys.modules after `script ARGS` ran to its end (it must exit 0)."""
    probe = PROBE.format(repo=str(REPO), args=list(args), script=str(REPO / script))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=ENV)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and "EXIT 0" in lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(next(line for line in lines if line.startswith("MODULES "))[8:])


def top(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages or m.startswith(packages))


def test_csv_regression_run_imports_neither_sweep_nor_extras_nor_sklearn():
    modules = loaded_modules("-c", "config/csv_regression.yaml", "--dry-run")
    assert not top(modules, NEVER + ("sklearn",))
    assert "data_loader.csv_file" in modules  # the run did build its loader
    assert "data_loader.data_loaders" not in modules  # the scikit-learn loaders' module


def test_digits_run_imports_few_project_modules():
    modules = loaded_modules("-c", "config/digits_mlp.json", "--dry-run")
    # the digits are read from scikit-learn's bundled file, without importing scikit-learn
    assert not top(modules, NEVER + ("sklearn",))
    assert "data_loader.digits" in modules  # the data set it trains on
    assert "data_loader.data_loaders" not in modules  # the scikit-learn loaders' module
    own = top(modules, PROJECT)
    assert len(own) <= MAX_PROJECT_MODULES_DIGITS, own
    # only the model and data loader modules the config names, not their whole folders
    assert {"model.cnn", "model.sequence", "data_loader.numpy_file",
            "data_loader.synthetic"}.isdisjoint(own), own


def test_importing_the_training_body_imports_no_sweep_nor_test_command():
    code = (f"import json, sys; sys.path.insert(0, {str(REPO)!r}); "
            f"import trainer.run.training; print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = json.loads(proc.stdout)
    assert not top(modules, NEVER + ("sklearn",))
    assert "trainer.run.checkpoint_test" not in modules


def test_registry_imports_the_defining_module_only_and_an_unknown_name_lists_all():
    code = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from data_loader import DATA_LOADERS
from model import MODELS
from utils.errors import ConfigError
assert MODELS.get("MLP").__module__ == "model.model"
assert DATA_LOADERS.get("CsvDataLoader").__module__ == "data_loader.csv_file"
print("loaded", sorted(m for m in sys.modules if m.startswith(("model.", "data_loader."))))
try:
    MODELS.get("Nope", "arch.type")
except ConfigError as e:
    print("error", e)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded, error = proc.stdout.splitlines()
    assert loaded == "loaded " + str(["data_loader.csv_file", "data_loader.datasets",
                                      "model.model", "model.weight_init"])
    assert error.startswith("error arch.type: unknown model 'Nope'")
    assert all(name in error for name in ("CNN", "LSTMClassifier", "MLP")), error
