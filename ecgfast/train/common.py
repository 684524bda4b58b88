"""Pieces the training commands share: optimisers, learning-rate schedules, the run log.

Devices, precision, compilation, seeds and versions: :mod:`ecgfast.base.runtime`; the argument types
and the command boundary: :mod:`ecgfast.cli.types`, :mod:`ecgfast.cli.boundary`."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ecgfast.base.errors import ConfigError


def adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (one launch for all tensors, and with a GradScaler its
    inf check stays on the device: no host sync per step)."""
    return torch.optim.Adam(params, lr=lr, fused=device.type == "cuda")


# -- optimisers and learning-rate schedules (pretraining and classifiers share them) ------------
OPTIMIZERS = ("adam", "adamw", "lars")
SCHEDULES = ("constant", "cosine")


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017, as SimCLR and Barlow Twins use it): SGD with momentum whose step of
    each weight tensor is rescaled by the trust ratio ``eta * ||w|| / ||g + wd * w||``.

    Per tensor ``w`` with gradient ``g``::

        u = g + weight_decay * w                       (no decay, no adaptation: see below)
        q = eta * ||w|| / ||u||   (1 where either norm is 0)
        v = momentum * v + q * u
        w = w - lr * v

    Tensors of one dimension or none (biases, normalisation scales and shifts) are excluded
    from the decay and the adaptation (``u = g``, ``q = 1``), as usual: their scale carries no
    meaning a trust ratio could use. ``lars_exclude`` in a parameter group overrides the rule
    (True: every tensor of the group is excluded; False: none is).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 1e-3):
        if not (lr > 0 and 0 <= momentum < 1 and weight_decay >= 0 and eta > 0):
            raise ValueError(f"LARS: lr {lr}, momentum {momentum}, weight_decay {weight_decay}, eta {eta} out of range")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                                  "lars_exclude": None})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                excluded = group["lars_exclude"] if group["lars_exclude"] is not None else p.ndim <= 1
                if not excluded:
                    u = g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else g
                    w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(u)
                    q = torch.where((w_norm > 0) & (u_norm > 0), group["eta"] * w_norm / u_norm,
                                    torch.ones_like(w_norm))
                    g = u * q  # a device scalar: no host sync
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                v = state["momentum_buffer"]
                v.mul_(group["momentum"]).add_(g)
                p.add_(v, alpha=-group["lr"])
        return loss


def _blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """A module's blocks in order of depth: its children, with a Sequential or ModuleList of blocks
    (children that have children of their own) opened into those blocks."""
    out = []
    for child in module.children():
        inner = list(child.children())
        if isinstance(child, (torch.nn.Sequential, torch.nn.ModuleList)) and any(list(c.children()) for c in inner):
            out.extend(_blocks(child) if all(isinstance(c, (torch.nn.Sequential, torch.nn.ModuleList))
                                             for c in inner) else inner)
        else:
            out.append(child)
    return out


