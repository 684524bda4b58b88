"""``inception1d``: InceptionTime (Ismail Fawaz et al. 2020) as benchmarked on PTB-XL.

Layer by layer as ``inception1d`` in ``helme/ecg_ptbxl_benchmarking``
(code/models/inception1d.py) with the configuration its ``fastai_model`` passes
(``kernel_size=8 * 5 = 40``, so branch kernels 39, 19 and 9; depth 6, bottleneck 32,
32 filters per branch, residual):

- six inception blocks: Conv1x1(C, 32) bottleneck feeding three convolutions of
  kernel 39, 19, 9 (32 filters each), and a fourth branch MaxPool1d(3, 1, 1) ->
  Conv1x1(C, 32) of the block's input; the four concatenated (128 channels) -> BN -> ReLU.
  No convolution has a bias; nothing is strided;
- after every third block a shortcut from the input of those three:
  ReLU(out + BN(Conv1x1(input))), the first one projecting the 12 leads to 128;
- concat pooling (max, mean) -> the (B, 256) representation.

The reference indexes blocks and shortcuts in two lists; here they are grouped in
stages of three blocks and one shortcut (the same layers, scriptable as written).
Initialisation: PyTorch's defaults, as the reference.
"""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.models.backbones.pooling import concat_pool
from ecgfast.models.layout import CONTIGUOUS, BatchNorm1d, Conv1d, MaxPool1d, from_layout, to_layout


def _conv(cin: int, cout: int, kernel_size: int) -> Conv1d:
    return Conv1d(cin, cout, kernel_size, padding=(kernel_size - 1) // 2, bias=False)


def branch_kernels(kernel_size: int = 40) -> tuple[int, ...]:
    """The reference's three kernel sizes from its ``kernel_size`` (each made odd): 40 -> (39, 19, 9)."""
    return tuple(k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4))


class InceptionBlock1d(nn.Module):
    def __init__(self, cin: int, filters: int = 32, kernels: tuple[int, ...] = (39, 19, 9), bottleneck: int = 32):
        super().__init__()
        self.bottleneck = _conv(cin, bottleneck, 1)
        self.convs = nn.ModuleList([_conv(bottleneck, filters, k) for k in kernels])
        self.pool_branch = nn.Sequential(MaxPool1d(3, stride=1, padding=1), _conv(cin, filters, 1))
        self.bn = BatchNorm1d((len(kernels) + 1) * filters)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bottleneck(x)
        branches: list[torch.Tensor] = []
        for conv in self.convs:
            branches.append(conv(b))
        branches.append(self.pool_branch(x))
        return self.relu(self.bn(torch.cat(branches, dim=1)))


class InceptionStage(nn.Module):
    """Three inception blocks and the residual shortcut around them."""

    def __init__(self, cin: int, filters: int, kernels: tuple[int, ...], bottleneck: int, blocks: int = 3):
        super().__init__()
        cout = (len(kernels) + 1) * filters
        self.blocks = nn.Sequential(*[InceptionBlock1d(cin if i == 0 else cout, filters, kernels, bottleneck)
                                      for i in range(blocks)])
        self.shortcut = nn.Sequential(_conv(cin, cout, 1), BatchNorm1d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.blocks(x) + self.shortcut(x))


class Inception1d(nn.Module):
    """The reference's ``inception1d`` without its classification head: (B, C_in, T) -> (B, 2 * 4 * filters)."""

    def __init__(self, in_ch: int = 12, depth: int = 6, filters: int = 32, bottleneck: int = 32,
                 kernel_size: int = 40):
        super().__init__()
        if depth % 3:
            raise ValueError(f"inception1d: depth {depth} must be a multiple of 3 (a shortcut every 3 blocks)")
        kernels = branch_kernels(kernel_size)
        cout = (len(kernels) + 1) * filters
        self.stages = nn.Sequential(*[InceptionStage(in_ch if i == 0 else cout, filters, kernels, bottleneck)
                                      for i in range(depth // 3)])
        self.feature_channels = cout
        self.out_channels = 2 * cout  # concat pooling
        self.memory_format = CONTIGUOUS  # ecgfast.models.layout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return from_layout(self.stages(to_layout(x, self.memory_format)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return concat_pool(self.forward_features(x))
