"""The plain formulas, as usually written: the full 2N x 2N similarity matrix. For tests and benchmarks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    n = z1.shape[0]
    h = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = h @ h.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=h.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(h.device)
    return F.cross_entropy(logits, target)


def byol_loss_reference(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (2 - 2 * F.cosine_similarity(p, z, dim=1, eps=1e-12)).mean()
