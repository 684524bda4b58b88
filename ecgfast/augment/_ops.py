"""``ecgfast::augment_views`` on a fused backend, and its fake for torch.compile.

Which implementation serves a tensor is decided by :class:`ecgfast.augment.AugmentPipeline`:
the compiled op where it has a kernel for the tensor's device
(:func:`ecgfast._extension.use_compiled`), the Numba kernel for CPU tensors when
asked for (or when the extension is not built), else the plain-torch reference.
"""
from __future__ import annotations

import torch

from ecgfast._extension import EXTENSION_AVAILABLE, requested_backend

if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::augment_views")
    def _(x, params, sampling_rate):
        torch._check(x.dim() == 3)
        return x.new_empty((2, *x.shape))


def backend() -> str:
    """The CPU backend the pipeline uses by default: ``cpp``, ``numba`` or ``torch``."""
    return requested_backend()


def augment_views(x: torch.Tensor, params: torch.Tensor, sampling_rate: float, backend_name: str) -> torch.Tensor:
    """Both views (2, B, C, T) by a fused kernel: ``cpp`` (the compiled op, any device it was built for)
    or ``numba`` (CPU only: NumPy arrays in and out)."""
    if backend_name == "cpp":
        return torch.ops.ecgfast.augment_views(x, params, float(sampling_rate))
    if backend_name == "numba":
        if x.device.type != "cpu" or params.device.type != "cpu":
            raise ValueError(f"augment_views: the Numba backend runs on the CPU only, got x on {x.device} and "
                             f"params on {params.device}; other devices take the compiled op or the torch "
                             "reference (AugmentPipeline chooses)")
        from ecgfast.augment._numba import augment_views_numba

        return torch.from_numpy(augment_views_numba(x.contiguous().numpy(), params.contiguous().numpy(),
                                                    float(sampling_rate)))
    raise ValueError(f"augment_views: no fused kernel for backend {backend_name!r}")
