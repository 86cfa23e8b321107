"""Metrics by name, as mergeable state (base/base_metric.py): exact over the epoch.

Each metric keeps a fixed-size state on the device, updated per batch without
a host sync: hit counts for accuracy and top-k, a confusion matrix for the
macro-averaged precision, recall and F1, float64 sums for the regression
metrics. The value is computed once per epoch (no averaging of per-batch
ratios) and equals its scikit-learn counterpart on all the epoch's predictions
(tests/test_metrics_state.py checks it, in one process and across ranks).

Classification: output (N, C) scores or logits, target (N,) int64 class ids.
Regression: output and target (N, k) float (k = 1 for one target; (N,) is
read as (N, 1)); with k > 1 the per-target values are averaged, as
scikit-learn's multioutput='uniform_average' does.

A plain function metric(output, target) -> float written here works too; it is
the one kind that keeps the epoch's outputs (the log says so).
"""

from __future__ import annotations

import torch

from base.base_metric import BaseMetric


def _zero() -> torch.Tensor:
    return torch.zeros((), dtype=torch.int64)


def _empty(dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """A state whose size the first batch sets (the number of classes or of targets)."""
    return torch.zeros(0, dtype=dtype)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    return (num.double() / den.double()).item() if int(den) else float("nan")


class Accuracy(BaseMetric):
    name = "accuracy"

    def reset(self) -> None:
        self.state = {"correct": _zero(), "n": _zero()}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.state["correct"] += (output.argmax(dim=1) == target).sum()
        self.state["n"] += len(target)

    def compute(self) -> float:
        return _ratio(self.state["correct"], self.state["n"])


class TopKAccuracy(BaseMetric):
    """A hit when the target is among the k highest scores (k at most the class count)."""

    name = "top_k_acc"

    def __init__(self, k: int = 3) -> None:
        self.k = k
        super().__init__()

    def reset(self) -> None:
        self.state = {"hits": _zero(), "n": _zero()}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        pred = output.topk(min(self.k, output.shape[1]), dim=1).indices
        self.state["hits"] += (pred == target.unsqueeze(1)).any(dim=1).sum()
        self.state["n"] += len(target)

    def compute(self) -> float:
        return _ratio(self.state["hits"], self.state["n"])


# ------------------------------------------------------------ classification, macro averaged

class ConfusionMatrix(BaseMetric):
    """Counts of (true class, predicted class), C x C, stored flat; C from the first batch.
    A building block (no config name): the macro metrics below and test.py's report use it."""

    def reset(self) -> None:
        self.state = {"counts": _empty()}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        if output.ndim != 2 or output.shape[1] < 2 or target.is_floating_point():
            return  # not a classification batch (test.py's report counts every model's)
        n_class = output.shape[1]
        counts = self.state["counts"]
        if counts.numel() == 0:
            counts = self.state["counts"] = torch.zeros(n_class * n_class, dtype=torch.int64,
                                                        device=output.device)
        cells = target * n_class + output.argmax(dim=1)
        counts.index_add_(0, cells, torch.ones_like(cells))

    def matrix(self) -> torch.Tensor:
        counts = self.state["counts"]
        n_class = round(counts.numel() ** 0.5)
        return counts.view(n_class, n_class)

    def per_class(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tp, fp, fn per class, over the classes present in the targets or the predictions
        (the labels scikit-learn averages over by default)."""
        m = self.matrix().double()
        tp, predicted, actual = m.diagonal(), m.sum(dim=0), m.sum(dim=1)
        present = (predicted + actual) > 0
        return tp[present], (predicted - tp)[present], (actual - tp)[present]

    def compute(self) -> float:
        """Accuracy from the counts (this class is mostly used for its matrix)."""
        m = self.matrix()
        return _ratio(m.diagonal().sum(), m.sum())


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, with 0 where den is 0 (scikit-learn's zero_division=0)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


class PrecisionMacro(ConfusionMatrix):
    name = "precision_macro"

    def compute(self) -> float:
        tp, fp, _ = self.per_class()
        return _safe_ratio(tp, tp + fp).mean().item()


class RecallMacro(ConfusionMatrix):
    name = "recall_macro"

    def compute(self) -> float:
        tp, _, fn = self.per_class()
        return _safe_ratio(tp, tp + fn).mean().item()


class F1Macro(ConfusionMatrix):
    name = "f1_macro"

    def compute(self) -> float:
        tp, fp, fn = self.per_class()
        return _safe_ratio(2 * tp, 2 * tp + fp + fn).mean().item()


# ------------------------------------------------------------ regression

class RegressionSums(BaseMetric):
    """float64 per-target sums: squared and absolute errors, y and y squared, and the count.
    A building block (no config name) of the regression metrics below."""

    def reset(self) -> None:
        self.state = {"sse": _empty(torch.float64), "sae": _empty(torch.float64),
                      "sy": _empty(torch.float64), "syy": _empty(torch.float64), "n": _zero()}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        n = len(target)
        pred = output.detach().double().reshape(n, -1)
        true = target.double().reshape(n, -1)
        err = pred - true
        for key, value in (("sse", (err * err).sum(dim=0)), ("sae", err.abs().sum(dim=0)),
                           ("sy", true.sum(dim=0)), ("syy", (true * true).sum(dim=0))):
            if self.state[key].numel() == 0:
                self.state[key] = value
            else:
                self.state[key] += value
        self.state["n"] += n

    def compute(self) -> float:
        """Mean squared error (the subclasses give the others)."""
        return (self.state["sse"] / self.state["n"]).mean().item()


class MSE(RegressionSums):
    name = "mse"


class RMSE(RegressionSums):
    name = "rmse"

    def compute(self) -> float:
        return (self.state["sse"] / self.state["n"]).sqrt().mean().item()


class MAE(RegressionSums):
    name = "mae"

    def compute(self) -> float:
        return (self.state["sae"] / self.state["n"]).mean().item()


class R2(RegressionSums):
    """Coefficient of determination; a constant target column scores 1 if predicted exactly,
    else 0 (scikit-learn's force_finite). The total sum of squares comes from the sums of y
    and y squared; a column whose spread is below 1e-12 of its sum of squares counts as
    constant."""

    name = "r2"

    def compute(self) -> float:
        s = self.state
        ss_tot = s["syy"] - s["sy"] * s["sy"] / s["n"]
        varies = ss_tot > 1e-12 * s["syy"]
        score = torch.where(varies, 1 - s["sse"] / torch.where(varies, ss_tot,
                                                               torch.ones_like(ss_tot)),
                            (s["sse"] == 0).double())
        return score.mean().item()
