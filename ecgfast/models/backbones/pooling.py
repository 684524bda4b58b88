"""The representation of the PTB-XL benchmark backbones: concat pooling of the last feature map."""
from __future__ import annotations

import torch


def concat_pool(fmap: torch.Tensor) -> torch.Tensor:
    """(B, C, T) -> (B, 2C): global max over time, then global mean over time.

    The first layer of the published models' head (Strodthoff et al. 2020, "concat
    pooling": adaptive max pooling and adaptive average pooling, concatenated in
    that order). ecgfast ends the backbones there, so the SimCLR/BYOL projectors and
    the classifier's ``Linear`` sit on the same pooled features the published head
    started from.
    """
    return torch.cat([fmap.amax(dim=-1), fmap.mean(dim=-1)], dim=1)
