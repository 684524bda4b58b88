"""The self-supervised methods of the pretraining engine, one small strategy class each.

A :class:`Method` owns what differs between SimCLR and BYOL: the model built
around the encoder, the loss of a step's two views, what happens after the
optimiser step (BYOL's EMA update of its target network), which module is the
exported encoder and what the resume file holds of the model. The engine
(:class:`ecgfast.train.pretrain.Pretrainer`) calls these hooks and never asks
which method it runs. ``METHODS`` is the one table of the method names.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from ecgfast.models import BYOLModel, SimCLRModel

# The loss ops are imported where they are used: train/config.py reads METHODS, and a command's --help should not
# load the op library.


def simclr_loss(net, v1: torch.Tensor, v2: torch.Tensor, temperature: float, world: int = 1) -> torch.Tensor:
    """NT-Xent of the two views' projections; with ``world > 1`` over the global batch.

    One forward of both views (BatchNorm sees both). With several ranks each rank
    gathers every rank's projections with gradient and computes the loss of its
    own 2n rows against all 2N columns (lightly's ``gather_distributed``); the mean
    of the ranks' losses is the global loss, and with all_gather's backward summing
    the column gradients and DDP averaging, the gradients equal one process's.
    """
    from ecgfast.losses import NTXentLoss

    z1, z2 = net(torch.cat([v1, v2])).chunk(2)  # the loss ops compute in float32 under autocast
    return NTXentLoss(temperature, gather_distributed=world > 1)(z1, z2)


def byol_loss_of(net, model, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetrised loss: byol(q(v1), z'(v2)) + byol(q(v2), z'(v1)); the target gets no gradient."""
    from ecgfast.losses import byol_loss

    n = v1.shape[0]
    p = net(torch.cat([v1, v2]))
    with torch.no_grad():
        z = model.target(torch.cat([v2, v1]))
    return byol_loss(p[:n], z[:n]) + byol_loss(p[n:], z[n:])


class Method:
    """One self-supervised method: the hooks the engine calls (defaults shared by SimCLR and BYOL).

    ``net`` is the module a step calls (the model, or its DistributedDataParallel
    wrapper); ``model`` is the bare model :meth:`build` returned.
    """

    name: ClassVar[str]

    @classmethod
    def from_config(cls, cfg, world: int = 1) -> Method:
        """The method of a run (``cfg``: a PretrainConfig; ``world``: the number of processes)."""
        raise NotImplementedError

    def build(self, encoder: torch.nn.Module) -> torch.nn.Module:
        """The model trained around ``encoder`` (it keeps it as ``.encoder``)."""
        raise NotImplementedError

    def loss(self, net, model, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """The loss of one step's two (normalised) views."""
        raise NotImplementedError

    def after_step(self, model) -> None:
        """Run after each optimiser step (nothing by default)."""

    def encoder(self, model) -> torch.nn.Module:
        """The module exported as the pretrained encoder (compiled in place when the run compiles)."""
        return model.encoder

    def resume_state(self, model) -> dict:
        """What the resume file holds of the model: all of it (BYOL: the target network too)."""
        return model.state_dict()

    def load_resume_state(self, model, state: dict) -> None:
        """Restore :meth:`resume_state`; a mismatch raises RuntimeError (the engine names the file)."""
        model.load_state_dict(state)


class SimCLR(Method):
    """SimCLR: encoder + projection head, NT-Xent over the (global) batch of both views."""

    name = "simclr"

    def __init__(self, projection_dim: int, temperature: float, world: int = 1):
        self.projection_dim, self.temperature, self.world = projection_dim, temperature, world

    @classmethod
    def from_config(cls, cfg, world: int = 1) -> SimCLR:
        return cls(cfg.projection_dim, cfg.temperature, world)

    def build(self, encoder):
        return SimCLRModel(encoder, projection_dim=self.projection_dim)

    def loss(self, net, model, v1, v2):
        return simclr_loss(net, v1, v2, self.temperature, self.world)


class BYOL(Method):
    """BYOL: online network with predictor against an EMA target network (updated after every step)."""

    name = "byol"

    def __init__(self, tau: float):
        self.tau = tau

    @classmethod
    def from_config(cls, cfg, world: int = 1) -> BYOL:
        return cls(cfg.tau)

    def build(self, encoder):
        return BYOLModel(encoder, tau=self.tau)

    def loss(self, net, model, v1, v2):
        return byol_loss_of(net, model, v1, v2)

    def after_step(self, model) -> None:
        model.update_target()


# The one definition of the method names (the CLI's pretrain-simclr / pretrain-byol, PretrainConfig.method).
METHODS: dict[str, type[Method]] = {m.name: m for m in (SimCLR, BYOL)}
