"""The fused loss ops with autograd, and the plain formulas as fallbacks.

``ecgfast::nt_xent`` returns (loss, H, lse); H (the normalised columns) and
the per-row logsumexp are what the backward needs to recompute each tile, so
memory stays O(N D). Autograd is registered here (as in pytorch/extension-cpp).
"""
from __future__ import annotations

import torch

from ecgfast.base.extension import EXTENSION_AVAILABLE, use_compiled


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32  # bf16/fp16 computed in float32


def _check_nt_xent(z1, z2, temperature, z1_all, z2_all, offset):
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"nt_xent: z1 and z2 must be (N, D) of one shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"nt_xent: temperature must be positive, got {temperature}")
    if (z1_all is None) != (z2_all is None):
        raise ValueError("nt_xent: give both z1_all and z2_all, or neither")
    if z1_all is None:
        if offset != 0:
            raise ValueError(f"nt_xent: offset={offset} needs z1_all and z2_all")
        return
    if z1_all.dim() != 2 or z1_all.shape != z2_all.shape or z1_all.shape[1] != z1.shape[1]:
        raise ValueError(f"nt_xent: z1_all and z2_all must be (N, {z1.shape[1]}) of one shape, got "
                         f"{tuple(z1_all.shape)} and {tuple(z2_all.shape)}")
    if not 0 <= offset <= z1_all.shape[0] - z1.shape[0]:
        raise ValueError(f"nt_xent: rows [{offset}, {offset + z1.shape[0]}) are not inside the "
                         f"{z1_all.shape[0]} gathered rows")


if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::nt_xent")
    def _(z1, z2, temperature, z1_all=None, z2_all=None, offset=0):
        dtype = _compute_dtype(z1)
        rows = 2 * z1.shape[0]
        cols = rows if z1_all is None else 2 * z1_all.shape[0]
        return (z1.new_empty((), dtype=dtype), z1.new_empty((cols, z1.shape[1]), dtype=dtype),
                z1.new_empty((rows,), dtype=dtype))

    # The backward kernels return new contiguous tensors of their inputs' dtypes, whatever the inputs' strides.
    def _contiguous_like(*tensors):
        return tuple(t.new_empty(t.shape) for t in tensors)

    @torch.library.register_fake("ecgfast::nt_xent_backward")
    def _(grad, z1, z2, h, lse, temperature):
        return _contiguous_like(z1, z2)

    @torch.library.register_fake("ecgfast::nt_xent_distributed_backward")
    def _(grad, z1, z2, z1_all, z2_all, h, lse, temperature, offset):
        return _contiguous_like(z1, z2, z1_all, z2_all)

    def _nt_xent_setup(ctx, inputs, output):
        z1, z2, temperature, z1_all, z2_all, offset = inputs
        _, h, lse = output
        ctx.save_for_backward(z1, z2, z1_all, z2_all, h, lse)
        ctx.temperature, ctx.offset = temperature, offset

    def _nt_xent_backward(ctx, grad_loss, grad_h, grad_lse):
        z1, z2, z1_all, z2_all, h, lse = ctx.saved_tensors
        if z1_all is None:  # single process: the symmetric one-pass backward
            dz1, dz2 = torch.ops.ecgfast.nt_xent_backward(grad_loss, z1, z2, h, lse, ctx.temperature)
            return dz1, dz2, None, None, None, None
        dz1, dz2, dz1_all, dz2_all = torch.ops.ecgfast.nt_xent_distributed_backward(
            grad_loss, z1, z2, z1_all, z2_all, h, lse, ctx.temperature, ctx.offset)
        return dz1, dz2, None, dz1_all, dz2_all, None

    torch.library.register_autograd("ecgfast::nt_xent", _nt_xent_backward, setup_context=_nt_xent_setup)

    @torch.library.register_fake("ecgfast::byol_loss")
    def _(p, z):
        return p.new_empty(())

    @torch.library.register_fake("ecgfast::byol_loss_backward")
    def _(grad, p, z):
        return _contiguous_like(p, z)

    def _byol_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _byol_backward(ctx, grad):
        p, z = ctx.saved_tensors
        return torch.ops.ecgfast.byol_loss_backward(grad, p, z)

    torch.library.register_autograd("ecgfast::byol_loss", _byol_backward, setup_context=_byol_setup)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07, *, z1_all: torch.Tensor | None = None,
            z2_all: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
    """NT-Xent of the views ``z1``, ``z2`` (n, D); the mean over the 2n rows.

    Single process: leave ``z1_all``/``z2_all`` None. Data-parallel training
    (lightly's ``NTXentLoss(gather_distributed=True)``): ``z1``, ``z2`` are this
    rank's rows, ``z1_all``, ``z2_all`` (N, D) all ranks' rows gathered with
    gradient (``ecgfast.base.distributed.all_gather_with_grad``) and ``offset`` the
    index of this rank's first row in the global batch; each row is scored
    against all 2N columns. The mean of the ranks' losses is the global loss
    and, with all_gather summing the column gradients and DDP averaging, the
    gradients are those of one process on the global batch.

    The compiled ``ecgfast::nt_xent`` op tiles the rows (memory linear in N).
    Without the extension the plain formula of ``ecgfast.losses.reference``
    serves the call (a 2n x 2N logits matrix).
    """
    _check_nt_xent(z1, z2, temperature, z1_all, z2_all, offset)
    if use_compiled("nt_xent", z1.device):
        return torch.ops.ecgfast.nt_xent(z1, z2, float(temperature), z1_all, z2_all, int(offset))[0]
    from ecgfast.losses.reference import nt_xent_reference

    dtype = _compute_dtype(z1)
    cast = (lambda t: t if t is None else t.to(dtype))  # noqa: E731
    return nt_xent_reference(cast(z1), cast(z2), temperature, z1_all=cast(z1_all), z2_all=cast(z2_all),
                             offset=offset)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    if p.dim() != 2 or p.shape != z.shape:
        raise ValueError(f"byol_loss: p and z must be (N, D) of one shape, got {tuple(p.shape)} and "
                         f"{tuple(z.shape)}")
    dtype = _compute_dtype(p)
    if use_compiled("byol_loss", p.device):
        return torch.ops.ecgfast.byol_loss(p.to(dtype), z.to(dtype))
    from ecgfast.losses.reference import byol_loss_reference

    return byol_loss_reference(p.to(dtype), z.to(dtype))
