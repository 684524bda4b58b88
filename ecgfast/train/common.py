"""Pieces every training entry point shares: devices, precision, seeding, versions, the run log.

(The argument types and the command boundary live in the command wing: ecgfast.cli.types, ecgfast.cli.boundary.)
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ecgfast.base.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")


# -- devices --------------------------------------------------------------------------
def available_devices() -> str:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "cpu" + "".join(f", cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(n))


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine.

    Under ``torchrun`` each rank needs a GPU of its own: a bare ``cuda``/``auto`` takes
    ``cuda:$LOCAL_RANK`` when the rank sees several GPUs, and the one it sees when it sees
    one (``CUDA_VISIBLE_DEVICES`` per rank); ``cuda:N`` with N other than LOCAL_RANK, while
    several GPUs are visible, would put several ranks on GPU N and is refused.
    """
    spec = "auto" if spec is None else str(spec).strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec}: no CUDA device is available here (devices: {available_devices()}); "
                              "use --device cpu, or install a CUDA build of torch on a GPU machine")
        count = torch.cuda.device_count()
        torchrun = _under_torchrun()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if spec == "cuda":
            index = local if torchrun and count > 1 else 0
        else:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"--device {spec}: expected cuda:N with an integer N") from None
            if torchrun and count > 1 and index != local:
                raise ConfigError(f"--device {spec} under torchrun: rank LOCAL_RANK={local} would share GPU {index} "
                                  f"with another rank (NCCL needs one GPU per rank); use --device cuda (each rank "
                                  f"takes cuda:$LOCAL_RANK) or give each rank one GPU with CUDA_VISIBLE_DEVICES")
        if not 0 <= index < count:
            raise ConfigError(f"--device {spec}: out of range (devices: {available_devices()})")
        return torch.device("cuda", index)
    raise ConfigError(f"--device {spec}: expected auto, cpu, cuda or cuda:N (devices: {available_devices()})")


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether the GPU ``device`` (not the current one) computes bf16 natively (compute capability 8.0+)."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); without it bf16 is emulated and slow
    (a SimCLR-sized conv step ran ~6x slower than fp32 on an AVX2-only EPYC)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs that support it (else fp16 with a GradScaler), and on CPUs with native
    bf16; fp32 on other CPUs."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "bf16" and device.type == "cuda" and not cuda_has_bf16(device):
            raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16 or auto")
        return precision
    if device.type == "cuda":
        return "bf16" if cuda_has_bf16(device) else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def resolve_compile(mode: str | bool, device: torch.device) -> bool:
    """``auto`` compiles on CUDA and stays eager on the CPU (no measured gain there, tens of seconds to compile)."""
    if isinstance(mode, bool):
        return mode
    if mode not in COMPILE_MODES:
        raise ConfigError(f"--compile {mode!r}: expected one of {', '.join(COMPILE_MODES)}")
    return device.type == "cuda" if mode == "auto" else mode == "on"


def autocast(precision: str, device: torch.device | str = "cpu"):
    """Autocast context for ``fp32`` (none), ``bf16`` or ``fp16`` on ``device``."""
    if precision not in PRECISIONS or precision == "auto":
        raise ConfigError(f"precision {precision!r}: expected fp32, bf16 or fp16 (resolve 'auto' first)")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def deterministic_kernels(device: torch.device) -> None:
    """Kernels that give the same bits on every run, so a resumed run continues bitwise.

    On CUDA: deterministic cuDNN convolutions (no autotuning, whose choice may vary
    between runs) and no TF32 (full float32 matmuls and convolutions, as on the CPU).
    The CPU kernels are deterministic already.
    """
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


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


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (the augmentation ops take their own seed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict:
    """Versions stored beside every checkpoint (plain strings), so a result can be traced to its software."""
    from ecgfast import __version__
    from ecgfast.base.extension import EXTENSION_AVAILABLE

    return {
        "ecgfast": __version__,
        "torch": str(torch.__version__),
        "cuda": str(torch.version.cuda),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "extension": bool(EXTENSION_AVAILABLE),
    }


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
