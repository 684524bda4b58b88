"""``ecgfast::augment_views`` on the backend in use, and its fake for torch.compile."""
from __future__ import annotations

import torch

from ecgfast._extension import EXTENSION_AVAILABLE, requested_backend

if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::augment_views")
    def _(x, params, sampling_rate):
        torch._check(x.dim() == 3)
        return x.new_empty((2, *x.shape))


def backend() -> str:
    """The backend that serves the augmentation op: ``cpp``, ``numba`` or ``torch``."""
    return requested_backend()


def augment_views(x: torch.Tensor, params: torch.Tensor, sampling_rate: float, backend_name: str) -> torch.Tensor:
    if backend_name == "cpp":
        return torch.ops.ecgfast.augment_views(x, params, float(sampling_rate))
    if backend_name == "numba":
        from ecgfast.augment._numba import augment_views_numba

        return torch.from_numpy(augment_views_numba(x.contiguous().numpy(), params.contiguous().numpy(),
                                                    float(sampling_rate)))
    raise ValueError(f"augment_views: no fused kernel for backend {backend_name!r}")
