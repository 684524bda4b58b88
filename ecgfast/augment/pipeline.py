"""``AugmentPipeline``: two views of a batch through the seven ECG augmentations."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ecgfast.augment import functional as F
from ecgfast.augment._ops import augment_views
from ecgfast.augment.params import (
    AUGMENTATIONS,
    COL,
    MIN_LENGTH,
    VIEW_AUGMENTATIONS,
    AugmentParams,
    draw_params,
    enabled_for_config,
    view_samples,
)
from ecgfast.base.extension import check_backend, op_backend, requested_backend


class AugmentPipeline:
    """Makes two augmented views of every ECG of a batch (SimCLR/BYOL positives).

    ``view1, view2 = pipe(x)`` with ``x`` (B, leads, T) in mV, on any device and of any
    floating dtype; the views are float32 (the kernels compute in float32: an fp16,
    bf16 or float64 batch gives the views of its values in float32). Each view of
    each sample draws its own apply-decisions and parameters (DESIGN.md's table,
    in its order), from a counter-based hash of (seed, step, view, sample): the
    same seed and step give the same views on every backend and thread count.
    ``step`` defaults to an internal counter that advances by one per call
    (``state_dict`` saves it, so a resumed run continues the same sequence).

    Views shorter than the record, and the random-resized-crop: with ``crop_seconds`` each view is
    first cut to that many seconds at a start drawn per view and sample (uniform over the record),
    and with ``resized_crop_min`` a drawn fraction in [min, 1] of that crop is resampled back to its
    length (linear interpolation); the seven augmentations then run on the crop, in their order, with
    mixup and CutMix reading the partner's crop of the same view. So the views are
    ``(B, leads, round(crop_seconds * sampling_rate))``. Neither set (the default): no crop step,
    the seed's views bit for bit.

    Args:
        sampling_rate: Hz of ``x`` (100 or 500 for PTB-XL).
        seed: seed of the augmentation stream.
        enabled: ``None`` (all), a config name (``"full"``, ``"no-mixup"``, ...),
            or a dict ``{augmentation: bool}`` of switches to change.
        rates: ``{augmentation: probability}`` overrides of DESIGN.md's rates.
        backend: ``"cpp"``, ``"numba"`` or ``"torch"`` (the plain reference);
            default: ``ECGFAST_BACKEND``, else the compiled op when built. Which
            implementation then serves a tensor is the one policy of every op
            (:func:`ecgfast.base.extension.op_backend`): ``numba`` serves CPU
            tensors only; a tensor on another device takes the compiled op where
            the build has a kernel for that device, else the torch reference (with
            one warning naming the rebuild command).
        leads: number of leads ``x`` must have.
        crop_seconds: the views' length in seconds (``None``: the whole record); a crop longer
            than the record is a ValueError at the call.
        **params: overrides of :class:`AugmentParams` ranges, e.g. ``mixup_alpha=0.2`` or
            ``resized_crop_min=0.5`` (turns the random-resized-crop on; in (0, 1]).
    """

    def __init__(self, sampling_rate: float = 100, seed: int = 0, enabled=None, rates=None,
                 backend: str | None = None, leads: int = 12, crop_seconds: float | None = None, **params):
        if not sampling_rate > 0:
            raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
        if crop_seconds is not None:
            view_samples(crop_seconds, float(sampling_rate), record_length=2**62)  # the record is known at the call
        self.crop_seconds = crop_seconds
        self.sampling_rate, self.seed, self.leads, self.step = float(sampling_rate), int(seed), leads, 0
        known = {f.name for f in dataclasses.fields(AugmentParams)} - {"rates", "enabled"}
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"unknown augmentation parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        self.params = AugmentParams(**params)
        if isinstance(enabled, str):
            enabled = enabled_for_config(enabled)
        for name, on in (enabled or {}).items():
            self._check_name(name)
            self.params.enabled[name] = bool(on)
        for name, rate in (rates or {}).items():
            self._check_name(name)
            if not 0 <= rate <= 1:
                raise ValueError(f"rate of {name} must be in [0, 1], got {rate}")
            self.params.rates[name] = float(rate)
        self.backend = requested_backend() if backend is None else check_backend(backend)

    @staticmethod
    def _check_name(name):
        if name not in AUGMENTATIONS + VIEW_AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}: expected one of "
                             f"{', '.join(AUGMENTATIONS + VIEW_AUGMENTATIONS)}")

    def view_length(self, record_length: int) -> int | None:
        """Samples of the views cut from records of ``record_length``; ``None`` when the views are the
        records themselves with no crop step (no ``crop_seconds``, no random-resized-crop)."""
        if self.crop_seconds is not None:
            return view_samples(self.crop_seconds, self.sampling_rate, record_length)
        rrc = self.params.resized_crop_min is not None and self.params.enabled.get("resized_crop", True)
        return record_length if rrc else None

    def _check_input(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor (batch, leads, time), got {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(f"expected a (batch, leads, time) tensor, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor of mV, got {x.dtype}")
        if x.shape[1] != self.leads:
            raise ValueError(f"expected {self.leads} leads, got {x.shape[1]} (shape {tuple(x.shape)})")
        if x.shape[2] < MIN_LENGTH:
            raise ValueError(f"signal length {x.shape[2]} is too short: the augmentations need at least "
                             f"{MIN_LENGTH} samples")
        if x.shape[0] == 0:
            raise ValueError("empty batch")
        x = x.float()  # the kernels' type; a no-op for float32
        # One reduction instead of an elementwise mask: any NaN or Inf makes the sum non-finite. Summed
        # in float32 after the conversion: an fp16 sum overflows on valid batches (256 x 12 x 1000 at
        # 0.05 mV is 1.5e5 > 65504); a float32 one only at |x| ~ 1e31 mV.
        finite = torch.isfinite(x.sum())
        if x.device.type != "cpu":  # reading the flag on the host would wait for the device: assert there
            torch._assert_async(finite, "AugmentPipeline: input contains NaN or Inf")
        elif not finite:
            raise ValueError("input contains NaN or Inf (in float32, the augmentations' precision)")
        return x.contiguous()

    def draw(self, batch: int, length: int, step: int, sample_ids=None) -> torch.Tensor:
        """The (2, batch, N_PARAMS) float64 parameter tensor of one call for records of ``length`` samples,
        on the CPU (drawn with NumPy)."""
        view = self.view_length(length) or length
        return torch.from_numpy(draw_params(batch, view, self.sampling_rate, self.seed, step,
                                            self.params, sample_ids, record_length=length))

    def __call__(self, x: torch.Tensor, step: int | None = None, sample_ids=None):
        x = self._check_input(x)
        if step is None:
            step, self.step = self.step, self.step + 1
        view_length = self.view_length(x.shape[2])
        params = self.draw(x.shape[0], x.shape[2], step, sample_ids)
        impl = op_backend("augment_views", x.device, self.backend, has_numba=True)
        if impl == "numba":
            views = augment_views(x, params, self.sampling_rate, "numba", view_length)
        elif impl == "cpp":
            views = augment_views(x, _to_device(params, x.device), self.sampling_rate, "cpp", view_length)
        else:  # asked for, or no compiled kernel for this device (op_backend warned once)
            views = reference_views(x, params, self.sampling_rate, view_length)
        return views[0], views[1]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.step = int(state["seed"]), int(state["step"])

    def __repr__(self) -> str:
        on = [a for a in AUGMENTATIONS if self.params.enabled[a]]
        crops = "" if self.crop_seconds is None else f", crop_seconds={self.crop_seconds:g}"
        if self.params.resized_crop_min is not None and self.params.enabled["resized_crop"]:
            crops += f", resized_crop_min={self.params.resized_crop_min:g}"
        return (f"{type(self).__name__}(sampling_rate={self.sampling_rate:g}, seed={self.seed}, "
                f"backend={self.backend!r}, enabled={on}{crops})")


class TorchReferencePipeline(AugmentPipeline):
    """The same pipeline in plain vectorised torch (``ecgfast.augment.functional``)."""

    def __init__(self, *args, **kwargs):
        kwargs["backend"] = "torch"
        super().__init__(*args, **kwargs)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``. To a GPU from pinned memory: from pageable memory the copy would block
    the host until the stream drains; from pinned memory it is queued on the stream (the caching host
    allocator keeps the buffer alive until the copy is done), so a training step needs no host sync."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


_FLAGS = ("warp_on", "bp_on", "mix_on", "cut_on", "motion_on", "noise_on", "drop_on")


def reference_views(x: torch.Tensor, params: torch.Tensor, sampling_rate: float,
                    view_length: int | None = None) -> torch.Tensor:
    """Both views by the functional reference: (2, B, C, L), on ``x``'s device.

    ``view_length`` as the op's: ``None``, no crop step (L = T); else each view is first cut
    (``crop_start``) or resized-cropped (``rrc_on``) to L samples, and the seven run on that.

    The fused op's contract, except that ``params`` may also stay on the CPU (as
    :meth:`AugmentPipeline.draw` returns them) whatever ``x``'s device: which samples
    each augmentation takes is read from them on the host, so selecting them needs
    neither ``nonzero`` on the device (a sync per augmentation and view) nor values
    (it runs on ``meta``). Parameters on another device are read back once.
    """
    host = params if params.device.type == "cpu" else params.cpu()
    params = params if params.device == x.device else _to_device(params, x.device)
    # The samples of each (view, augmentation), all uploaded at once; split by sizes known on the host.
    on = host.numpy()[..., [COL[f] for f in _FLAGS + ("rrc_on",)]] != 0  # (2, B, 8)
    picks = [np.flatnonzero(on[v, :, k]) for v in range(2) for k in range(len(_FLAGS) + 1)]
    flat = _to_device(torch.from_numpy(np.concatenate(picks)), x.device)
    selection = dict(zip([(v, f) for v in range(2) for f in _FLAGS + ("rrc_on",)],
                         flat.split([len(i) for i in picks])))
    views = []
    for v in range(2):
        p = params[v]
        xv = x if view_length is None else _crop_view(x, p, selection[v, "rrc_on"], view_length)
        views.append(_seven_on_view(xv, p, {f: selection[v, f] for f in _FLAGS}, sampling_rate))
    return torch.stack(views)


def _seven_on_view(xv: torch.Tensor, p: torch.Tensor, selection: dict, sampling_rate: float) -> torch.Tensor:
    """The seven augmentations of one view, in order, each on the samples ``selection[flag]`` picks."""
    y = xv.clone()

    def apply(flag, fn):
        idx = selection[flag]
        if idx.numel():
            y[idx] = fn(y[idx], p[idx])

    def partner(col, q):  # partners are read from the view's input
        return xv[q[:, COL[col]].long()]

    apply("warp_on", lambda s, q: F.frequency_warp(s, q[:, COL["warp_r"]]))
    apply("bp_on", lambda s, q: F.bandpass(s, torch.stack(
        [q[:, COL["hp_b0"]:COL["hp_a2"] + 1], q[:, COL["lp_b0"]:COL["lp_a2"] + 1]], dim=1)))
    apply("mix_on", lambda s, q: F.mixup(s, partner("mix_partner", q), q[:, COL["mix_lambda"]]))
    apply("cut_on", lambda s, q: F.cutmix(s, partner("cut_partner", q), q[:, COL["cut_start"]].long(),
                                          q[:, COL["cut_len"]].long()))
    apply("motion_on", lambda s, q: F.motion_artifact(s, q[:, COL["motion_amp"]], q[:, COL["motion_freq"]],
                                                      q[:, COL["motion_phase"]], sampling_rate))
    apply("noise_on", lambda s, q: F.channel_noise(s, q[:, COL["noise_frac"]], q[:, COL["noise_key_lo"]],
                                                   q[:, COL["noise_key_hi"]]))
    apply("drop_on", lambda s, q: F.temporal_dropout(s, q[:, COL["drop_start"]].long(), q[:, COL["drop_len"]].long()))
    return y


def _crop_view(x: torch.Tensor, p: torch.Tensor, rrc: torch.Tensor, length: int) -> torch.Tensor:
    """Step 0 of one view: each record cut to ``length`` samples at ``crop_start``, the samples in
    ``rrc`` resized-cropped instead."""
    y = F.crop(x, p[:, COL["crop_start"]], length)
    if rrc.numel():
        q = p[rrc]
        y[rrc] = F.resized_crop(x[rrc], q[:, COL["rrc_start"]], q[:, COL["rrc_frac"]], length)
    return y
