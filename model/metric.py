"""Metrics by name: functions of (output, target) over a whole epoch.

The trainer calls each metric once per epoch on the concatenated outputs and
targets of every batch, so the result is exact (no averaging of per-batch
ratios). A metric returns a Python float.
"""

import torch


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    pred = output.argmax(dim=1)
    return (pred == target).float().mean().item()


def top_k_acc(output: torch.Tensor, target: torch.Tensor, k: int = 3) -> float:
    k = min(k, output.shape[1])
    pred = output.topk(k, dim=1).indices
    return (pred == target.unsqueeze(1)).any(dim=1).float().mean().item()
