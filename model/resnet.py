"""A CIFAR-style ResNet: a backbone for small images without torchvision.

Parameter names are stable so that configs can address parts of the model:
`stem.*` (the 3x3 stem), `stages.<i>.*` (stage i, 0-based), `fc.*` (the head):
`arch.pretrained.skip: ["fc.*"]` drops a head, `optimizer.param_groups` with
`params: "stages.0.*"` gives the first stage its own learning rate
(docs/transfer.md).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from base import BaseModel
from model.weight_init import freeze as freeze_parts


class BasicBlock(nn.Module):
    """Two 3x3 Conv-BatchNorm layers with a shortcut (1x1 Conv-BatchNorm when the shape
    changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _image_size(image_size: int | list[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(f"image_size must be a positive integer or [height, width], "
                         f"got {image_size!r}")
    return size[0], size[1]


class ResNet(BaseModel):
    """CIFAR-style ResNet: a 3x3 stem (Conv-BatchNorm-ReLU, `width` channels, no max-pool),
    then one stage of BasicBlocks per entry of `depths`; stage i has width * 2**i channels
    and halves the resolution (stride 2) from stage 1 on; global average pooling and the
    Linear head `fc`.

    Inputs are images (batch, in_channels, height, width). With `image_size` (an int or
    [height, width]) they may also come flat (batch, in_channels*height*width), as
    DigitsDataLoader gives them, and the input standardization is per pixel (buffers of
    shape (in_channels, height, width)); per-channel statistics are spread over the
    pixels. Without it the standardization is per channel (buffers (in_channels, 1, 1)).
    `freeze`: module or parameter names whose weights do not train ('stem', 'stages.0').
    """

    def __init__(self, in_channels: int = 3, out_features: int = 10,
                 depths: list[int] | None = None, width: int = 64,
                 image_size: int | list[int] | None = None, dropout: float = 0.0,
                 freeze: list[str] | None = None):
        depths = [2, 2, 2, 2] if depths is None else list(depths)
        if not depths or not all(isinstance(d, int) and d >= 1 for d in depths):
            raise ValueError(f"depths must be a non-empty list of positive integers, got "
                             f"{depths!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        size = _image_size(image_size)
        self.image_shape = None if size is None else (in_channels, *size)
        super().__init__(input_shape=self.image_shape or (in_channels, 1, 1))
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, channels = [], width
        for i, depth in enumerate(depths):
            out = width * 2 ** i
            blocks = [BasicBlock(channels, out, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(out, out) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = out
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, out_features)
        self._init_weights()
        freeze_parts(self, freeze)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-pixel statistics, or per-channel ones (spread over every pixel)."""
        channels = self.input_mean.shape[0]
        if mean.numel() == channels and self.input_mean.numel() != channels:
            shape = (channels, 1, 1)
            mean = mean.reshape(shape).expand_as(self.input_mean)
            std = std.reshape(shape).expand_as(self.input_std)
        super().set_standardization(mean.reshape(-1), std.reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            if self.image_shape is None:
                raise ValueError("ResNet got flat inputs: give arch.args.image_size to take "
                                 "them, or feed images (batch, channels, height, width)")
            x = x.reshape(len(x), *self.image_shape)
        x = self.standardize(x)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
