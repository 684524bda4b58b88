"""Loading the compiled extension and choosing a backend.

The compiled ops (``ecgfast._C``) register themselves with torch's dispatcher
under ``torch.ops.ecgfast``. When the extension was not built, or when
``ECGFAST_BACKEND`` asks for it, the Numba (CPU) or plain-torch
implementations serve the same calls.

``ECGFAST_BACKEND`` = ``cpp`` (default when built) | ``numba`` | ``torch``.
"""
from __future__ import annotations

import os

BACKENDS = ("cpp", "numba", "torch")

try:  # importing the shared library runs its TORCH_LIBRARY registrations
    from ecgfast import _C  # noqa: F401

    EXTENSION_AVAILABLE = True
    EXTENSION_ERROR: str | None = None
except ImportError as exc:  # not built (ECGFAST_NO_EXTENSION=1) or built for another torch
    EXTENSION_AVAILABLE = False
    EXTENSION_ERROR = str(exc)


def requested_backend() -> str:
    """The backend the environment asks for, validated against what is available."""
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
