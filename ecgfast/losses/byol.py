"""BYOL's loss: the function :func:`byol_loss` over the fused ``ecgfast::byol_loss`` op (its fake and
autograd registered here), the module :class:`BYOLLoss`, and the EMA target update :func:`ema_update_`.

The backward op is private (``ecgfast::_byol_loss_backward``): only the autograd formula below
calls it. Which implementation serves a call is the one backend policy of every op
(:func:`ecgfast.base.extension.op_backend`): the compiled op, or the plain formula of
:mod:`ecgfast.losses.reference`.
"""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.base.extension import EXTENSION_AVAILABLE, op_backend
from ecgfast.losses.reference import compute_dtype, contiguous_like

if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::byol_loss")
    def _(p, z):
        return p.new_empty(())

    @torch.library.register_fake("ecgfast::_byol_loss_backward")
    def _(grad, p, z):
        return contiguous_like(p, z)

    def _byol_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _byol_backward(ctx, grad):
        p, z = ctx.saved_tensors
        return torch.ops.ecgfast._byol_loss_backward(grad, p, z)

    torch.library.register_autograd("ecgfast::byol_loss", _byol_backward, setup_context=_byol_setup)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    if p.dim() != 2 or p.shape != z.shape:
        raise ValueError(f"byol_loss: p and z must be (N, D) of one shape, got {tuple(p.shape)} and "
                         f"{tuple(z.shape)}")
    dtype = compute_dtype(p)
    if op_backend("byol_loss", p.device) == "cpp":
        return torch.ops.ecgfast.byol_loss(p.to(dtype), z.to(dtype))
    from ecgfast.losses.reference import byol_loss_reference

    return byol_loss_reference(p.to(dtype), z.to(dtype))


class BYOLLoss(nn.Module):
    """BYOL's normalised regression loss (Grill et al., 2020), one direction:

        loss = 1/N sum_i || p_i/||p_i|| - z_i/||z_i|| ||^2 = 1/N sum_i (2 - 2 cos(p_i, z_i)),

    p the online prediction, z the target projection (detach it: the target
    gets no gradient). BYOL symmetrises it over the two views.

    Shapes:
        p, z: (N, D); output: a scalar in [0, 4].

    Example::

        loss_fn = BYOLLoss()
        loss = loss_fn(model(v1), model.target(v2)) + loss_fn(model(v2), model.target(v1))
    """

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return byol_loss(p, z)


@torch.no_grad()
def ema_update_(target_params, online_params, tau: float) -> None:
    """theta_target <- tau theta_target + (1 - tau) theta_online, for all tensors in one fused call."""
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    target_params, online_params = list(target_params), list(online_params)
    if len(target_params) != len(online_params):
        raise ValueError(f"ema_update_: {len(target_params)} target tensors for {len(online_params)} online ones")
    torch._foreach_lerp_(target_params, online_params, 1.0 - tau)
