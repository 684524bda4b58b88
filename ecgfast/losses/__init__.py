"""SSL losses, lightly.loss style: one module per loss holding its function (over the fused op) and its
Module, each documented with its paper's formula, arguments, shapes and an example:
``ecgfast.losses.simclr`` (``nt_xent``, ``NTXentLoss``), ``ecgfast.losses.byol`` (``byol_loss``,
``BYOLLoss``, ``ema_update_``); the plain formulas in ``ecgfast.losses.reference``. The modules are
not named after their functions, so importing a function here never hides its module."""
from ecgfast.losses.byol import BYOLLoss, byol_loss, ema_update_
from ecgfast.losses.simclr import NTXentLoss, nt_xent

__all__ = ["BYOLLoss", "NTXentLoss", "byol_loss", "ema_update_", "nt_xent"]
