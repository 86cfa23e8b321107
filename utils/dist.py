"""torch.distributed helpers: set-up from torchrun's environment, rank checks, reductions.

A run is distributed when torchrun (or any launcher setting the same
variables) starts it with WORLD_SIZE > 1. Then every process is one rank:
CPU ranks talk over 'gloo', GPU ranks over 'nccl' with one GPU each
(cuda:LOCAL_RANK). Without those variables every helper here is a no-op
that answers as a single process would, so callers need no branches.
"""

from __future__ import annotations

import logging
import os
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
    if is_distributed():
        dist.destroy_process_group()


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


def gather_rows(x: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's `x` in rank order; the first dimension may differ between ranks."""
    if not is_distributed():
        return [x]
    world = get_world_size()
    n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    sizes = [int(c.item()) for c in counts]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[:x.shape[0]] = x
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    return [o[:s] for o, s in zip(out, sizes)]


def gather_batches(losses: list[torch.Tensor], sizes: list[int], outputs: list[torch.Tensor],
                   targets: list[torch.Tensor], device: torch.device) -> tuple[list, list, list,
                                                                                list]:
    """Every rank's per-batch results, merged in global batch order.

    Batch k of rank r is taken as global batch k * world_size + r, which is
    where an evaluation shard (EpochBatchSampler with even=False) got it
    from; so the merged lists are those of a single process reading the
    whole split, and sums over them are the same sums in the same order.
    """
    if not is_distributed():
        return losses, sizes, outputs, targets
    # ranks with no batch still need the shapes and dtypes of the others'
    meta = (tuple(outputs[0].shape[1:]), outputs[0].dtype, tuple(targets[0].shape[1:]),
            targets[0].dtype, losses[0].dtype) if losses else None
    metas = [None] * get_world_size()
    dist.all_gather_object(metas, meta)
    known = next((m for m in metas if m is not None), None)
    if known is None:
        return [], [], [], []
    out_shape, out_dtype, tgt_shape, tgt_dtype, loss_dtype = known

    def cat(parts: list[torch.Tensor], shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        if parts:
            return torch.cat(parts).to(device)
        return torch.zeros((0, *shape), dtype=dtype, device=device)

    all_losses = gather_rows(torch.stack(losses).to(device) if losses else
                             torch.zeros(0, dtype=loss_dtype, device=device))
    all_sizes = gather_rows(torch.tensor(sizes, dtype=torch.int64, device=device))
    all_outputs = gather_rows(cat(outputs, out_shape, out_dtype))
    all_targets = gather_rows(cat(targets, tgt_shape, tgt_dtype))

    per_rank = []
    for r_losses, r_sizes, r_out, r_tgt in zip(all_losses, all_sizes, all_outputs, all_targets):
        split = r_sizes.tolist()
        per_rank.append((list(r_losses.unbind()), split, list(r_out.split(split)),
                         list(r_tgt.split(split))))
    merged: tuple[list, list, list, list] = ([], [], [], [])
    for k in range(max(len(p[1]) for p in per_rank)):
        for part in per_rank:
            if k < len(part[1]):
                for dst, src in zip(merged, part):
                    dst.append(src[k])
    return merged
