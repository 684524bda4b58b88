"""``ecgfast::augment_views`` on a fused backend, and its fake for torch.compile.

Which implementation serves a tensor is decided by :class:`ecgfast.augment.AugmentPipeline`
through the one policy of every op (:func:`ecgfast.base.extension.op_backend`): the Numba
kernel for CPU tensors when asked for (or when the extension is not built), the compiled op
where it has a kernel for the tensor's device, else the plain-torch reference.
"""
from __future__ import annotations

import torch

from ecgfast.base.extension import EXTENSION_AVAILABLE, requested_backend

if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::augment_views")
    def _(x, params, sampling_rate, view_length=None):
        torch._check(x.dim() == 3)
        length = x.shape[2] if view_length is None else view_length
        return x.new_empty((2, x.shape[0], x.shape[1], length))


def backend() -> str:
    """The backend the pipeline uses by default (``ECGFAST_BACKEND``, else ``cpp`` when built, else
    ``numba``): ``cpp``, ``numba`` or ``torch``."""
    return requested_backend()


def augment_views(x: torch.Tensor, params: torch.Tensor, sampling_rate: float, backend_name: str,
                  view_length: int | None = None) -> torch.Tensor:
    """Both views (2, B, C, L) by a fused kernel: ``cpp`` (the compiled op, any device it was built for)
    or ``numba`` (CPU only: NumPy arrays in and out). ``view_length`` L: ``None``, the views are the
    records (L = T, no crop step); an int, each view is first cropped to L samples (the crop columns)."""
    if backend_name == "cpp":
        if view_length is None:  # the seed's call, unchanged
            return torch.ops.ecgfast.augment_views(x, params, float(sampling_rate))
        return torch.ops.ecgfast.augment_views(x, params, float(sampling_rate), int(view_length))
    if backend_name == "numba":
        if x.device.type != "cpu" or params.device.type != "cpu":
            raise ValueError(f"augment_views: the Numba backend runs on the CPU only, got x on {x.device} and "
                             f"params on {params.device}; other devices take the compiled op or the torch "
                             "reference (AugmentPipeline chooses)")
        from ecgfast.augment._numba import augment_views_numba, crop_views_numba

        xn, pn = x.contiguous().numpy(), params.contiguous().numpy()
        # (views' inputs, B, C, L): one batch read by both views, or each view's crops.
        inputs = xn[None] if view_length is None else crop_views_numba(xn, pn, _checked_view(xn, pn, view_length))
        return torch.from_numpy(augment_views_numba(inputs, pn, float(sampling_rate)))
    raise ValueError(f"augment_views: no fused kernel for backend {backend_name!r}")


def _checked_view(x, params, view_length) -> int:
    """The Numba kernel's crop arguments, checked as the compiled op checks them."""
    from ecgfast.augment.params import COL

    L, T = int(view_length), x.shape[2]
    if not 0 < L <= T:
        raise ValueError(f"augment_views: view length {L} must be in [1, {T}] (the record's samples)")
    start = params[..., COL["crop_start"]]
    if not ((start >= 0) & (start + L <= T)).all():
        raise ValueError(f"augment_views: crop start out of range for views of {L} samples of a record of {T}")
    return L
