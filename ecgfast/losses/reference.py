"""The plain formulas, as usually written: the full similarity matrix. For tests, benchmarks and builds
without the compiled extension."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07, *,
                      z1_all: torch.Tensor | None = None, z2_all: torch.Tensor | None = None,
                      offset: int = 0) -> torch.Tensor:
    """NT-Xent as cross-entropy over the (2n, 2N) logits; ``z1_all``/``z2_all``/``offset``
    as in :func:`ecgfast.losses.nt_xent` (None: the columns are the rows)."""
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
    return (2 - 2 * F.cosine_similarity(p, z, dim=1, eps=1e-12)).mean()