def layer_lr_scales(model: torch.nn.Module, decay: float | None) -> dict[int, float]:
    """Discriminative learning rates: ``id(parameter) -> lr factor``.

    With ``decay`` d, everything outside ``model.encoder`` (the head) trains at the full rate,
    the encoder's last block at d, the one before at d², and so on down to its first block
    (blocks: its children in order, Sequential runs of blocks opened, see ``_blocks``).
    ``None`` (or a model without an ``encoder``): every factor is 1.
    """
    scales = {id(p): 1.0 for p in model.parameters()}
    encoder = getattr(model, "encoder", None)
    if decay is None or encoder is None:
        return scales
    blocks = [b for b in _blocks(encoder) if any(True for _ in b.parameters())]
    for depth, block in enumerate(reversed(blocks), start=1):
        for p in block.parameters():
            scales[id(p)] = decay ** depth
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    for p in encoder.parameters():  # parameters held by the encoder itself, outside any block
        if id(p) not in in_blocks:
            scales[id(p)] = decay ** (len(blocks) + 1)
    return scales


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float = 0.0,
                 layer_lr_decay: float | None = None, split_1d: bool | None = None) -> list[dict]:
    """The trainable parameters of ``model`` in groups of one learning rate and one weight decay.

    Biases and normalisation parameters (tensors of one dimension or none) get no weight decay
    (the usual exclusion); ``layer_lr_decay`` scales the encoder's learning rates block by block
    (:func:`layer_lr_scales`). Each group keeps its full-schedule rate as ``initial_lr``.
    ``split_1d`` (default: when there is weight decay) puts those tensors in groups of their own
    (``lars_exclude`` True); otherwise a group mixes them (``lars_exclude`` None: LARS decides by shape).
    """
    split_1d = weight_decay > 0 if split_1d is None else split_1d
    scales = layer_lr_scales(model, layer_lr_decay)
    groups: dict[tuple[float, bool | None], list] = {}
    for p in model.parameters():  # in the model's order (one group: the seed's Adam, resumable as before)
        if p.requires_grad:
            groups.setdefault((scales[id(p)], p.ndim <= 1 if split_1d else None), []).append(p)
    return [{"params": ps, "lr": lr * scale, "initial_lr": lr * scale,
             "weight_decay": 0.0 if no_decay else weight_decay, "lars_exclude": no_decay}
            for (scale, no_decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], bool(kv[0][1])))]


def make_optimizer(model: torch.nn.Module, name: str, lr: float, device: torch.device,
                   weight_decay: float = 0.0, layer_lr_decay: float | None = None) -> torch.optim.Optimizer:
    """``adam`` (the seed's; with weight decay as an L2 term), ``adamw`` (decoupled weight decay) or
    ``lars`` (:class:`LARS`, momentum 0.9, eta 0.001) over ``model``'s trainable parameters."""
    groups = param_groups(model, lr, weight_decay, layer_lr_decay, split_1d=weight_decay > 0 or name == "lars")
    fused = device.type == "cuda"
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if name == "lars":
        return LARS(groups, lr=lr)
    raise ConfigError(f"--optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class LRSchedule:
    """The learning-rate factor as a pure function of the global step (so a resumed run, which
    restores the step, continues with the very same rates: nothing else to save).

    ``constant``: 1 (the seed's), after the warm-up if any. ``cosine``: linear warm-up from
    1/warmup to 1 over ``warmup_steps``, then ``0.5 * (1 + cos(pi * t))`` with t going from 0 to 1
    over the remaining steps (the last step's factor is small but not 0: it is the step before 0).
    """

    schedule: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 1

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(step - self.warmup_steps, span) / span
        return 0.5 * (1.0 + math.cos(math.pi * t))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every group's rate to its ``initial_lr`` times the factor of ``step`` (the step about to run)."""
        f = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def state_dict(self) -> dict:
        return {"schedule": self.schedule, "warmup_steps": int(self.warmup_steps), "total_steps": int(self.total_steps)}


def make_schedule(schedule: str, warmup_epochs: int, epochs: int, steps_per_epoch: int) -> LRSchedule:
    if schedule not in SCHEDULES:
        raise ConfigError(f"--schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    return LRSchedule(schedule, warmup_epochs * steps_per_epoch, max(epochs * steps_per_epoch, 1))


def check_training_outputs(out: str | os.PathLike, log: str | os.PathLike | None = None) -> None:
    """Refuse, before the data are read or a step is taken, a run whose checkpoint ``out`` (and its
    resume file and model card, in the same folder) or ``log`` cannot be written."""
    from ecgfast.base.fs import check_writable

    check_writable(out)
    if log is not None:
        check_writable(log)


class JsonlLogger:
    """Appends one JSON object per line; each line is flushed, so a crash loses nothing written.

    An append is not atomic by design (a crash keeps the lines before it); a full or
    read-only disk is an ``OutputError`` naming the log.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, **record) -> None:
        if self.path is None:
            return
        from ecgfast.base.fs import explain_os_error

        record.setdefault("time", time.time())
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record, default=float) + "\n")
        except OSError as exc:
            raise explain_os_error(exc, self.path) from exc
