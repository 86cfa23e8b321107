"""A small convolutional classifier for little images such as the 8x8 digits."""

from __future__ import annotations

import torch
import torch.nn as nn

from base import BaseModel
from model.model import activation_layer
from model.weight_init import freeze as freeze_parts
from model.weight_init import init_weights

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNN(BaseModel):
    """Conv blocks, then a hidden Linear and the output Linear.

    Each entry of `channels` is one block: Conv2d(kernel_size, 'same' padding),
    optional BatchNorm2d, the activation, then a 2x2 pooling ('max' or 'avg')
    while the image is still at least 2 pixels wide. Inputs may come flat
    (batch, in_channels*height*width), as DigitsDataLoader gives them, or as
    images (batch, in_channels, height, width). Per-pixel standardization is
    carried in the input_mean/input_std buffers of shape (in_channels, height, width).
    Weights are initialised with `init` (kaiming_normal on Conv and Linear by default).
    """

    def __init__(self, out_features: int = 10, in_channels: int = 1, height: int = 8,
                 width: int = 8, channels: list[int] | None = None, kernel_size: int = 3,
                 hidden: int = 128, activation: str = "ReLU", batch_norm: bool = True,
                 pooling: str = "max", dropout: float = 0.0, init: str = "kaiming_normal",
                 freeze: list[str] | None = None):
        super().__init__(input_shape=(in_channels, height, width))
        if pooling not in POOLS:
            raise ValueError(f"pooling must be one of {sorted(POOLS)}, got {pooling!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        channels = [32, 64] if channels is None else list(channels)
        self.image_shape = (in_channels, height, width)
        blocks: list[nn.Module] = []
        c, h, w = in_channels, height, width
        for out_c in channels:
            blocks.append(nn.Conv2d(c, out_c, kernel_size, padding=kernel_size // 2))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_c))
            blocks.append(activation_layer(activation))
            if min(h, w) >= 2:
                blocks.append(POOLS[pooling](2))
                h, w = h // 2, w // 2
            c = out_c
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden),
            activation_layer(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )
        init_weights(self, init)
        freeze_parts(self, freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x.reshape(len(x), *self.image_shape))
        return self.classifier(self.features(x))
