"""The encoders' memory format: the same network on NCW tensors (``contiguous``) or channels-last.

oneDNN (CPU) and cuDNN's tensor-core kernels compute convolutions on channels-last
(NHWC) tensors; a ``Conv1d`` on an NCW tensor makes them reorder input, output and
gradients on every call. In ``channels-last`` an encoder runs as the same network
written in 2-D: its input (B, C, T) becomes (B, C, 1, T) in ``torch.channels_last``
(memory order B, T, C), every convolution is a ``conv2d`` with a 1 x k kernel whose
weight is a view of the ``Conv1d`` weight (``weight.unsqueeze(2)``), every
BatchNorm/pooling layer its 2-D twin, and the last feature map is squeezed back
to (B, C, T). The parameters stay the ``Conv1d``/``BatchNorm1d`` ones, so state
dicts, checkpoints, optimiser state and exported models are the same in both
formats: a checkpoint written under one loads under the other.

The layers below are ``nn.Conv1d``/``BatchNorm1d``/``MaxPool1d``/``AvgPool1d``
subclasses (same keys, same shapes) that accept either layout; a backbone holds a
``memory_format`` attribute and puts its input in that layout at the start of
``forward_features`` (:func:`to_layout`) and its output back (:func:`from_layout`).
:func:`set_memory_format` switches every encoder inside a model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ecgfast.base.errors import ConfigError

MEMORY_FORMATS = ("auto", "channels-last", "contiguous")
CHANNELS_LAST, CONTIGUOUS = "channels-last", "contiguous"


def check_memory_format(value, where: str = "--memory-format") -> str:
    """``value`` if it is one of ``MEMORY_FORMATS``, else a ``ConfigError`` listing them."""
    if value not in MEMORY_FORMATS:
        raise ConfigError(f"{where} {value!r}: unknown memory format; expected one of {', '.join(MEMORY_FORMATS)}")
    return value


def resolve_memory_format(fmt: str, device: torch.device | str, precision: str = "fp32") -> str:
    """``channels-last`` or ``contiguous``: ``fmt`` itself, or for ``auto`` the faster one measured on that
    device class and precision (BENCHMARKS.md, "Memory format and the roofline"):

    - CPU, fp32: channels-last (oneDNN's brgemm convolutions on the tensors as they are, instead of
      reordering every input, output and gradient to its blocked layout): 1.34x the step on a Zen 4;
    - CPU, bf16: channels-last (1.19x on the Zen 4, AVX512-BF16 without AMX, at low load; 1.5x on an AMX
      Xeon as measured for issue 18); fp16 autocast on the CPU likewise;
    - CUDA: channels-last (cuDNN's tensor-core convolutions are NHWC kernels; not yet measured here).

    ``device`` and ``precision`` are the keys of that table; every entry is channels-last today, and
    ``contiguous`` remains the explicit choice (the layout before, and the reference in the tests).
    """
    check_memory_format(fmt)
    if fmt != "auto":
        return fmt
    torch.device(device)  # a bad device string fails here, as it would in training
    return CHANNELS_LAST


def to_layout(x: torch.Tensor, memory_format: str) -> torch.Tensor:
    """(B, C, T) -> (B, C, 1, T) channels-last for ``channels-last``; unchanged for ``contiguous``."""
    if memory_format == "channels-last" and x.dim() == 3:  # a literal: TorchScript reads no globals
        return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    return x


def from_layout(x: torch.Tensor) -> torch.Tensor:
    """The (B, C, T) feature map of either layout (a view: channels-last memory stays as it is)."""
    if x.dim() == 4:
        return x.squeeze(2)
    return x


def set_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """Run every encoder inside ``model`` (any module with a ``memory_format`` attribute, e.g. a BYOL
    model's online and target encoders) in ``memory_format`` (resolved: channels-last or contiguous).
    Parameters are untouched. Returns ``model``."""
    if memory_format not in (CHANNELS_LAST, CONTIGUOUS):
        raise ConfigError(f"memory format {memory_format!r}: expected {CHANNELS_LAST} or {CONTIGUOUS} "
                          "(resolve 'auto' first)")
    for m in model.modules():
        if isinstance(getattr(m, "memory_format", None), str):
            m.memory_format = memory_format
    return model


def memory_format_of(model: nn.Module) -> str | None:
    """The memory format the first encoder inside ``model`` runs in (None where it has none)."""
    for m in model.modules():
        if isinstance(getattr(m, "memory_format", None), str):
            return m.memory_format
    return None


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (zero padding) that also takes a (B, C, 1, T) input: a 1 x k ``conv2d`` on its weight's view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.conv2d(x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]), (0, self.padding[0]),
                            (1, self.dilation[0]), self.groups)
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also takes (B, C, 1, T): the statistics are per channel either way."""

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D (B, C, 1, T) input (got {input.dim()}D input)")


class MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` that also takes (B, C, 1, T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.max_pool2d(x, (1, self.kernel_size), (1, self.stride), (0, self.padding), (1, self.dilation),
                                ceil_mode=self.ceil_mode)
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode)


class AvgPool1d(nn.AvgPool1d):
    """``nn.AvgPool1d`` that also takes (B, C, 1, T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.avg_pool2d(x, (1, self.kernel_size[0]), (1, self.stride[0]), (0, self.padding[0]),
                                self.ceil_mode, self.count_include_pad)
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
