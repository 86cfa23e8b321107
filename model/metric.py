"""Metrics by name: functions of (output, target) over a whole epoch.

The trainer calls each metric once per epoch on the concatenated outputs and
targets of every batch, so the result is exact (no averaging of per-batch
ratios). A metric returns a Python float; each one equals its scikit-learn
counterpart on the same predictions (tests/test_models_data.py checks it).

Classification: output (N, C) scores or logits, target (N,) int64 class ids.
Regression: output and target (N, k) float (k = 1 for one target; (N,) is
read as (N, 1)); with k > 1 the per-target values are averaged, as
scikit-learn's multioutput='uniform_average' does.
"""

import torch


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    pred = output.argmax(dim=1)
    return (pred == target).double().mean().item()


def top_k_acc(output: torch.Tensor, target: torch.Tensor, k: int = 3) -> float:
    k = min(k, output.shape[1])
    pred = output.topk(k, dim=1).indices
    return (pred == target.unsqueeze(1)).any(dim=1).double().mean().item()


# ------------------------------------------------------------ classification, macro averaged

def _per_class_counts(output: torch.Tensor, target: torch.Tensor):
    """tp, fp, fn per class, over the classes present in the targets or the predictions
    (the labels scikit-learn averages over by default)."""
    pred = output.argmax(dim=1)
    n = int(output.shape[1])
    n = max(n, int(target.max()) + 1) if len(target) else n
    tp = torch.bincount(target[pred == target], minlength=n).double()
    predicted = torch.bincount(pred, minlength=n).double()
    actual = torch.bincount(target, minlength=n).double()
    present = (predicted + actual) > 0
    return tp[present], (predicted - tp)[present], (actual - tp)[present]


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, with 0 where den is 0 (scikit-learn's zero_division=0)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def precision_macro(output: torch.Tensor, target: torch.Tensor) -> float:
    tp, fp, _ = _per_class_counts(output, target)
    return _safe_ratio(tp, tp + fp).mean().item()


def recall_macro(output: torch.Tensor, target: torch.Tensor) -> float:
    tp, _, fn = _per_class_counts(output, target)
    return _safe_ratio(tp, tp + fn).mean().item()


def f1_macro(output: torch.Tensor, target: torch.Tensor) -> float:
    tp, fp, fn = _per_class_counts(output, target)
    return _safe_ratio(2 * tp, 2 * tp + fp + fn).mean().item()


# ------------------------------------------------------------ regression

def _columns(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64 (N, k), so the sums are exact enough to match scikit-learn."""
    n = len(target)
    return output.detach().double().reshape(n, -1), target.double().reshape(n, -1)


def mse(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = _columns(output, target)
    return ((pred - true) ** 2).mean(dim=0).mean().item()


def rmse(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = _columns(output, target)
    return ((pred - true) ** 2).mean(dim=0).sqrt().mean().item()


def mae(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = _columns(output, target)
    return (pred - true).abs().mean(dim=0).mean().item()


def r2(output: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination; a constant target column scores 1 if predicted
    exactly, else 0 (scikit-learn's force_finite)."""
    pred, true = _columns(output, target)
    ss_res = ((true - pred) ** 2).sum(dim=0)
    ss_tot = ((true - true.mean(dim=0)) ** 2).sum(dim=0)
    varies = ss_tot > 0
    score = torch.where(varies, 1 - ss_res / torch.where(varies, ss_tot, torch.ones_like(ss_tot)),
                        (ss_res == 0).double())
    return score.mean().item()
