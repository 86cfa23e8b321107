"""Issue 6: torchrun DDP on CPU (gloo), exact cross-rank metrics, AMP, accumulation, clipping.

Every distributed run here is a real `torchrun` launch of train.py / test.py
with 2 processes on the CPU. CUDA paths (nccl, fp16, DataParallel) are
skipped on machines without GPUs.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    ENV,
    REPO,
    assert_same_weights,
    load,
    load_config,
    only_run,
    read_csv,
    read_json,
    run_dirs,
    train,
)

from utils.checkpoint import history_rows

# one worker runs this file's tests: its module fixtures train once (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("distributed")

DIGITS = REPO / "config/digits_mlp.json"
# 1797 digits: 359 test, 1406 validation -> exactly 32 training samples (one step of 32)
ONE_STEP = ["data_loader.args.test_split=359", "data_loader.args.validation_split=1406",
            "optimizer.type=SGD", "optimizer.args={lr: 0.1}", "lr_scheduler=null",
            "trainer.epochs=1", "trainer.monitor=off", "trainer.early_stop=0"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_2_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")


def script_main(name: str):
    """main() of train.py or test.py, to run a single process here (no start-up cost)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def train_here(*args, save_dir: Path) -> int:
    return script_main("train")([*map(str, args), f"trainer.save_dir={save_dir}"])


def torchrun_cmd(script: str, *args, nproc: int = 2, launch: tuple = ("--standalone",)) -> list:
    return [sys.executable, "-m", "torch.distributed.run", *launch, f"--nproc_per_node={nproc}",
            str(REPO / script), *map(str, args)]


