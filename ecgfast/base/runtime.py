"""The runtime every command resolves once: the device, the precision, compilation, autocast,
deterministic kernels, the seeds, and the versions stored beside each checkpoint.

The one home of ``--device``/``--precision``/``--compile`` resolution: training, evaluation,
inference (``ecgfast embed``/``predict``) and the loaders of trained models all call
:func:`resolve_device` here.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random

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
