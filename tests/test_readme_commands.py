"""The README and the docs pages followed as a newcomer would: every command works when pasted.

Every command line of README.md's ```bash blocks runs exactly as printed, in order, in one
bash session, in a fresh `git clone` of this checkout's HEAD (commit before running it), and
must exit 0. Then each docs/*.md page's ```bash blocks run the same way in a folder of their
own: a copy of that clone as the README left it (the newcomer who read the README first), so
no page leans on what another page wrote, and each folder ends with nothing that git does not
ignore. A docs command runs in a subshell, so a `cd` in it does not move the commands after it.

What the test replaces, and only that: the lines that create or fill the environment
(`python3 -m venv ...`, `pip install ...`) do not run; instead the clone's `.venv` is a symlink
to the environment the tests run in (sys.prefix), so the README's own
`source .venv/bin/activate` activates it (the session starts with that environment off PATH).
What does not run: a docs block right after a line `<!-- not run: REASON -->`, REASON starting
with one of NOT_RUN (it needs a GPU, SLURM, a server, or minutes of work), and the commands
SKIP names, each with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, REPO

NOT_RUN = re.compile(r"^<!-- not run: (needs a GPU|needs SLURM|needs a server|minutes of work)"
                     r"\b.* -->$")
INSTALL = re.compile(r"^(python3? -m venv|pip install)\b")
SKIP = {
    "python -m pytest": "the whole suite, many minutes; CI runs it (bash .ci/run)",
    'python -m pytest -m "not slow"': "the fast tier, minutes; a test session of its own",
    "bash .ci/run": "builds fresh environments from a package index",
}
PLACEHOLDER = re.compile(r"<[A-Za-z_]+>")


def bare(command: str) -> str:
    """The command without its trailing `# comment`."""
    return command.split(" #")[0].strip()


def bash_blocks(page: Path, skip_marked: bool) -> list[str]:
    """The command lines of a page's ```bash blocks (with skip_marked, not those right after a
    `<!-- not run: ... -->` line), in order; comment lines dropped, backslash continuations
    joined."""
    commands, lines = [], page.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() != "```bash":
            continue
        before = lines[i - 1].strip()
        if before.startswith("<!-- not run"):
            assert NOT_RUN.match(before), f"{page.name}:{i}: a reason NOT_RUN does not know"
            if skip_marked:
                continue
        pending = ""
        for body in lines[i + 1:]:
            if body.strip() == "```":
                break
            if not body.strip() or body.lstrip().startswith("#"):
                continue
            pending += body.strip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            commands.append(pending)
            pending = ""
    return commands


def page_commands() -> list[tuple[str, str]]:
    found = [("README.md", c) for c in bash_blocks(REPO / "README.md", skip_marked=False)]
    for page in sorted((REPO / "docs").glob("*.md")):
        found += [(f"docs/{page.name}", c) for c in bash_blocks(page, skip_marked=True)]
    return found


def fresh_clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    (dest / ".venv").symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    with open(dest / ".git/info/exclude", "a") as f:  # .gitignore's `.venv/` is for a folder
        f.write("/.venv\n")
    return dest


def session_script(commands: list[tuple[str, str]], activated: bool = False) -> str:
    """One bash script: each command as printed, then a line with its exit status (after the
    README's activation of .venv, when `activated`)."""
    out = ["source .venv/bin/activate"] if activated else []
    for i, (page, command) in enumerate(commands):
        run = command if page == "README.md" else f"(\n{command}\n)"  # a docs `cd` stays there
        out += [f"echo '@@@ start {i}'", run, f"echo \"@@@ rc {i} $?\""]
    return "\n".join(out) + "\n"


def without_the_environment(env: dict) -> dict:
    """The test's environment with its venv deactivated: only the README's steps activate it."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in env["PATH"].split(os.pathsep)
            if p and Path(p).resolve() != Path(venv_bin).resolve()]
    env = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return {**env, "PATH": os.pathsep.join(path)}


def outputs_by_command(log: str) -> dict[int, tuple[int, str]]:
    """{command index: (exit status, its output)} from the session's log."""
    found = {}
    for m in re.finditer(r"^@@@ start (\d+)\n(.*?)^@@@ rc \1 (\d+)$", log, re.S | re.M):
        found[int(m.group(1))] = (int(m.group(3)), m.group(2))
    return found


@pytest.mark.slow
def test_every_readme_command_works_when_pasted(tmp_path):
    commands = page_commands()
    assert len(commands) >= 10
    pages = {page for page, _ in commands}
    assert {"docs/export.md", "docs/images.md", "docs/new_project.md", "docs/outputs.md",
            "docs/tracking.md", "docs/config.md"} <= pages, pages
    for skipped in SKIP:
        assert any(bare(c) == skipped for _, c in commands), f"SKIP: no page has {skipped}"
    for page, command in commands:
        assert not PLACEHOLDER.search(bare(command)), f"{page}: a placeholder: {command}"
    run = [(p, c) for p, c in commands if not INSTALL.match(c) and bare(c) not in SKIP]
    assert any(c == "source .venv/bin/activate" for _, c in run)

    clone = fresh_clone(tmp_path / "clone")
    readme_run = [(p, c) for p, c in run if p == "README.md"]
    results = run_in(clone, readme_run)
    # the figures the README quotes (ENV sets OMP_NUM_THREADS=1, as the README says)
    first_test = next(i for i, (_, c) in enumerate(readme_run) if c.startswith("python test.py"))
    assert "accuracy: 0.972145" in results[first_test][1]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "test accuracy of 0.972" in readme and "loss 0.0934" in readme
    latest = clone / "saved/models/digits_mlp/latest"
    assert (latest.parent / latest.read_text().strip() / "predictions.csv").is_file()
    assert_nothing_unignored(clone)

    for page in sorted(pages - {"README.md"}):
        folder = tmp_path / Path(page).stem
        shutil.copytree(clone, folder, symlinks=True)  # .venv stays a link to the environment
        run_in(folder, [(p, c) for p, c in run if p == page], activated=True)
        assert_nothing_unignored(folder)
        shutil.rmtree(folder)


def run_in(folder: Path, commands: list[tuple[str, str]],
           activated: bool = False) -> dict[int, tuple[int, str]]:
    """Run `commands` in one bash session in `folder`; each must exit 0."""
    r = subprocess.run(["bash", "--noprofile", "--norc", "-c",
                        session_script(commands, activated)], cwd=folder, capture_output=True,
                       text=True, timeout=900, env=without_the_environment(ENV))
    results = outputs_by_command(r.stdout)
    for i, (page, command) in enumerate(commands):
        assert i in results, f"{page}: did not finish: {command}\n{r.stdout[-3000:]}{r.stderr}"
        code, output = results[i]
        assert code == 0, f"{page}: exit {code}: {command}\n{output[-3000:]}\n{r.stderr[-3000:]}"
    return results


def assert_nothing_unignored(folder: Path) -> None:
    """What the commands wrote is git-ignored (under saved/, or ignored in the root)."""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True,
                            text=True, check=True).stdout
    assert status == "", f"{folder.name}: {status}"
