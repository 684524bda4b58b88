"""The reference 1-D CNN encoder of DESIGN.md (state-dict keys fixed: checkpoints load across tools)."""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.models.layout import CONTIGUOUS, BatchNorm1d, Conv1d, from_layout, to_layout

# (in_channels as a multiple of width or the input, out as a multiple of width, kernel, stride)
_BLOCKS = ((None, 1, 11, 2), (1, 1, 7, 1), (1, 2, 7, 2), (2, 2, 5, 1), (2, 4, 5, 2), (4, 4, 3, 1))


class ConvBlock(nn.Module):
    """Conv1d (no bias, 'same' padding k // 2) -> BatchNorm1d -> ReLU, as ``self.block``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            BatchNorm1d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ECGEncoder1DCNN(nn.Module):
    """Six conv blocks, 12 -> 64 -> 64 -> 128 -> 128 -> 256 -> 256 channels, total stride 8.

    ``forward`` returns the representation: the global average over time of the
    last feature map, (B, 256); ``forward_features`` returns the map (B, 256, T/8).
    ``memory_format``: the layout the convolutions run in (``ecgfast.models.layout``).
    """

    def __init__(self, in_ch: int = 12, width: int = 64):
        super().__init__()
        blocks = []
        for cin, cout, k, s in _BLOCKS:
            blocks.append(ConvBlock(in_ch if cin is None else cin * width, cout * width, k, s))
        self.features = nn.Sequential(*blocks)
        self.out_channels = 4 * width
        self.memory_format = CONTIGUOUS

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return from_layout(self.features(to_layout(x, self.memory_format)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=-1)
