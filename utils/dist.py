"""torch.distributed helpers: set-up from torchrun's environment, rank checks, reductions.

A run is distributed when torchrun (or any launcher setting the same
variables) starts it with WORLD_SIZE > 1. Then every process is one rank:
CPU ranks talk over 'gloo', GPU ranks over 'nccl' with one GPU each
(cuda:LOCAL_RANK). Without those variables every helper here is a no-op
that answers as a single process would, so callers need no branches.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from utils.errors import RunError

# how long a rank waits in a collective for the others before failing
TIMEOUT = timedelta(seconds=int(os.environ.get("TRAIN_DIST_TIMEOUT", "300")))


def launched_distributed() -> bool:
    """True when a launcher (torchrun) asks for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes files and logs."""
    return get_rank() == 0


def prepare_device(n_gpu_use: int) -> tuple[torch.device, list[int]]:
    """The device to use and the GPU ids for DataParallel (the template's behaviour).

    Asking for more GPUs than exist warns and uses what exists; none -> CPU.
    """
    logger = logging.getLogger("train.device")
    n_gpu = torch.cuda.device_count()
    if n_gpu_use > 0 and n_gpu == 0:
        logger.warning("warning: n_gpu is %d but no GPU is available here; training on the CPU",
                       n_gpu_use)
        n_gpu_use = 0
    if n_gpu_use > n_gpu:
        logger.warning("warning: n_gpu is %d but only %d GPUs are available; using %d",
                       n_gpu_use, n_gpu, n_gpu)
        n_gpu_use = n_gpu
    device = torch.device("cuda:0" if n_gpu_use > 0 else "cpu")
    return device, list(range(n_gpu_use))


def use_pinned_memory(device: torch.device, *loaders) -> None:
    """On CUDA, batches come from pinned host memory so copies can be non-blocking."""
    if device.type != "cuda":
        return
    for loader in loaders:
        if loader is not None:
            loader.pin_memory = True


def setup_device(n_gpu: int) -> tuple[torch.device, list[int]]:
    """The device of this process and the GPU ids for DataParallel.

    Under torchrun this joins the process group first: with `n_gpu` > 0 and
    CUDA present, rank LOCAL_RANK takes cuda:LOCAL_RANK and the backend is
    nccl; otherwise the rank runs on the CPU with gloo. A single process
    keeps the template's behaviour (prepare_device).
    """
    if not launched_distributed():
        return prepare_device(n_gpu)
    if is_distributed():
        return _current_device(), []
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = n_gpu > 0 and torch.cuda.is_available()
    if n_gpu > 0 and not use_cuda:
        logging.getLogger("train.device").warning(
            "warning: n_gpu is %d but no GPU is available here; every rank runs on the CPU", n_gpu)
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RunError(f"LOCAL_RANK {local_rank} has no GPU: only "
                           f"{torch.cuda.device_count()} visible (-d / CUDA_VISIBLE_DEVICES); "
                           "use --nproc_per_node at most the number of GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return device, []


def backend_name() -> str:
    return dist.get_backend() if is_distributed() else "none"


def launch_command(script: str = "train.py") -> str:
    """How to start `script` again with this run's number of processes."""
    if not is_distributed():
        return f"python {script}"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))
    nodes = get_world_size() // max(local, 1)
    if nodes > 1:
        return f"torchrun --nnodes={nodes} --nproc_per_node={local} --rdzv-endpoint=... {script}"
    return f"torchrun --standalone --nproc_per_node={local} {script}"


def _current_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cleanup() -> None:
    """Tear down the process group, first freeing what still holds it (DDP's reducer)."""
    if is_distributed():
        gc.collect()
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """Leave a torchrun worker without interpreter finalization.

    gloo's worker threads can abort the process (SIGABRT, "terminate called without an
    active exception") when their objects are destroyed during finalization, after the
    run has finished and saved; flushing and os._exit skips that stage.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` (already on `device`)."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard_loaders(*loaders) -> None:
    """Give each rank its disjoint share of every epoch of each loader (None skipped)."""
    if not is_distributed():
        return
    for loader in loaders:
        if loader is not None:
            loader.shard(get_rank(), get_world_size())


def is_sharded(loader) -> bool:
    sampler = getattr(loader, "batch_sampler", None)
    return getattr(sampler, "world_size", 1) > 1


def quiet_unless_main(logger: logging.Logger) -> None:
    """On ranks other than 0, the console shows errors only (rank 0 reports the run)."""
    if is_main():
        return
    for handler in logger.handlers:
        handler.setLevel(logging.ERROR)


# ---------------------------------------------------------------- collectives

def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (small picklable values: paths, ids)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def sync_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Rank `src`'s buffers (BatchNorm running statistics) on every rank.

    DDP broadcasts them at the start of each training forward, but each rank
    then updates its own copy on its own batch; evaluating, every rank must
    use the buffers the checkpoint (written by rank 0) holds.
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src)


def max_int(value: int, device: torch.device | None = None) -> int:
    """The largest `value` over all ranks (used to agree on stopping)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device or _current_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_reduce_sum(tensors: dict[str, torch.Tensor],
                   device: torch.device) -> dict[str, torch.Tensor]:
    """Every rank's tensors added up, key by key, in one all_reduce of a fixed size.

    The tensors (counts and float64 sums) travel as one float64 vector (counts
    stay exact up to 2**53). A tensor may be empty on a rank that has not seen
    its first batch (its size comes from the data): a small all_reduce of the
    sizes first lets such a rank contribute zeros of the others' size.
    """
    keys = list(tensors)
    sizes = torch.tensor([tensors[k].numel() for k in keys], dtype=torch.int64, device=device)
    dist.all_reduce(sizes, op=dist.ReduceOp.MAX)
    parts = []
    for k, size in zip(keys, sizes.tolist()):
        t = tensors[k].to(device)
        parts.append(t.double().reshape(-1) if t.numel() else
                     torch.zeros(size, dtype=torch.float64, device=device))
    flat = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=device)
    dist.all_reduce(flat)
    out, start = {}, 0
    for k, size in zip(keys, sizes.tolist()):
        t = tensors[k]
        shape = t.shape if t.numel() else (size,)
        out[k] = flat[start:start + size].reshape(shape).to(t.dtype)
        start += size
    return out


def gather_outputs(outputs: list[torch.Tensor], targets: list[torch.Tensor],
                   device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every rank's outputs and targets, in rank order (plain function metrics only: this
    sends the whole epoch's outputs, which is why the built-in metrics keep state instead)."""
    mine = (torch.cat(outputs).cpu(), torch.cat(targets).cpu()) if outputs else None
    parts: list[Any] = [None] * get_world_size()
    dist.all_gather_object(parts, mine)
    present = [p for p in parts if p is not None]
    return [p[0].to(device) for p in present], [p[1].to(device) for p in present]
