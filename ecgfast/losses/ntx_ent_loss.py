"""NT-Xent (SimCLR's contrastive loss) as a module over the fused ``ecgfast::nt_xent`` op."""
from __future__ import annotations

import torch
from torch import nn

from ecgfast.losses._ops import nt_xent


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
