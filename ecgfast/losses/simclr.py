"""NT-Xent, SimCLR's contrastive loss: the function :func:`nt_xent` over the fused
``ecgfast::nt_xent`` op (its fake and autograd registered here) and the module :class:`NTXentLoss`.

``ecgfast::nt_xent`` returns (loss, H, lse); H (the normalised columns) and the
per-row logsumexp are what the backward needs to recompute each tile, so memory
stays O(N D). Its backward ops are private (``ecgfast::_nt_xent_backward``, and
``ecgfast::_nt_xent_distributed_backward`` for gathered columns): only the autograd
formula below calls them. Which implementation serves a call is the one backend
policy of every op (:func:`ecgfast.base.extension.op_backend`): the compiled op, or
the plain formula of :mod:`ecgfast.losses.reference`.
"""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.base.extension import EXTENSION_AVAILABLE, op_backend
from ecgfast.losses.reference import compute_dtype, contiguous_like


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
        dtype = compute_dtype(z1)
        rows = 2 * z1.shape[0]
        cols = rows if z1_all is None else 2 * z1_all.shape[0]
        return (z1.new_empty((), dtype=dtype), z1.new_empty((cols, z1.shape[1]), dtype=dtype),
                z1.new_empty((rows,), dtype=dtype))

    @torch.library.register_fake("ecgfast::_nt_xent_backward")
    def _(grad, z1, z2, h, lse, temperature):
        return contiguous_like(z1, z2)

    @torch.library.register_fake("ecgfast::_nt_xent_distributed_backward")
    def _(grad, z1, z2, z1_all, z2_all, h, lse, temperature, offset):
        return contiguous_like(z1, z2, z1_all, z2_all)

    def _nt_xent_setup(ctx, inputs, output):
        z1, z2, temperature, z1_all, z2_all, offset = inputs
        _, h, lse = output
        ctx.save_for_backward(z1, z2, z1_all, z2_all, h, lse)
        ctx.temperature, ctx.offset = temperature, offset

    def _nt_xent_backward(ctx, grad_loss, grad_h, grad_lse):
        z1, z2, z1_all, z2_all, h, lse = ctx.saved_tensors
        if z1_all is None:  # single process: the symmetric one-pass backward
            dz1, dz2 = torch.ops.ecgfast._nt_xent_backward(grad_loss, z1, z2, h, lse, ctx.temperature)
            return dz1, dz2, None, None, None, None
        dz1, dz2, dz1_all, dz2_all = torch.ops.ecgfast._nt_xent_distributed_backward(
            grad_loss, z1, z2, z1_all, z2_all, h, lse, ctx.temperature, ctx.offset)
        return dz1, dz2, None, dz1_all, dz2_all, None

    torch.library.register_autograd("ecgfast::nt_xent", _nt_xent_backward, setup_context=_nt_xent_setup)


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
    if op_backend("nt_xent", z1.device) == "cpp":
        return torch.ops.ecgfast.nt_xent(z1, z2, float(temperature), z1_all, z2_all, int(offset))[0]
    from ecgfast.losses.reference import nt_xent_reference

    dtype = compute_dtype(z1)
    cast = (lambda t: t if t is None else t.to(dtype))  # noqa: E731
    return nt_xent_reference(cast(z1), cast(z2), temperature, z1_all=cast(z1_all), z2_all=cast(z2_all),
                             offset=offset)


class NTXentLoss(nn.Module):
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020).

    With h_k = z_k / ||z_k|| over the 2N views (z1 rows first, then z2) and
    s_ij = h_i . h_j / tau:

        loss = 1/(2N) sum_i [ -s_{i,p(i)} + log sum_{j != i} exp(s_ij) ],

    where the positive of row i < N is N + i and of N + i is i. Computed by the
    fused, tiled ``ecgfast::nt_xent`` op: memory grows linearly with N.

    ``gather_distributed=True`` (as lightly's ``NTXentLoss``): in an initialised
    process group each rank scores its own rows against all ranks' projections
    (gathered with gradient), so the negatives are the global batch's and, with
    DDP averaging, the gradients are those of one process on the global batch.
    Every rank must pass the same batch size.

    Args:
        temperature: tau > 0 (SimCLR's default for ECGs here: 0.07).
        gather_distributed: score against all ranks' projections in data-parallel training.

    Shapes:
        z1, z2: (N, D) projections of the two views (any float dtype; computed in float32,
        or float64 for float64 inputs); output: a scalar.

    Example::

        loss_fn = NTXentLoss(temperature=0.07)
        z1, z2 = model(torch.cat([view1, view2])).chunk(2)
        loss = loss_fn(z1, z2)
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if self.gather_distributed and dist.is_available() and dist.is_initialized():
            from ecgfast.base.distributed import all_gather_with_grad

            z1_all, z2_all = torch.cat(all_gather_with_grad(z1)), torch.cat(all_gather_with_grad(z2))
            return nt_xent(z1, z2, self.temperature, z1_all=z1_all, z2_all=z2_all,
                           offset=dist.get_rank() * z1.shape[0])
        return nt_xent(z1, z2, self.temperature)
