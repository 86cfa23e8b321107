"""The house rules of docs/design.md, read from the code with ast.

Layers, each importing only from the ones below it:
utils -> logger -> base -> model, data_loader -> trainer -> sweep -> entry points.
No import cycle between modules; imports at module top, except optional extras
and the deferred imports in each entry point's main() (each only for the commands that need it).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

LAYERS = {"utils": 0, "logger": 1, "base": 2, "model": 3, "data_loader": 3, "trainer": 4,
          "sweep": 5, "train": 6, "test": 6, "api": 6, "new_project": 6, "benchmarks": 7}
PACKAGES = {name for name in LAYERS if (REPO / name).is_dir()}
# optional extras, imported where used; scikit-learn too, although installed with the core: only
# its data sets, k-fold splits and the classification report need it, and a run that uses none
# of them (a CSV file, a sequence task) must not pay for importing it (tests/test_imports.py)
OPTIONAL = ("torch.utils.tensorboard", "matplotlib", "optuna", "torchmetrics", "mlflow",
            "onnx", "onnxruntime", "safetensors", "sklearn")
ENTRY_POINTS = ("train.py", "test.py", "api.py", "new_project.py")


def project_modules() -> dict[str, Path]:
    """{dotted module name: path} of every project module outside tests/."""
    found = {}
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        entry_point = len(rel.parts) == 1 and rel.name in ENTRY_POINTS
        if not entry_point and (len(rel.parts) == 1 or rel.parts[0] not in LAYERS):
            continue  # not the project's (a .venv in the checkout, tests/, ...)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(tree: ast.AST, modules: dict[str, Path]) -> list[tuple[str, ast.AST]]:
    """(project module, node) for every import of a project module in `tree`."""
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name in modules:
                out.append((name, node))
    return out


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_no_import_goes_up_a_layer_or_sideways():
    modules = project_modules()
    bad = []
    for name, path in modules.items():
        top = name.split(".")[0]
        for target, node in imported(ast.parse(path.read_text()), modules):
            other = target.split(".")[0]
            if other == top:
                continue
            if layer(target) >= layer(name):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {target}")
    assert not bad, "imports that go up (or sideways) a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: {t for t, _ in imported(ast.parse(path.read_text()), modules) if t != name}
             for name, path in modules.items()}

    def parents(module: str) -> set[str]:  # importing a.b.c runs a/__init__ and a/b/__init__
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))} & set(graph)

    for name in list(graph):  # a package's own modules may import its siblings while it loads
        graph[name] |= {p for t in list(graph[name]) for p in parents(t)} - {name} - parents(name)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_at_module_top():
    """Function-local imports only for optional extras, and one block in an entry point's main()."""
    bad = []
    for path in project_modules().values():
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                if all(n.startswith(OPTIONAL) for n in names):
                    continue
                if path.name in ENTRY_POINTS and func.name == "main":
                    continue
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} in {func.name}()")
    assert not bad, "function-local imports:\n" + "\n".join(bad)


def test_modules_stay_small():
    big = [f"{p.relative_to(REPO)} ({n} lines)" for p in project_modules().values()
           if (n := len(p.read_text().splitlines())) > 400]
    assert not big, "modules over 400 lines: " + ", ".join(big)
