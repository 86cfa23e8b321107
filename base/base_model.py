"""BaseModel: an nn.Module that carries its own input standardization."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn as nn


class BaseModel(nn.Module, ABC):
    """Base class for every model.

    `input_shape` (the shape of one example's features) registers the buffers
    `input_mean` and `input_std` ahead of any layer. They travel in the
    state_dict, so a checkpoint standardizes inputs with nothing else; the
    training code fills them from the training split (`set_standardization`).
    Models whose inputs are not real-valued features (token ids) pass None.
    Subclasses call `self.standardize(x)` first in `forward`.
    """

    def __init__(self, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        if input_shape is None:
            self.input_mean = self.input_std = None
        else:
            self.register_buffer("input_mean", torch.zeros(input_shape))
            self.register_buffer("input_std", torch.ones(input_shape))

    @abstractmethod
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Forward pass logic."""
        raise NotImplementedError

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean is None:
            return x
        return (x - self.input_mean) / self.input_std

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Copy training-split statistics into the buffers (std of 0 becomes 1); statistics of
        a broadcastable shape (per channel, (C, 1, 1)) are repeated over the buffers' shape."""
        if self.input_mean is None:
            return
        shape = self.input_mean.shape
        if mean.numel() == self.input_mean.numel():
            mean, std = mean.reshape(shape), std.reshape(shape)
        elif mean.dim() == len(shape) and all(a in (1, b) for a, b in zip(mean.shape, shape)):
            mean, std = mean.expand(shape), std.expand(shape)  # per channel: (C, 1, 1)
        else:
            raise ValueError(f"the model takes inputs of shape {tuple(shape)} but the data has "
                             f"{mean.numel()} features per example")
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __str__(self) -> str:
        return super().__str__() + f"\nTrainable parameters: {self.trainable_parameters()}"
