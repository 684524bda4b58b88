"""SSL losses (lightly.loss style: each loss one small class, documented with its paper's formula)."""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.losses._ops import byol_loss, nt_xent


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
            from torch.distributed.nn.functional import all_gather

            z1_all, z2_all = torch.cat(all_gather(z1)), torch.cat(all_gather(z2))
            return nt_xent(z1, z2, self.temperature, z1_all=z1_all, z2_all=z2_all,
                           offset=dist.get_rank() * z1.shape[0])
        return nt_xent(z1, z2, self.temperature)


class BYOLLoss(nn.Module):
    """BYOL's normalised regression loss (Grill et al., 2020), one direction:

        loss = 1/N sum_i || p_i/||p_i|| - z_i/||z_i|| ||^2 = 1/N sum_i (2 - 2 cos(p_i, z_i)),

    p the online prediction, z the target projection (detach it: the target
    gets no gradient). BYOL symmetrises it over the two views.
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


__all__ = ["BYOLLoss", "NTXentLoss", "byol_loss", "ema_update_", "nt_xent"]
