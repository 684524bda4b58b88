"""``ecgfast::gather_dequantize``: rows of int16 storage to float32 mV in one pass."""
from __future__ import annotations

import torch

from ecgfast._extension import EXTENSION_AVAILABLE


def gather_dequantize_reference(raw: torch.Tensor, index: torch.Tensor, gain: torch.Tensor,
                                baseline: torch.Tensor) -> torch.Tensor:
    """Plain-torch version: ``(raw[index] - baseline[:, None]) / gain[:, None]``."""
    return (raw.index_select(0, index).float() - baseline[:, None]) / gain[:, None]


if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::gather_dequantize")
    def _(raw, index, gain, baseline):
        torch._check(raw.dim() == 3)
        return raw.new_empty((index.shape[0], raw.shape[1], raw.shape[2]), dtype=torch.float32)

    @torch.library.register_fake("ecgfast::gather_dequantize.out")
    def _(raw, index, gain, baseline, *, out):
        torch._check(raw.dim() == 3 and out.shape == (index.shape[0], raw.shape[1], raw.shape[2]))


def gather_dequantize(raw: torch.Tensor, index: torch.Tensor, gain: torch.Tensor,
                      baseline: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``(raw[index] - baseline) / gain`` as float32 of shape (B, C, T).

    raw: (N, C, T) int16; index: (B,) int64; gain, baseline: (C,) float32;
    out: an optional contiguous float32 (B, C, T) tensor to write into (and return).
    """
    if EXTENSION_AVAILABLE:
        if out is None:
            return torch.ops.ecgfast.gather_dequantize(raw, index, gain, baseline)
        torch.ops.ecgfast.gather_dequantize.out(raw, index, gain, baseline, out=out)
        return out
    if out is None:
        return gather_dequantize_reference(raw, index, gain, baseline)
    # Same arithmetic as the reference (int16 promoted to float32, then divided), written in place.
    torch.sub(raw.index_select(0, index), baseline[:, None], out=out)
    return out.div_(gain[:, None])
