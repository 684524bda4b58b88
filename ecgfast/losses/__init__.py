"""SSL losses, lightly.loss style: one module per loss, each a small class documented with its
paper's formula, its arguments, shapes and an example; the functional forms run the fused ops."""
from ecgfast.losses._ops import DEFAULT_TEMPERATURE, byol_loss, nt_xent
from ecgfast.losses.byol import BYOLLoss, ema_update_
from ecgfast.losses.ntx_ent_loss import NTXentLoss

__all__ = ["BYOLLoss", "DEFAULT_TEMPERATURE", "NTXentLoss", "byol_loss", "ema_update_", "nt_xent"]
