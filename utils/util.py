"""Small helpers: devices."""

from __future__ import annotations

import torch

from logger.logger import get_logger


def prepare_device(n_gpu_use: int) -> tuple[torch.device, list[int]]:
    """The device to use and the GPU ids for DataParallel (the template's behaviour).

    Asking for more GPUs than exist warns and uses what exists; none -> CPU.
    """
    logger = get_logger("device")
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
