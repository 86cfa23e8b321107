"""Issue 14 (item 4): trainer.compile. The aot_eager backend traces the model through
torch.compile's graph capture and AOT autograd like inductor does, without a C++ build
(inductor's first compile of the MLP takes about a minute on the CI machine)."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import (
    REPO,
    assert_same_weights,
    load,
    load_config,
    only_run,
    read_json,
    run_dirs,
    run_script,
    train,
)

from model.model import MLP
from trainer.run.compiling import validate_compile
from utils.errors import ConfigError

DIGITS = REPO / "config/digits_mlp.yaml"
COMPILE = "trainer.compile={backend: aot_eager}"
# shuffling, dropout and a per-epoch scheduler on, a checkpoint after every epoch
EXACT = ["arch.args.dropout=0.2", "lr_scheduler.args.step_size=1", "lr_scheduler.args.gamma=0.5",
         "trainer.save_period=1", "trainer.verbosity=0", "trainer.epochs=3"]


@pytest.mark.slow
def test_compiled_runs_resume_both_ways_and_load_strictly(tmp_path):
    plain_dir, comp_dir = tmp_path / "plain", tmp_path / "compiled"
    r = train("-c", DIGITS, *EXACT, save_dir=plain_dir)
    assert r.returncode == 0, r.stderr
    plain_run = only_run(plain_dir, "digits_mlp")
    unbroken = load(plain_run / "checkpoint-epoch3.pth")

    # a compiled run's checkpoint: the plain module's state_dict, for an uncompiled MLP
    r = train("-c", DIGITS, *EXACT, COMPILE, "trainer.epochs=1", save_dir=comp_dir)
    assert r.returncode == 0, r.stderr
    comp_run = only_run(comp_dir, "digits_mlp")
    ckpt = load(comp_run / "checkpoint-epoch1.pth")
    assert not any("_orig_mod" in k for k in ckpt["model_state_dict"])
    assert read_json(comp_run / "config.json")["trainer"]["compile"] == {"backend": "aot_eager"}
    MLP(**ckpt["config"]["arch"]["args"]).load_state_dict(ckpt["model_state_dict"], strict=True)
    out = tmp_path / "test.json"
    r = run_script("test.py", "-r", comp_run / "checkpoint-epoch1.pth", "--output", out)
    assert r.returncode == 0, r.stderr
    assert 0.5 < read_json(out)["accuracy"] <= 1.0

    # compiled run resumed without compile; plain run resumed (in a new folder) with it
    r = train("-r", comp_run / "checkpoint-epoch1.pth", "trainer.epochs=3",
              "trainer.compile=false", save_dir=comp_dir)
    assert r.returncode == 0, r.stderr
    r = train("-r", plain_run / "checkpoint-epoch1.pth", COMPILE, save_dir=plain_dir)
    assert r.returncode == 0, r.stderr
    (branch,) = [p for p in run_dirs(plain_dir, "digits_mlp") if p != plain_run]
    for run in (comp_run, branch):
        resumed = load(run / "checkpoint-epoch3.pth")
        assert_same_weights(unbroken["model_state_dict"], resumed["model_state_dict"])
        assert_same_weights(unbroken["optimizer_state_dict"]["state"][0],
                            resumed["optimizer_state_dict"]["state"][0])
        assert unbroken["lr_scheduler_state_dict"] == resumed["lr_scheduler_state_dict"]
    assert load(branch / "checkpoint-epoch3.pth")["config"]["trainer"]["compile"] == \
        {"backend": "aot_eager"}


def test_a_backend_that_cannot_work_here_is_a_one_line_error(tmp_path):
    # tvm is registered but its package is missing: the trial compile fails, before any folder
    r = train("-c", DIGITS, "trainer.compile={backend: tvm}", save_dir=tmp_path / "s")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "trainer.compile: torch.compile with {'backend': 'tvm'} does not work here" in lines[0]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value, message", [
    (3, "trainer.compile: expected true, false or a mapping"),
    ({"backend": "nosuchbackend"}, "trainer.compile.backend: unknown backend 'nosuchbackend'"),
    ({"backend": "eager", "mode": "fast"}, "trainer.compile.mode: expected one of"),
    ({"fullgrahp": True}, "did you mean 'fullgraph'"),
    ({"mode": "default", "options": {}}, "mode or options, not both"),
    ({"dynamic": "yes"}, "trainer.compile.dynamic"),
])
def test_invalid_compile_values_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        # Hydra's spelling of a mapping: {k: v}
        flow = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
        load_config(DIGITS, [f"trainer.compile={flow}"])


def test_compile_values_resolve():
    assert validate_compile(False) is False and validate_compile(None) is False
    assert validate_compile(True) == {"backend": "inductor"}
    assert validate_compile({"mode": "max-autotune"}) == {"backend": "inductor",
                                                         "mode": "max-autotune"}
