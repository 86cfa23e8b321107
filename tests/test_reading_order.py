"""The reading order of docs/design.md (and README.md's sentence) is the path the code takes.

A digits run is traced in a subprocess, from train.py's main() to the first optimizer.step(),
with a profile hook that looks only at calls. At each milestone (parse the config, build the
data loader, build the model, build the trainer, the first optimizer step) it takes the call
stack, keeps the project's files (leaf helpers under utils/ and logger/ left out) from the
outermost frame to the innermost, and the reading order is every file in the order it is first
met. docs/design.md, "Reading order for one epoch", states the same rule.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import ENV, REPO

MAX_FILES = 11

TRACER = r"""
import json, os, sys
from pathlib import Path
repo = Path({repo!r})
sys.path.insert(0, str(repo))
import torch
import train
from base.base_data_loader import BaseDataLoader
from base.base_model import BaseModel
from base.base_trainer import BaseTrainer
from trainer.config.parse_config import ConfigParser

MILESTONES = {{
    ConfigParser.from_args.__func__.__code__: "parse config",
    BaseDataLoader.__init__.__code__: "build data loader",
    BaseModel.__init__.__code__: "build model",
    BaseTrainer.__init__.__code__: "build trainer",
}}
LEAVES = ("utils/", "logger/")
seen, stacks = set(), []


def project_stack(frame):
    files = []
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(repo):
            rel = path.relative_to(repo).as_posix()
            if not rel.startswith(LEAVES + ("tests/", ".venv")) and "site-packages" not in rel:
                files.append(rel)
        frame = frame.f_back
    return files[::-1]


def profile(frame, event, arg):
    if event != "call":
        return
    code = frame.f_code
    name = MILESTONES.get(code)
    if name is None and code.co_name == "step" \
            and isinstance(frame.f_locals.get("self"), torch.optim.Optimizer):
        name = "first optimizer.step()"
    if name is None or name in seen:
        return
    seen.add(name)
    stacks.append([name, project_stack(frame)])
    if name == "first optimizer.step()":
        sys.setprofile(None)
        print("STACKS " + json.dumps(stacks), flush=True)
        os._exit(0)


sys.setprofile(profile)
train.main({args!r})
sys.setprofile(None)
print("STACKS " + json.dumps(stacks), flush=True)
"""


def traced_stacks(tmp_path) -> list[tuple[str, list[str]]]:
    args = ["-c", "config/digits_mlp.json", f"trainer.save_dir={tmp_path}"]
    code = TRACER.format(repo=str(REPO), args=args)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=ENV)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STACKS ")), None)
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-3000:]
    return [(name, files) for name, files in json.loads(line[len("STACKS "):])]


def reading_order(stacks: list[tuple[str, list[str]]]) -> list[str]:
    order: list[str] = []
    for _, files in stacks:
        for file in files:
            if file not in order:
                order.append(file)
    return order


def design_list() -> list[str]:
    text = (REPO / "docs/design.md").read_text(encoding="utf-8")
    section = text.split("## Reading order for one epoch", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([^`]+)`", section, flags=re.MULTILINE)


def readme_list() -> list[str]:
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    sentence = text.split("`optimizer.step()`, read, in order: ", 1)[1].split(". ", 1)[0]
    return re.findall(r"`([^`]+)`", sentence)


def test_reading_order_is_the_path_of_a_digits_run(tmp_path):
    stacks = traced_stacks(tmp_path)
    assert [name for name, _ in stacks] == ["parse config", "build data loader", "build model",
                                            "build trainer", "first optimizer.step()"], stacks
    order = reading_order(stacks)
    assert order[0] == "train.py" and len(order) <= MAX_FILES, order
    assert design_list() == order, f"docs/design.md lists {design_list()}; the code: {order}"
    assert readme_list() == order, f"README.md lists {readme_list()}; the code: {order}"
