"""``xresnet1d50`` and ``xresnet1d101``: the 1-D XResNets (He et al. 2019's "bag of tricks") of the PTB-XL benchmark.

Layer by layer as ``xresnet1d50`` / ``xresnet1d101`` in ``helme/ecg_ptbxl_benchmarking``
(code/models/xresnet1d.py) with the configuration its ``fastai_model`` passes
(``kernel_size=5``; the stem's kernel is 5 too):

- stem: three Conv -> BN -> ReLU of kernel 5 (C_in -> 32 stride 2, 32 -> 32, 32 -> 64),
  then MaxPool1d(3, stride 2, padding 1);
- four stages of bottleneck blocks (3, 4, 6, 3 for the 50; 3, 4, 23, 3 for the 101),
  strides 1, 2, 2, 2. Unlike the image XResNet every stage keeps 64 hidden and 256
  output channels (the reference's ``block_szs = [64, 64, 64, 64]``). A block is
  Conv1x1 -> BN -> ReLU -> Conv(5, stride) -> BN -> ReLU -> Conv1x1 -> BN (its scale
  initialised to 0, so each block starts as the identity), added to the shortcut
  [AvgPool(2, ceil) where strided] -> [Conv1x1 -> BN where the width changes], -> ReLU;
- concat pooling (max, mean) -> the (B, 512) representation.

Total stride 32. Initialisation as the reference: Kaiming-normal convolutions, BatchNorm
scale 1 (0 at the end of each residual branch) and shift 0.
"""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.models.backbones.pooling import concat_pool
from ecgfast.models.layout import CONTIGUOUS, AvgPool1d, BatchNorm1d, Conv1d, MaxPool1d, from_layout, to_layout

DEPTHS = {"xresnet1d50": (3, 4, 6, 3), "xresnet1d101": (3, 4, 23, 3)}


def conv_bn(cin: int, cout: int, kernel_size: int, stride: int = 1, relu: bool = True,
            zero_scale: bool = False) -> nn.Sequential:
    """Conv1d (no bias, padding (k - 1) // 2) -> BatchNorm1d [-> ReLU]."""
    bn = BatchNorm1d(cout)
    nn.init.constant_(bn.weight, 0.0 if zero_scale else 1.0)
    layers = [Conv1d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False), bn]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck1d(nn.Module):
    """1x1 -> k (stride) -> 1x1 residual branch beside an average-pooled, projected shortcut."""

    expansion = 4

    def __init__(self, cin: int, hidden: int, stride: int = 1, kernel_size: int = 5):
        super().__init__()
        cout = hidden * self.expansion
        self.convs = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, kernel_size, stride),
                                   conv_bn(hidden, cout, 1, relu=False, zero_scale=True))
        shortcut = []
        if stride != 1:  # pool first, then project: the shortcut keeps every input sample's share
            shortcut.append(AvgPool1d(2, ceil_mode=True))
        if cin != cout:
            shortcut.append(conv_bn(cin, cout, 1, relu=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.convs(x) + self.shortcut(x))


class XResNet1d(nn.Module):
    """The reference's 1-D XResNet without its classification head: (B, C_in, T) -> (B, 2 * 4 * hidden)."""

    def __init__(self, depths: tuple[int, ...], in_ch: int = 12, hidden: int = 64, stem: tuple[int, ...] = (32, 32, 64),
                 kernel_size: int = 5, stem_kernel: int = 5):
        super().__init__()
        widths = (in_ch, *stem)
        self.stem = nn.Sequential(*[conv_bn(widths[i], widths[i + 1], stem_kernel, stride=2 if i == 0 else 1)
                                    for i in range(len(stem))],
                                  MaxPool1d(kernel_size=3, stride=2, padding=1))
        stages, cin = [], stem[-1]
        for i, n in enumerate(depths):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck1d(cin, hidden, stride=2 if (i > 0 and j == 0) else 1, kernel_size=kernel_size))
                cin = hidden * Bottleneck1d.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_channels = cin
        self.out_channels = 2 * cin  # concat pooling
        self.memory_format = CONTIGUOUS  # ecgfast.models.layout
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return from_layout(self.stages(self.stem(to_layout(x, self.memory_format))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return concat_pool(self.forward_features(x))


def xresnet1d50(in_ch: int = 12) -> XResNet1d:
    return XResNet1d(DEPTHS["xresnet1d50"], in_ch)


def xresnet1d101(in_ch: int = 12) -> XResNet1d:
    return XResNet1d(DEPTHS["xresnet1d101"], in_ch)
