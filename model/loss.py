"""Losses by name. Any torch.nn loss class (CrossEntropyLoss, MSELoss, ...) is
also available by its class name; the functions here are the short names.

A loss takes (output, target) and returns the batch loss with reduction
'mean' (default) or 'sum'; the trainer reports the per-sample mean either way.

Regression convention: the model outputs (B, k) (out_features=k, k=1 for one
target) and the data loaders give float32 targets of the same shape (B, k).
`mse` and `l1` refuse outputs and targets of different shapes instead of
broadcasting them into a wrong loss.
"""

import torch
import torch.nn.functional as F

from utils.errors import RunError


def cross_entropy(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                  label_smoothing: float = 0.0,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """`weight`: one per class (config: a list, or auto; trainer/config/class_weights.py)."""
    return F.cross_entropy(output, target, weight=weight, reduction=reduction,
                           label_smoothing=label_smoothing)


def nll_loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
             weight: torch.Tensor | None = None) -> torch.Tensor:
    return F.nll_loss(output, target, weight=weight, reduction=reduction)


def _same_shape(name: str, output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape:
        raise RunError(f"loss {name}: model output {tuple(output.shape)} and target "
                       f"{tuple(target.shape)} differ in shape; regression targets are (batch, k) "
                       f"float32, so the model needs out_features=k")


def mse_loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error (sum over the target values with reduction 'sum')."""
    _same_shape("mse", output, target)
    return F.mse_loss(output, target, reduction=reduction)


def l1_loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error (sum over the target values with reduction 'sum')."""
    _same_shape("l1", output, target)
    return F.l1_loss(output, target, reduction=reduction)
