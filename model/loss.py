"""Losses by name. Any torch.nn loss class (CrossEntropyLoss, MSELoss, ...) is
also available by its class name; the functions here are the short names.

A loss takes (output, target) and returns the batch loss with reduction
'mean' (default) or 'sum'; the trainer reports the per-sample mean either way.
"""

import torch
import torch.nn.functional as F


def cross_entropy(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(output, target, reduction=reduction, label_smoothing=label_smoothing)


def nll_loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.nll_loss(output, target, reduction=reduction)
