"""BaseMetric: a metric as mergeable state, updated per batch on the device.

A metric keeps a few tensors in `self.state` (counts or float64 sums) whose
size does not grow with the number of samples; `update` adds a batch to them
without reading anything back to the host; `compute` turns them into the
epoch's value. Two metrics of the same kind merge by adding their states
tensor by tensor, so the ranks of a torchrun job merge with one all_reduce
(utils/dist.py all_reduce_sum), and a mid-epoch checkpoint stores the states.

A state tensor may start empty (numel 0) when its size is only known from
the first batch (e.g. the number of classes); merging then takes the size
from whoever has it. Write one in model/metric.py:

    class ErrorRate(BaseMetric):
        name = "error_rate"                     # the name configs use

        def reset(self):
            self.state = {"wrong": torch.zeros((), dtype=torch.int64),
                          "n": torch.zeros((), dtype=torch.int64)}

        def update(self, output, target):
            self.state["wrong"] += (output.argmax(1) != target).sum()
            self.state["n"] += len(target)

        def compute(self):
            return (self.state["wrong"].double() / self.state["n"]).item()
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import torch


class BaseMetric(ABC):
    name: str = ""  # the config name; the class name when empty
    keeps_outputs = False  # True only for metrics that need every output of the epoch
    syncs_itself = False  # True for wrapped torchmetrics metrics (they sync on compute)

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Set `self.state` to the tensors of an empty epoch."""

    @abstractmethod
    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch to the state, on the state's device, without a host sync."""

    @abstractmethod
    def compute(self) -> float:
        """The value over everything added since the last reset."""

    def fresh(self, device: torch.device) -> BaseMetric:
        """A metric of the same kind and arguments with an empty state on `device` (one per
        epoch and split: cheaper than a deep copy)."""
        metric = copy.copy(self)
        metric.reset()
        return metric.to(device)

    def to(self, device: torch.device) -> BaseMetric:
        if any(v.device != device for v in self.state.values()):
            self.state = {k: v.to(device) for k, v in self.state.items()}
        return self

    def merge(self, other: BaseMetric) -> None:
        """Add the state of `other` (the same kind of metric) to this one."""
        for key, value in other.state.items():
            mine = self.state[key]
            if value.numel() == 0:
                continue
            self.state[key] = value.clone() if mine.numel() == 0 else mine + value.to(mine.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.state = {k: v.to(device) for k, v in state.items()}

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> float:
        """The metric over one set of outputs and targets (a fresh state)."""
        self.reset()
        self.to(output.device)
        self.update(output, target)
        value = self.compute()
        self.reset()
        return value


class FunctionMetric(BaseMetric):
    """A plain function metric(output, target) -> float over the whole epoch.

    The only metric that keeps the epoch's outputs and targets (on the device
    until the epoch ends): its memory grows with the number of samples.
    """

    keeps_outputs = True

    def __init__(self, fn, name: str = "") -> None:
        self.fn, self.name = fn, name or getattr(fn, "__name__", "metric")
        super().__init__()

    def reset(self) -> None:
        self.outputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.state = {}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.outputs.append(output.detach())
        self.targets.append(target)

    def compute(self) -> float:
        if not self.outputs:
            return float("nan")
        return float(self.fn(torch.cat(self.outputs), torch.cat(self.targets)))

    def to(self, device: torch.device) -> FunctionMetric:
        self.outputs = [o.to(device) for o in self.outputs]
        self.targets = [t.to(device) for t in self.targets]
        return self

    def merge(self, other: BaseMetric) -> None:
        self.outputs += other.outputs
        self.targets += other.targets

    def state_dict(self) -> dict[str, torch.Tensor]:
        if not self.outputs:
            return {}
        return {"outputs": torch.cat(self.outputs).cpu(), "targets": torch.cat(self.targets).cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.reset()
        if state:
            self.outputs = [state["outputs"].to(device)]
            self.targets = [state["targets"].to(device)]


class TorchmetricsMetric(BaseMetric):
    """A torchmetrics Metric (the optional `metrics` extra) behind this interface.

    It keeps its own state and syncs it across ranks itself when computed
    (torchmetrics' sync_on_compute), so EpochStats leaves it out of its
    all_reduce. Use it in model/metric.py:

        class MacroAUROC(TorchmetricsMetric):
            name = "auroc"

            def __init__(self, num_classes: int = 10):
                super().__init__(torchmetrics.classification.MulticlassAUROC(num_classes))
    """

    syncs_itself = True

    def __init__(self, metric, name: str = "") -> None:
        self.metric = metric
        self.name = name or self.name or type(metric).__name__
        super().__init__()

    def fresh(self, device: torch.device) -> TorchmetricsMetric:
        metric = copy.copy(self)
        metric.metric = copy.deepcopy(self.metric)  # a torchmetrics object holds its own state
        metric.reset()
        return metric.to(device)

    def reset(self) -> None:
        self.metric.reset()
        self.state = {}

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.metric.update(output.detach(), target)

    def compute(self) -> float:
        return float(self.metric.compute())

    def to(self, device: torch.device) -> TorchmetricsMetric:
        self.metric = self.metric.to(device)
        return self

    def merge(self, other: BaseMetric) -> None:
        raise NotImplementedError("torchmetrics metrics sync themselves when computed")

    def state_dict(self) -> dict:
        return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else [t.cpu() for t in v]
                for k, v in self.metric.metric_state.items()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        for key, value in state.items():
            moved = value.to(device) if isinstance(value, torch.Tensor) else \
                [t.to(device) for t in value]
            setattr(self.metric, key, moved)
