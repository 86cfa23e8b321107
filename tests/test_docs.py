"""The README and docs/ stay true: marked commands run as printed, links resolve, the README
stays a newcomer's page.

A fenced ```bash block right after a line `<!-- runnable -->` is run line by line from a
copy of the repository (so nothing lands in this checkout's saved/), with `python` meaning
this interpreter; every command must exit 0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, REPO, copy_checkout

MARKER = "<!-- runnable -->"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def runnable_commands(page: Path) -> list[str]:
    """The command lines of the page's marked ```bash blocks, in order."""
    commands, lines = [], page.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        assert lines[i + 1].strip() == "```bash", f"{page.name}:{i + 2}: expected ```bash"
        for body in lines[i + 2:]:
            if body.strip() == "```":
                break
            if body.strip() and not body.lstrip().startswith("#"):
                commands.append(body.strip())
    return commands


COMMANDS = [(page.relative_to(REPO).as_posix(), c) for page in PAGES
            for c in runnable_commands(page)]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("repo"))


def test_some_commands_are_marked_runnable():
    assert any(page == "README.md" for page, _ in COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("page, command", COMMANDS)
def test_marked_command_runs_as_printed(repo_copy, page, command):
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    r = subprocess.run(argv, cwd=repo_copy, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, f"{page}: {command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


def test_readme_is_a_newcomers_page():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_cpu_wheel_advice_comes_before_the_command_it_changes():
    """Issue 26 item 16: a newcomer reads the CPU-build advice before pasting the install."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    advice = readme.index("--index-url https://download.pytorch.org/whl/cpu")
    command = readme.index("\npip install torch==")
    assert advice < command
