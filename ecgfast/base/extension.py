"""Loading the compiled extension, and the one policy that decides which implementation serves an op.

The compiled ops (``ecgfast._C``) register themselves with torch's dispatcher
under ``torch.ops.ecgfast``, with a kernel per device (CPU always; CUDA when
built with a CUDA toolkit). :func:`use_compiled` is asked by every op's Python
wrapper before each call: the compiled op serves a tensor when the extension is
loaded and has a kernel for that tensor's device; otherwise the op's plain-torch
implementation does, and one warning (once per op and device type) names the
rebuild command. The augmentations' CPU backend can also be chosen with
``ECGFAST_BACKEND`` = ``cpp`` (default when built) | ``numba`` | ``torch``;
``ECGFAST_NO_EXTENSION=1`` at import runs everything as a pure-Python install would.
"""
from __future__ import annotations

import os
import warnings

import torch

BACKENDS = ("cpp", "numba", "torch")
REBUILD_COMMAND = "CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e ."

EXTENSION_ERROR: str | None = None
if os.environ.get("ECGFAST_NO_EXTENSION") == "1":  # as a pure-Python install, even where a build exists
    EXTENSION_AVAILABLE = False
    EXTENSION_ERROR = "not loaded: ECGFAST_NO_EXTENSION=1"
else:
    try:  # importing the shared library runs its TORCH_LIBRARY registrations
        from ecgfast import _C  # noqa: F401

        EXTENSION_AVAILABLE = True
    except ImportError as exc:  # not built (ECGFAST_NO_EXTENSION=1 at install) or built for another torch
        EXTENSION_AVAILABLE = False
        EXTENSION_ERROR = str(exc)

# Device type -> the dispatch keys a compiled kernel for it may be registered under.
_DISPATCH_KEYS = {"cpu": ("CPU",), "cuda": ("CUDA",), "meta": ("Meta",)}
_GENERIC_KEYS = ("CompositeExplicitAutograd", "CompositeImplicitAutograd")
_warned: set[tuple[str, str]] = set()


def has_kernel(op: str, device: torch.device | str) -> bool:
    """Whether the loaded extension's ``ecgfast::<op>`` has a kernel for ``device`` (the dispatcher's answer)."""
    if not EXTENSION_AVAILABLE:
        return False
    device_type = torch.device(device).type
    keys = _DISPATCH_KEYS.get(device_type, ()) + _GENERIC_KEYS
    name = f"ecgfast::{op}"
    return any(torch._C._dispatch_has_kernel_for_dispatch_key(name, key) for key in keys)


# Constant for torch.compile: traced once per (op, device), so the decision costs nothing in a graph.
@torch.compiler.assume_constant_result
def use_compiled(op: str, device: torch.device | str) -> bool:
    """True when the compiled ``ecgfast::<op>`` serves a tensor on ``device``.

    False when the extension is not loaded (a pure-Python install: the plain
    implementations are the intended path, no warning) or when it lacks a kernel
    for that device (a CPU-only build on a GPU machine: one warning per op and
    device type, naming the rebuild command).
    """
    if not EXTENSION_AVAILABLE:
        return False
    if has_kernel(op, device):
        return True
    device_type = torch.device(device).type
    if (op, device_type) not in _warned:
        _warned.add((op, device_type))
        warnings.warn(f"ecgfast: the compiled extension has no {device_type} kernel for ecgfast::{op}; the plain "
                      f"torch implementation serves it (slower). For the compiled kernels rebuild with: "
                      f"{REBUILD_COMMAND}", RuntimeWarning, stacklevel=3)
    return False


def requested_backend() -> str:
    """The augmentations' CPU backend the environment asks for, validated against what is available."""
    name = os.environ.get("ECGFAST_BACKEND", "").strip().lower()
    if not name:
        return "cpp" if EXTENSION_AVAILABLE else "numba"
    if name not in BACKENDS:
        raise ValueError(f"ECGFAST_BACKEND={name!r}: expected one of {', '.join(BACKENDS)}")
    if name == "cpp" and not EXTENSION_AVAILABLE:
        raise RuntimeError(
            "ECGFAST_BACKEND=cpp but the compiled extension ecgfast._C could not be imported "
            f"({EXTENSION_ERROR}); build it with `pip install --no-build-isolation -e .`"
        )
    return name
