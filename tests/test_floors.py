"""The floors CI installs (.ci/floors.txt) are the floors pyproject.toml declares."""

from __future__ import annotations

import re

from conftest import REPO

CORE = ("numpy", "scikit-learn", "pyyaml", "tqdm")


def _floors(lines: list[str], op: str) -> dict[str, str]:
    found = {}
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        for m in re.finditer(rf'([A-Za-z][A-Za-z0-9_.-]*){re.escape(op)}([0-9][0-9.]*)', line):
            found[m.group(1).lower()] = m.group(2)
    return found


def test_ci_floor_pins_equal_the_declared_floors():
    declared = _floors((REPO / "pyproject.toml").read_text().splitlines(), ">=")
    pinned = _floors((REPO / ".ci" / "floors.txt").read_text().splitlines(), "==")
    assert declared["torch"] == "2.3"  # CI tests the oldest torch on its index: 2.13.0
    for name in (*CORE, "pytest", "pytest-xdist"):
        assert pinned[name] == declared[name], name
