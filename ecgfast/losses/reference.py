"""The plain formulas, as usually written: the full similarity matrix. For tests, benchmarks and builds
without the compiled extension.

Like the fused ops they compute in float32 (float64 stays float64) whatever the
caller's autocast: a bf16 similarity matrix beside a float32 positive logit
turns the gradient around at low losses.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype every loss computes in, fused or plain: float64 for float64 inputs, else float32
    (bf16/fp16 computed in float32)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def contiguous_like(*tensors) -> tuple[torch.Tensor, ...]:
    """Fakes of the backward kernels' outputs: new contiguous tensors of their inputs' shapes and dtypes,
    whatever the inputs' strides."""
    return tuple(t.new_empty(t.shape) for t in tensors)


def _float32_without_autocast(*tensors):
    """The context that turns autocast off on the tensors' device, and the tensors in float32 (or float64)."""
    device_type = next(t for t in tensors if t is not None).device.type
    off = (torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda")
           else contextlib.nullcontext())
    cast = [t if t is None or t.dtype == torch.float64 else t.float() for t in tensors]
    return off, cast


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07, *,
                      z1_all: torch.Tensor | None = None, z2_all: torch.Tensor | None = None,
                      offset: int = 0) -> torch.Tensor:
    """NT-Xent as cross-entropy over the (2n, 2N) logits; ``z1_all``/``z2_all``/``offset``
    as in :func:`ecgfast.losses.nt_xent` (None: the columns are the rows)."""
    off, (z1, z2, z1_all, z2_all) = _float32_without_autocast(z1, z2, z1_all, z2_all)
    with off:
        return _nt_xent(z1, z2, temperature, z1_all, z2_all, offset)


def _nt_xent(z1, z2, temperature, z1_all, z2_all, offset):
    n = z1.shape[0]
    rows = F.normalize(torch.cat([z1, z2]), dim=1)
    cols = rows if z1_all is None else F.normalize(torch.cat([z1_all, z2_all]), dim=1)
    big_n = cols.shape[0] // 2
    view1 = torch.arange(offset, offset + n, device=rows.device)
    view2 = view1 + big_n
    self_col, target = torch.cat([view1, view2]), torch.cat([view2, view1])
    logits = rows @ cols.t() / temperature
    logits = logits.scatter(1, self_col[:, None], float("-inf"))
    return F.cross_entropy(logits, target)


def byol_loss_reference(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """mean_i (2 - 2 cos(p_i, z_i))."""
    off, (p, z) = _float32_without_autocast(p, z)
    with off:
        return (2 - 2 * F.cosine_similarity(p, z, dim=1, eps=1e-12)).mean()
