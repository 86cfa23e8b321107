"""Write a fresh project from the template's skeleton:  python new_project.py DIR [--with sweep]

The new folder gets base/, trainer/, logger/, utils/, model/ and data_loader/ (one example
each: the MLP and the scikit-learn data loaders), train.py, test.py, config/example.json,
tests for the skeleton, pyproject.toml, .gitignore and a README with the quick start.
sweep/, docs/, benchmarks/ and api.py come only with --with. Modules are chosen by
following the imports of what is copied, so the copy imports whatever its files need; without
sweep/, train.py's and test.py's sweep imports point at trainer/run/without_sweep.py (plain runs
work, sweep options are a one-line error). docs/new_project.md has the details.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent
PROJECT_PACKAGES = ("base", "trainer", "logger", "utils", "model", "data_loader", "sweep")
WHOLE = ("base", "trainer", "logger", "utils")  # every module
EXAMPLES = ("model/__init__.py", "model/model.py", "model/loss.py", "model/metric.py",
            "data_loader/__init__.py", "data_loader/data_loaders.py", "train.py", "test.py")
FILES = (".gitignore", "saved/.gitkeep", "tests/conftest.py", "tests/test_layers.py")
EXTRAS = {"sweep": ("sweep", "config/sweeps"), "docs": ("docs",),
          "benchmarks": ("benchmarks",), "api": ("api.py",)}
SWEEP_IMPORT = re.compile(r"^(\s*)from sweep(?:\.\w+)* import ", re.MULTILINE)
STUB = "from trainer.run.without_sweep import "

README = """# {name}

A config-driven PyTorch training project, written by `new_project.py` from the
pytorch-template-style skeleton.

## Quick start

```bash
python -m venv .venv && source .venv/bin/activate
pip install torch && pip install -e ".[dev]"
python train.py -c config/example.json                # train: saved/models/example/<run_id>/
python test.py -r saved/models/example/<run_id>/model_best.pth    # held-out test split
python train.py -r saved/models/example/<run_id>/checkpoint-epoch10.pth trainer.epochs=20
python train.py -c config/example.json trainer.epochs=5 arch.args.depth=3   # overrides
python -m pytest
```

## Layout

    train.py  test.py     command lines
    config/example.json   the example config (digits, an MLP)
    base/                 BaseDataLoader, BaseModel, BaseTrainer
    model/                models (model.py), losses, metrics: found by name
    data_loader/          data loaders: found by name
    trainer/              the Trainer, config validation, run folders
    logger/  utils/       logging and metric writers; leaf helpers
    tests/                the skeleton's tests

Add a model, loss, metric or data loader by writing one class or function in its
folder and naming it in a config; nothing else changes.
"""

SKELETON_TEST = '''"""The example config trains, test.py evaluates it, a bad key is one line."""

from __future__ import annotations

import json

from conftest import REPO, load, only_run, run_script, train


def test_example_trains_and_evaluates(tmp_path):
    save = tmp_path / "saved"
    r = train("-c", REPO / "config/example.json", "trainer.epochs=2", save_dir=save)
    assert r.returncode == 0, r.stderr
    run = only_run(save, "example")
    ckpt = load(run / "model_best.pth")
    assert ckpt["arch"] == "MLP" and ckpt["epoch"] in (1, 2)
    assert json.loads((run / "config.json").read_text())["trainer"]["epochs"] == 2
    out = tmp_path / "metrics.json"
    r = run_script("test.py", "-r", run / "model_best.pth", "--output", out)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["loss", "accuracy", "top_k_acc"]
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_a_misspelt_key_is_one_line(tmp_path):
    r = train("-c", REPO / "config/example.json", "trainer.epohcs=1", save_dir=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "did you mean 'trainer.epochs'" in r.stderr
    assert "Traceback" not in r.stderr
'''


class ProjectError(Exception):
    """A one-line error: (message, exit code)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write a fresh project from the skeleton.")
    parser.add_argument("dir", metavar="DIR", help="the new project's folder (new or empty)")
    parser.add_argument("--with", dest="extras", default="", metavar="PARTS",
                        help=f"comma-separated extras to copy too: {', '.join(EXTRAS)}")
    return parser.parse_args(argv)


