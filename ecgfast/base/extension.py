"""Loading the compiled extension, and the one policy that decides which implementation serves an op.

The compiled ops (``ecgfast._C``) register themselves with torch's dispatcher
under ``torch.ops.ecgfast``, with a kernel per device (CPU always; CUDA when
built with a CUDA toolkit). Every op's Python wrapper (the augmentations, the
losses, the gather) asks :func:`op_backend` before each call which of its
implementations serves the tensor: ``cpp`` (the compiled op), ``numba`` (a Numba
CPU kernel, where the op has one) or ``torch`` (its plain-torch implementation).

``ECGFAST_BACKEND`` = ``cpp`` (the default when built) | ``numba`` (the default
when not) | ``torch`` asks for one for every op; ``AugmentPipeline(backend=...)``
asks for one pipeline. The answer, per op and device:

* ``torch``: the plain-torch implementation, everywhere;
* ``numba``: the Numba kernel for CPU tensors of an op that has one (the augmentations);
* otherwise the compiled op where the extension has a kernel for the tensor's
  device (:func:`use_compiled`), else the plain-torch implementation: a
  pure-Python install silently, a build without that device's kernels (a CPU-only
  build on a GPU machine) with one warning per op and device type naming the
  rebuild command.

``cpp`` asked for without the compiled extension, or a name not in ``BACKENDS``,
is an error naming where it was asked for. ``ECGFAST_NO_EXTENSION=1`` at import
runs everything as a pure-Python install would.
"""
from __future__ import annotations

import os
import warnings

import torch

BACKENDS = ("cpp", "numba", "torch")
BACKEND_ENV = "ECGFAST_BACKEND"
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


def check_backend(name: str, origin: str = "backend") -> str:
    """``name`` if it is a backend this install can run, else the error every op gives: a ValueError
    for an unknown name, a RuntimeError for ``cpp`` without the compiled extension. ``origin`` names
    where it was asked for (``ECGFAST_BACKEND``, ``backend``)."""
    if name not in BACKENDS:
        raise ValueError(f"{origin}={name!r}: expected one of {', '.join(BACKENDS)}")
    if name == "cpp" and not EXTENSION_AVAILABLE:
        raise RuntimeError(f"{origin}='cpp' but the compiled extension ecgfast._C could not be imported "
                           f"({EXTENSION_ERROR}); build it with `{REBUILD_COMMAND}`, or choose 'numba' or 'torch'")
    return name


def default_backend() -> str:
    """The backend without ``ECGFAST_BACKEND``: ``cpp`` when the extension is loaded, else ``numba``."""
    return "cpp" if EXTENSION_AVAILABLE else "numba"


def requested_backend() -> str:
    """The backend ``ECGFAST_BACKEND`` asks for (read at each call), validated; its default when unset."""
    name = os.environ.get(BACKEND_ENV, "").strip().lower()
    return check_backend(name, BACKEND_ENV) if name else default_backend()


# Constant for torch.compile, as use_compiled: decided once per (op, device, backend) when traced.
@torch.compiler.assume_constant_result
def op_backend(op: str, device: torch.device | str, backend: str | None = None, has_numba: bool = False) -> str:
    """Which implementation serves ``ecgfast::<op>`` for a tensor on ``device``: ``cpp``, ``numba`` or ``torch``.

    ``backend``: the one asked for (``None``: :func:`requested_backend`, i.e. ``ECGFAST_BACKEND``);
    ``has_numba``: whether the op has a Numba CPU kernel. See the module's note for the rule.
    """
    name = requested_backend() if backend is None else check_backend(backend)
    if name == "torch":
        return "torch"
    if name == "numba" and has_numba and torch.device(device).type == "cpu":
        return "numba"
    return "cpp" if use_compiled(op, device) else "torch"
