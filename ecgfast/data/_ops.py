"""``ecgfast::gather_dequantize``: rows of int16 storage to float32 mV in one pass.

Which implementation serves a call is the one backend policy of every op
(:func:`ecgfast.base.extension.op_backend`, ``ECGFAST_BACKEND``): the compiled op where
the build has a kernel for the tensor's device and ``torch`` was not asked for;
elsewhere the plain-torch path, with the same arithmetic (bit-identical) and the same
argument checks. (There is no Numba gather: ``numba`` takes the compiled op.) Both read
``raw`` where it is, whatever its strides: only the gathered rows are read.
"""
from __future__ import annotations

import torch

from ecgfast.base.extension import EXTENSION_AVAILABLE, op_backend


def gather_dequantize_reference(raw: torch.Tensor, index: torch.Tensor, gain: torch.Tensor,
                                baseline: torch.Tensor) -> torch.Tensor:
    """Plain-torch version: ``(raw[index] - baseline[:, None]) / gain[:, None]``."""
    return (raw.index_select(0, index).float() - baseline[:, None]) / gain[:, None]


def _check_same_device(raw, index, gain, baseline):
    torch._check(raw.device == index.device == gain.device == baseline.device,
                 lambda: f"gather_dequantize: all tensors must be on one device, got raw on {raw.device}, index on "
                         f"{index.device}, gain on {gain.device} and baseline on {baseline.device}")


if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::gather_dequantize")
    def _(raw, index, gain, baseline):
        _check_same_device(raw, index, gain, baseline)
        torch._check(raw.dim() == 3)
        return raw.new_empty((index.shape[0], raw.shape[1], raw.shape[2]), dtype=torch.float32)

    @torch.library.register_fake("ecgfast::gather_dequantize.out")
    def _(raw, index, gain, baseline, *, out):
        _check_same_device(raw, index, gain, baseline)
        torch._check(raw.dim() == 3 and out.shape == (index.shape[0], raw.shape[1], raw.shape[2]))


def _check_args(raw, index, gain, baseline, out):
    """The compiled kernels' checks (csrc/data/gather_dequantize.h), for the plain path."""
    def check(ok, message):
        if not ok:
            raise RuntimeError(f"gather_dequantize: {message}")

    _check_same_device(raw, index, gain, baseline)
    check(raw.dim() == 3, f"raw must be (N, C, T), got {raw.dim()} dims")
    check(raw.dtype == torch.int16, f"raw must be int16, got {raw.dtype}")
    check(index.dim() == 1 and index.dtype == torch.int64, "index must be a 1-D int64 tensor")
    C = raw.shape[1]
    check(gain.shape == (C,) and gain.dtype == torch.float32, f"gain must be float32 of shape ({C},)")
    check(baseline.shape == (C,) and baseline.dtype == torch.float32, f"baseline must be float32 of shape ({C},)")
    if out is not None:
        check(out.device == raw.device, f"out must be on {raw.device}, got {out.device}")
        check(out.dtype == torch.float32, f"out must be float32, got {out.dtype}")
        shape = (index.shape[0], C, raw.shape[2])
        check(out.shape == shape, f"out must have shape {shape}, got {tuple(out.shape)}")
        check(out.is_contiguous(), "out must be contiguous")
    if index.device.type == "cpu" and index.numel():  # elsewhere reading it would wait for the device
        bad = index[(index < 0) | (index >= raw.shape[0])]
        check(bad.numel() == 0, f"index {int(bad[0]) if bad.numel() else 0} out of range for {raw.shape[0]} records")


def gather_dequantize(raw: torch.Tensor, index: torch.Tensor, gain: torch.Tensor,
                      baseline: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``(raw[index] - baseline) / gain`` as float32 of shape (B, C, T).

    raw: (N, C, T) int16, any strides; index: (B,) int64; gain, baseline: (C,)
    float32; all on one device; out: an optional contiguous float32 (B, C, T)
    tensor to write into (and return).
    """
    op = "gather_dequantize" if out is None else "gather_dequantize.out"
    if op_backend(op, raw.device) == "cpp":
        if out is None:
            return torch.ops.ecgfast.gather_dequantize(raw, index, gain, baseline)
        torch.ops.ecgfast.gather_dequantize.out(raw, index, gain, baseline, out=out)
        return out
    _check_args(raw, index, gain, baseline, out)
    if out is None:
        return gather_dequantize_reference(raw, index, gain, baseline)
    # Same arithmetic as the reference (int16 promoted to float32, then divided), written in place.
    torch.sub(raw.index_select(0, index), baseline[:, None], out=out)
    return out.div_(gain[:, None])
