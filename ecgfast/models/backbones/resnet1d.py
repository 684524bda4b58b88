"""``resnet1d_wang``: the shallow 1-D ResNet of Wang et al. (2017) as benchmarked on PTB-XL.

Layer by layer as ``resnet1d_wang`` in ``helme/ecg_ptbxl_benchmarking``
(code/models/resnet1d.py) with the configuration its ``fastai_model`` passes
(``kernel_size=5``, so each block is convolutions of 5 and 5 // 2 + 1 = 3):

- stem: Conv1d(C_in, 128, 7, stride 1, padding 3, no bias) -> BatchNorm -> ReLU (no pooling);
- three basic blocks of 128 channels, strides 1, 2, 2: Conv(5, stride) -> BN -> ReLU
  -> Conv(3) -> BN, plus the shortcut (identity, or Conv1x1(stride) -> BN where the
  stride is 2), then ReLU;
- concat pooling (max, mean) -> the (B, 256) representation.

Total stride 4; any length >= 1 works. Initialisation: PyTorch's defaults, as the reference.
"""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.models.backbones.pooling import concat_pool
from ecgfast.models.layout import CONTIGUOUS, BatchNorm1d, Conv1d, from_layout, to_layout


def _conv(cin: int, cout: int, kernel_size: int, stride: int = 1) -> Conv1d:
    return Conv1d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False)


class BasicBlock1d(nn.Module):
    """Conv(k1, stride) -> BN -> ReLU -> Conv(k2) -> BN, added to the shortcut, -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, kernel_sizes: tuple[int, int] = (5, 3)):
        super().__init__()
        self.conv1 = _conv(cin, cout, kernel_sizes[0], stride)
        self.bn1 = BatchNorm1d(cout)
        self.conv2 = _conv(cout, cout, kernel_sizes[1])
        self.bn2 = BatchNorm1d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(Conv1d(cin, cout, 1, stride=stride, bias=False), BatchNorm1d(cout))
        else:
            self.shortcut = nn.Sequential()  # the identity (an empty Sequential scripts and exports)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet1dWang(nn.Module):
    """The reference's ``resnet1d_wang`` without its classification head: (B, C_in, T) -> (B, 2 * width)."""

    def __init__(self, in_ch: int = 12, width: int = 128, stem_kernel: int = 7, kernel_size: int = 5,
                 strides: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(_conv(in_ch, width, stem_kernel), BatchNorm1d(width), nn.ReLU(inplace=True))
        kernels = (kernel_size, kernel_size // 2 + 1)
        self.blocks = nn.Sequential(*[BasicBlock1d(width, width, s, kernels) for s in strides])
        self.feature_channels = width
        self.out_channels = 2 * width  # concat pooling
        self.memory_format = CONTIGUOUS  # ecgfast.models.layout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return from_layout(self.blocks(self.stem(to_layout(x, self.memory_format))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return concat_pool(self.forward_features(x))
