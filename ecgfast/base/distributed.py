"""Collectives with a gradient, written here because ``torch.distributed.nn.functional.all_gather``
is deprecated (it warns on every call, i.e. on every data-parallel step).

``all_gather_with_grad(x)`` has exactly that function's semantics: forward, every rank's ``x``
(a tuple, rank order); backward, the gradient of this rank's ``x`` is the *sum over ranks* of
the gradient each rank's loss sends to slot ``rank`` (a reduce-scatter with SUM). With NCCL that
is ``reduce_scatter_tensor``; other backends (gloo has no reduce-scatter) all-reduce the stacked
gradients and keep this rank's slice, which sums the same terms.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group):
        x = x.contiguous()  # collectives need contiguous tensors
        ctx.group = group
        out = [torch.empty_like(x) for _ in range(dist.get_world_size(group=group))]
        dist.all_gather(out, x, group=group)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        group = ctx.group
        rank = dist.get_rank(group=group)
        stacked = torch.stack([g.contiguous() for g in grads])
        if dist.get_backend(group=group) == dist.Backend.NCCL:
            gx = torch.empty_like(grads[rank])
            dist.reduce_scatter_tensor(gx, stacked, op=dist.ReduceOp.SUM, group=group)
        else:
            dist.all_reduce(stacked, op=dist.ReduceOp.SUM, group=group)
            gx = stacked[rank]
        return gx, None


def all_gather_with_grad(x: torch.Tensor, group=None) -> tuple[torch.Tensor, ...]:
    """Every rank's ``x`` in rank order, differentiable (gradients summed over ranks into each ``x``).

    ``group``: the process group (default: the whole world)."""
    return _AllGatherWithGrad.apply(x, group or dist.group.WORLD)