def chosen_extras(text: str) -> list[str]:
    extras = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], EXTRAS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ProjectError(f"--with {unknown[0]}: unknown part{hint} (expected any of: "
                           f"{', '.join(EXTRAS)})", 2)
    return extras


def module_file(module: str) -> str | None:
    """The template file of a dotted project module, relative to the template."""
    rel = module.replace(".", "/")
    for candidate in (f"{rel}.py", f"{rel}/__init__.py"):
        if (TEMPLATE / candidate).is_file():
            return candidate
    return None


def project_imports(rel: str) -> set[str]:
    """The project modules (and their packages) imported by the template file `rel`."""
    found = set()
    for node in ast.walk(ast.parse((TEMPLATE / rel).read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in PROJECT_PACKAGES:
                found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {f for m in found if (f := module_file(m)) is not None}


def template_files(path: str) -> list[str]:
    """`path` itself, or every file under the folder `path` (caches aside), relative."""
    if (TEMPLATE / path).is_file():
        return [path]
    return sorted(str(p.relative_to(TEMPLATE)) for p in (TEMPLATE / path).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def selection(extras: list[str]) -> tuple[list[str], list[str]]:
    """(the .py files, following imports; the other paths to copy as they are)."""
    sweep = "sweep" in extras
    todo = [*EXAMPLES, *(f for pkg in WHOLE for f in template_files(pkg) if f.endswith(".py"))]
    others = list(FILES)
    for extra in extras:
        for path in EXTRAS[extra]:
            for rel in template_files(path):
                (todo if rel.endswith(".py") else others).append(rel)
    picked: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in picked:
            continue
        picked.add(rel)
        for dep in project_imports(rel):
            if dep.startswith("sweep/") and not sweep and rel not in ("train.py", "test.py"):
                raise ProjectError(f"{rel} imports {dep}: the skeleton cannot leave sweep/ out "
                                   f"(use --with sweep)", 1)
            if sweep or not dep.startswith("sweep/"):
                todo.append(dep)
    return sorted(picked), others


def without_sweep(text: str) -> str:
    """train.py or test.py with its sweep imports pointed at trainer/run/without_sweep.py."""
    return SWEEP_IMPORT.sub(lambda m: m.group(1) + STUB, text)


def check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectError(f"{target}: exists and is not an empty folder; choose a new one", 2)
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ProjectError(f"{target}: {parent} is a file, not a folder; choose a folder "
                           f"elsewhere", 2)


def example_config() -> str:
    config = json.loads((TEMPLATE / "config/digits_mlp.json").read_text(encoding="utf-8"))
    config["name"] = "example"
    config["trainer"].update(epochs=10, save_period=5)
    return json.dumps(config, indent=2) + "\n"


def pyproject(name: str) -> str:
    text = (TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "new-project"
    return re.sub(r'(?m)^name = ".*"$', f'name = "{slug}"', text, count=1)


def write_project(target: Path, extras: list[str]) -> int:
    """Copy the selection into `target`; the number of files written. The files go into a
    temporary folder beside it, renamed to `target` once complete: a failure (a full disk)
    leaves nothing behind."""
    files, others = selection(extras)
    written = {
        "config/example.json": example_config(),
        "pyproject.toml": pyproject(target.resolve().name),
        "README.md": README.format(name=target.resolve().name),
        "tests/test_skeleton.py": SKELETON_TEST,
    }
    for rel in files:
        text = (TEMPLATE / rel).read_text(encoding="utf-8")
        if rel in ("train.py", "test.py") and "sweep" not in extras:
            text = without_sweep(text)
        written[rel] = text
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for rel, text in written.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text, encoding="utf-8")
        for rel in others:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TEMPLATE / rel, staging / rel)
        umask = os.umask(0o022)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700
        os.replace(staging, target)  # over a missing or empty folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(written) + len(others)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target = Path(args.dir)
    try:
        extras = chosen_extras(args.extras)
        check_target(target)
        count = write_project(target, extras)
    except ProjectError as e:
        message, code = e.args
        print(f"error: {message}", file=sys.stderr)
        return code
    except OSError as e:
        print(f"error: cannot write {target}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {count} files to {target}")
    print(f"next: cd {target} && python train.py -c config/example.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