def torchrun(script: str, *args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_cmd(script, *args, **kw), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def ddp_train(*args, save_dir: Path, **kw) -> subprocess.CompletedProcess:
    return torchrun("train.py", *args, f"trainer.save_dir={save_dir}", **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def wait_for(path_glob: str, root: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = list(root.glob(path_glob))
        if found:
            return found[0]
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"run ended early ({proc.returncode}):\n{out}\n{err}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"timed out waiting for {path_glob}")


def single_process_evaluation(ckpt_path: Path, split: str, amp: str = "off") -> dict:
    """The checkpoint's model evaluated in this process on its 'valid' or 'test' split."""
    from trainer.config.parse_config import ConfigParser
    from trainer.loop.trainer import loss_and_metrics
    from utils.checkpoint import load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    config = ConfigParser(ckpt["config"], str(ckpt_path))
    loader = config.build_data_loader(training=split == "valid")
    if split == "valid":
        loader = loader.split_validation()
    model = config.build_model()
    model.load_state_dict(ckpt["model_state_dict"])
    return loss_and_metrics(model, loader, config.build_criterion(), config.build_metrics(),
                    torch.device("cpu"), amp)


# the runs compared with each other differ in trainer.epochs only
# (batch norm: each rank's running statistics drift apart between DDP's broadcasts)
RUN_ARGS = ["-c", DIGITS, "data_loader.args.batch_size=8", "trainer.save_period=1",
            "trainer.early_stop=0", "arch.args.batch_norm=true"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2-process gloo run of the digits config, 3 epochs; its run folder and result."""
    save = tmp_path_factory.mktemp("ddp") / "saved"
    r = ddp_train(*RUN_ARGS, "trainer.epochs=3", save_dir=save)
    assert r.returncode == 0, r.stdout + r.stderr
    return only_run(save, "digits_mlp"), r


# ---------------------------------------------------------------- outputs and metrics

@pytest.mark.slow
def test_ddp_run_writes_one_set_of_outputs(ddp_run):
    run, result = ddp_run
    save = run.parents[2]
    assert len(list((save / "log/digits_mlp").iterdir())) == 1
    log_dir = save / "log/digits_mlp" / run.name
    assert [int(r["epoch"]) for r in read_csv(log_dir / "metrics.csv")] == [1, 2, 3]
    info = (log_dir / "info.log").read_text()
    assert "DistributedDataParallel: 2 processes (gloo)" in info
    assert info.count("epoch 2/3 ") == 1
    assert result.stdout.count("epoch 2/3 ") == 1  # rank 1 prints no epoch lines
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == [
        "checkpoint-epoch1.pth", "checkpoint-epoch2.pth", "checkpoint-epoch3.pth", "config.json",
        "model_best.pth"]


@pytest.mark.slow
def test_ddp_checkpoint_is_plain_and_loads_in_one_process(ddp_run, tmp_path):
    run, _ = ddp_run
    ckpt = load(run / "checkpoint-epoch3.pth")
    assert not any(k.startswith("module.") for k in ckpt["model_state_dict"])
    assert list(ckpt["model_state_dict"])[:2] == ["input_mean", "input_std"]
    assert script_main("test")(["-r", str(run / "checkpoint-epoch3.pth"),
                                "--output", str(tmp_path / "m.json")]) == 0
    assert read_json(tmp_path / "m.json")["accuracy"] > 0.8


@pytest.mark.slow
def test_ddp_validation_equals_single_process_evaluation(ddp_run):
    run, _ = ddp_run
    ckpt = load(run / "checkpoint-epoch3.pth")
    row = history_rows(ckpt)[-1]
    single = single_process_evaluation(run / "checkpoint-epoch3.pth", "valid")
    # exactly: the ranks' batches are the single process's batches, summed in its order
    assert {f"val_{k}": v for k, v in single.items()} == \
        {k: v for k, v in row.items() if k.startswith("val_")}


@pytest.mark.slow
def test_ddp_test_metrics_equal_single_process_test(ddp_run, tmp_path):
    run, _ = ddp_run
    ckpt = run / "checkpoint-epoch3.pth"
    r = torchrun("test.py", "-r", ckpt, "--output", tmp_path / "ddp.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("accuracy: ") == 1  # only rank 0 reports
    assert script_main("test")(["-r", str(ckpt), "--output", str(tmp_path / "one.json")]) == 0
    assert read_json(tmp_path / "ddp.json") == read_json(tmp_path / "one.json")


def test_evaluation_shards_are_the_single_process_batches():
    from base.base_data_loader import EpochBatchSampler

    idx = torch.arange(103)
    whole = [b.tolist() for b in EpochBatchSampler(idx, 10, False, even=False)]
    shards = [list(EpochBatchSampler(idx, 10, False, rank=r, world_size=3, even=False))
              for r in range(3)]
    assert [len(s) for s in shards] == [len(EpochBatchSampler(idx, 10, False, rank=r,
                                                              world_size=3, even=False))
                                        for r in range(3)] == [4, 4, 3]
    assert sorted(b.tolist() for s in shards for b in s) == sorted(whole)
    idx = torch.arange(100)  # training shards: disjoint, the same size, covering the split
    train = [torch.cat(list(EpochBatchSampler(idx, 10, True, seed=1, rank=r, world_size=2)))
             for r in range(2)]
    assert len(train[0]) == len(train[1]) == 50
    assert not set(train[0].tolist()) & set(train[1].tolist())
    assert set(train[0].tolist()) | set(train[1].tolist()) == set(idx.tolist())


# ---------------------------------------------------------------- one step, accumulation, clipping

@pytest.fixture(scope="module")
def one_step_reference(tmp_path_factory):
    """Single-process weights after one SGD step on all 32 training samples, by clip value."""
    cache = {}

    def get(clip: float) -> dict:
        if clip not in cache:
            save = tmp_path_factory.mktemp("ref") / "saved"
            assert train_here("-c", DIGITS, *ONE_STEP, "data_loader.args.batch_size=32",
                              f"trainer.clip_grad_norm={clip}", save_dir=save) == 0
            cache[clip] = load(only_run(save, "digits_mlp") / "checkpoint-epoch1.pth")
        return cache[clip]
    return get


def initial_weights() -> dict:
    from trainer.config.parse_config import ConfigParser

    config = ConfigParser(load_config(DIGITS, ONE_STEP), str(DIGITS))
    return config.build_all().model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("launcher, batch, accumulate, clip", [
    ("torchrun", 16, 1, 0),      # DDP: 2 ranks x 16 = one batch of 32
    ("torchrun", 8, 2, 0.05),    # DDP with no_sync on the first of 2 micro-batches, clipped
    ("python", 16, 2, 0),        # one process, 2 micro-batches of 16
])
def test_one_step_equals_one_single_process_step_of_32(one_step_reference, save_dir, launcher,
                                                       batch, accumulate, clip):
    args = ["-c", DIGITS, *ONE_STEP, f"data_loader.args.batch_size={batch}",
            f"trainer.accumulate_steps={accumulate}", f"trainer.clip_grad_norm={clip}"]
    if launcher == "torchrun":
        # and early stopping ends every rank together: val_loss falls, so 'max' stops at 2
        r = ddp_train(*args, "trainer.epochs=5", "trainer.save_period=1",
                      "trainer.monitor=max val_loss",
                      "trainer.early_stop=1", save_dir=save_dir)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "early stop after epoch 2" in r.stdout
        assert not (only_run(save_dir, "digits_mlp") / "checkpoint-epoch3.pth").exists()
    else:
        assert train_here(*args, save_dir=save_dir) == 0
    got = load(only_run(save_dir, "digits_mlp") / "checkpoint-epoch1.pth")["model_state_dict"]
    want = one_step_reference(clip)["model_state_dict"]
    init = initial_weights()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
    assert not torch.equal(got["output.weight"], init["output.weight"])


@pytest.mark.slow
def test_clip_grad_norm_bounds_the_step(one_step_reference):
    init = initial_weights()
    lr, clip = 0.1, 0.05
    clipped = one_step_reference(clip)["model_state_dict"]
    free = one_step_reference(0)["model_state_dict"]
    params = [k for k in init if k not in ("input_mean", "input_std")]

    def step_norm(state: dict) -> float:
        return float(torch.sqrt(sum(((state[k] - init[k]) ** 2).sum() for k in params)))

    assert step_norm(free) > lr * clip * 2  # the unclipped gradient is larger than the bound
    assert step_norm(clipped) == pytest.approx(lr * clip, rel=1e-4)


# ---------------------------------------------------------------- resume, interrupts, failures

@pytest.mark.slow
def test_sigterm_stops_every_rank_and_mid_epoch_resume_is_exact(ddp_run, save_dir, capsys):
    proc = subprocess.Popen(torchrun_cmd("train.py", *RUN_ARGS, "trainer.epochs=300",
                                         f"trainer.save_dir={save_dir}"),
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for("models/digits_mlp/*/checkpoint-epoch1.pth", save_dir, proc)
    proc.send_signal(signal.SIGTERM)  # to the launcher, which passes it on to every rank
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert err.count("interrupted by SIGTERM") == 2  # both ranks stopped and exited by themselves
    run = only_run(save_dir, "digits_mlp")
    partial = load(run / "checkpoint-interrupted.pth")["partial_epoch"]
    assert partial["world_size"] == 2 and partial["batches_done"] % 10 == 0
    epoch = partial["epoch"]
    assert epoch <= 3, "stopped later than the straight run goes; the machine is too slow"

    # a mid-epoch checkpoint resumes with the same world size only
    assert train_here("-r", run / "checkpoint-interrupted.pth", f"trainer.epochs={epoch}",
                      save_dir=save_dir) == 2
    assert "the number of processes (world size) 2 -> 1" in capsys.readouterr().err
    r = ddp_train("-r", run / "checkpoint-interrupted.pth", f"trainer.epochs={epoch}",
                  save_dir=save_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    a = load(ddp_run[0] / f"checkpoint-epoch{epoch}.pth")
    b = load(run / f"checkpoint-epoch{epoch}.pth")
    assert_same_weights(a["model_state_dict"], b["model_state_dict"])
    assert history_rows(a) == [{**h, "seconds": history_rows(a)[i]["seconds"]}
                            for i, h in enumerate(history_rows(b))]


@pytest.mark.slow
def test_killing_one_rank_ends_the_run_with_an_error(save_dir):
    args = [*RUN_ARGS, "trainer.epochs=1000", f"trainer.save_dir={save_dir}"]
    proc = subprocess.Popen(torchrun_cmd("train.py", *args), cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for("models/digits_mlp/*/checkpoint-epoch1.pth", save_dir, proc)
    workers = {rank_of(p): p for p in child_pids(proc.pid)}
    assert set(workers) == {0, 1}, workers
    start = time.monotonic()
    os.kill(workers[1], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run hung after one rank died")
    assert proc.returncode != 0
    assert time.monotonic() - start < 90
    assert "Signals.SIGKILL" in err or "SIGKILL" in err or "exitcode" in err


@pytest.mark.slow
def test_two_node_loopback_launch_matches_standalone(ddp_run, save_dir):
    port = free_port()
    procs = []
    for node in (0, 1):
        launch = ("--nnodes=2", f"--node_rank={node}", "--master_addr=127.0.0.1",
                  f"--master_port={port}")
        cmd = torchrun_cmd("train.py", *RUN_ARGS, "trainer.epochs=1",
                           f"trainer.save_dir={save_dir}", nproc=1, launch=launch)
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    run = only_run(save_dir, "digits_mlp")
    # world size 2 either way: the same data shards, the same weights
    assert_same_weights(load(run / "checkpoint-epoch1.pth")["model_state_dict"],
                        load(ddp_run[0] / "checkpoint-epoch1.pth")["model_state_dict"])


# ---------------------------------------------------------------- AMP and config errors

def test_amp_bf16_trains_on_cpu(save_dir, tmp_path):
    assert train_here("-c", DIGITS, "trainer.amp=bf16", "trainer.epochs=3",
                      save_dir=save_dir) == 0
    run = only_run(save_dir, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch3.pth")
    assert ckpt["grad_scaler_state_dict"] is None
    assert ckpt["model_state_dict"]["output.weight"].dtype == torch.float32
    assert history_rows(ckpt)[-1]["val_accuracy"] > 0.7
    assert script_main("test")(["-r", str(run / "checkpoint-epoch3.pth"),
                                "--output", str(tmp_path / "t.json")]) == 0
    # test.py evaluates with the run's autocast: it reproduces the validation exactly
    assert {f"val_{k}": v for k, v in single_process_evaluation(
        run / "checkpoint-epoch3.pth", "valid", "bf16").items()} == \
        {k: v for k, v in history_rows(ckpt)[-1].items() if k.startswith("val_")}


@pytest.mark.parametrize("override, key", [
    ("trainer.amp=fp16", "trainer.amp"),  # CPU run: fp16 needs CUDA
    ("trainer.amp=fp32", "trainer.amp"),
    ("trainer.accumulate_steps=0", "trainer.accumulate_steps"),
    ("trainer.clip_grad_norm=-1", "trainer.clip_grad_norm"),
    ("trainer.clip_grad_norm=big", "trainer.clip_grad_norm"),
])
def test_bad_scale_out_settings_fail_up_front(save_dir, capsys, override, key):
    if override == "trainer.amp=fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is valid where CUDA is present")
    assert train_here("-c", DIGITS, override, save_dir=save_dir) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error:") and key in lines[-1], lines
    assert not save_dir.exists()


def test_scale_out_keys_have_defaults_and_yaml_off_means_off():

    trainer = load_config(DIGITS)["trainer"]
    assert (trainer["amp"], trainer["accumulate_steps"], trainer["clip_grad_norm"]) == \
        ("off", 1, 0)
    assert load_config(DIGITS, ["trainer.amp=off"])["trainer"]["amp"] == "off"  # YAML: false
    assert load_config(DIGITS, ["trainer.amp=bf16"])["trainer"]["amp"] == "bf16"


# ---------------------------------------------------------------- CUDA (skipped without GPUs)

@pytest.mark.slow
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_trains_and_keeps_scaler_state(save_dir, amp):
    r = train("-c", DIGITS, "n_gpu=1", f"trainer.amp={amp}", "trainer.epochs=3",
              save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    ckpt = load(only_run(save_dir, "digits_mlp") / "checkpoint-epoch3.pth")
    assert (ckpt["grad_scaler_state_dict"] is not None) == (amp == "fp16")
    assert history_rows(ckpt)[-1]["val_accuracy"] > 0.7


@pytest.mark.slow
@needs_2_gpus
def test_nccl_run_validation_equals_single_process(save_dir):
    r = ddp_train("-c", DIGITS, "n_gpu=1", "trainer.epochs=2", save_dir=save_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(nccl)" in r.stdout
    run = only_run(save_dir, "digits_mlp")
    ckpt = load(run / "checkpoint-epoch2.pth")
    single = single_process_evaluation(run / "checkpoint-epoch2.pth", "valid")
    assert history_rows(ckpt)[-1]["val_accuracy"] == pytest.approx(single["accuracy"])


@pytest.mark.slow
@needs_2_gpus
def test_data_parallel_warns_and_recommends_torchrun(save_dir):
    r = train("-c", DIGITS, "n_gpu=2", "trainer.epochs=1", save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    assert "torchrun" in r.stdout + r.stderr
    assert len(run_dirs(save_dir, "digits_mlp")) == 1
