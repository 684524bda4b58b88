"""BYOL's loss as a module over the fused ``ecgfast::byol_loss`` op, and the EMA target update."""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.losses._ops import byol_loss


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
