"""SimCLR, BYOL and classifier models around an encoder (DESIGN.md).

Any registered backbone (``ecgfast.models.backbones``) can be the encoder: the heads
read its representation width from ``encoder.out_channels`` (256 for the seed's
``ECGEncoder1DCNN``, the default).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ecgfast.models.encoder import ECGEncoder1DCNN

DEFAULT_TAU = 0.999  # BYOL's EMA rate of the target network (the seed's; the pretraining default)


def mlp(in_dim: int, hidden: int, out_dim: int, batch_norm: bool) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> ReLU -> Linear."""
    layers = [nn.Linear(in_dim, hidden)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    return nn.Sequential(*layers)


class SimCLRModel(nn.Module):
    """Encoder + projection head Linear(D, 2048) -> ReLU -> Linear(2048, projection_dim), D = encoder.out_channels.

    ``forward`` returns the projections z (B, projection_dim); the caller applies
    ``NTXentLoss`` to the two views' projections.
    """

    def __init__(self, encoder: nn.Module | None = None, projection_dim: int = 128, hidden: int = 2048):
        super().__init__()
        self.encoder = encoder or ECGEncoder1DCNN()
        self.projector = mlp(self.encoder.out_channels, hidden, projection_dim, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


class BYOLModel(nn.Module):
    """Online encoder/projector/predictor and an EMA target encoder/projector.

    Projector and predictor: Linear -> BatchNorm1d -> ReLU -> Linear (D -> 2048 -> 256 and 256 -> 2048 -> 256).
    The target starts as a copy of the online encoder and projector and follows
    them by ``update_target()``: theta_t <- tau theta_t + (1 - tau) theta_o.
    """

    def __init__(self, encoder: nn.Module | None = None, tau: float = DEFAULT_TAU, hidden: int = 2048,
                 out_dim: int = 256):
        super().__init__()
        if not 0 < tau < 1:
            raise ValueError(f"tau must be in (0, 1), got {tau}")
        self.tau = tau
        self.encoder = encoder or ECGEncoder1DCNN()
        self.projector = mlp(self.encoder.out_channels, hidden, out_dim, batch_norm=True)
        self.predictor = mlp(out_dim, hidden, out_dim, batch_norm=True)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The online prediction q(g(f(x))), (B, out_dim). The caller applies the loss:
        ``byol_loss(model(v1), model.target(v2)) + byol_loss(model(v2), model.target(v1))``."""
        return self.predictor(self.projector(self.encoder(x)))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The target projection g'(f'(x)), (B, out_dim), without gradient."""
        return self.target_projector(self.target_encoder(x))

    def online_parameters(self):
        return list(self.encoder.parameters()) + list(self.projector.parameters())

    def target_parameters(self):
        return list(self.target_encoder.parameters()) + list(self.target_projector.parameters())

    @torch.no_grad()
    def update_target(self) -> None:
        from ecgfast.losses import ema_update_

        ema_update_(self.target_parameters(), self.online_parameters(), self.tau)
        # BatchNorm running statistics are copied, not averaged: the target sees
        # the same data distribution as the online network.
        for t, o in zip(list(self.target_encoder.buffers()) + list(self.target_projector.buffers()),
                        list(self.encoder.buffers()) + list(self.projector.buffers())):
            t.copy_(o)


class ECGClassifier(nn.Module):
    """Encoder (its pooled representation, D = encoder.out_channels) -> Linear(D, num_classes) (multi-label logits)."""

    def __init__(self, encoder: nn.Module | None = None, num_classes: int = 5):
        super().__init__()
        self.encoder = encoder or ECGEncoder1DCNN()
        self.head = nn.Linear(self.encoder.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
