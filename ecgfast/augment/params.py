"""Per-sample augmentation parameters, drawn by a counter-based hash.

Every (view, sample) gets its own apply-decisions and parameters from a
splitmix64 hash of (seed, step, view, sample_id) and the parameter's slot: a
pure function of those five integers, so the draws are the same on every backend, for any
thread count, and for any way of splitting a batch (partners aside, which are
drawn among the samples of the call). They go into a small float64 tensor
``(2, B, N_PARAMS)`` that every kernel reads; the kernels draw only the
per-element noise, from ``noise_key`` (see ``ecgfast::augment_views``).
Drawn on the host with NumPy (CPU only by design, a few KB per call); the
pipeline copies the tensor to the input's device.

Views beyond the seven (step 0, before them; off unless asked for): ``crop_start``
cuts each view of ``length`` samples from the record of ``record_length``; with
``AugmentParams.resized_crop_min`` the random-resized-crop (``rrc_on``) reads
``rrc_start + t * rrc_frac`` of the record instead (a drawn fraction of the crop,
stretched back to its length). Their hash slots come after the seed's, so the
seed's draws, and views, are unchanged.

The band-pass is a zero-phase cascade of a 2nd-order Butterworth high-pass
(f_low) and low-pass (f_high), i.e. ``scipy.signal.butter(2, f, btype, fs=fs,
output="sos")``, whose bilinear-transform coefficients have a closed form
computed here for all samples at once.

The column layout (``COLUMNS``) and the band-pass padding (``BANDPASS_PADLEN``) live
here; the Numba kernel and the torch reference read them from here, and the compiled
kernels' own (csrc/augment/augment_lead.h, reported by ``ecgfast::augment_param_layout``
and ``ecgfast::augment_bandpass_pad``) are checked against them when this module is
imported: a build out of step with this file is refused, naming the column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest

import numpy as np
from scipy.special import betaincinv

AUGMENTATIONS = ("frequency_warp", "bandpass", "mixup", "cutmix", "motion_artifact", "channel_noise",
                 "temporal_dropout")
# View transforms beyond the seven, switched and ablated like them. The random-resized-crop runs only
# when AugmentParams.resized_crop_min is set (``--resized-crop MIN``): off in the seed's recipe.
VIEW_AUGMENTATIONS = ("resized_crop",)
CONFIGS = ("full",) + tuple("no-" + a.replace("_", "-") for a in AUGMENTATIONS + VIEW_AUGMENTATIONS)

DEFAULT_RATES = {"frequency_warp": 0.5, "bandpass": 0.3, "mixup": 0.4, "cutmix": 0.25,
                 "motion_artifact": 0.2, "channel_noise": 0.6, "temporal_dropout": 0.3,
                 "resized_crop": 1.0}  # as SimCLR's crop: every view, its kept fraction drawn in [MIN, 1]

# Column layout of the parameter tensor: its one home. The compiled kernels' (augment_lead.h) is checked
# against it at import (check_compiled_layout); _numba.py and the reference index through COL.
COLUMNS = (
    "warp_on", "warp_r",
    "bp_on", "hp_b0", "hp_b1", "hp_b2", "hp_a1", "hp_a2", "lp_b0", "lp_b1", "lp_b2", "lp_a1", "lp_a2",
    "mix_on", "mix_lambda", "mix_partner",
    "cut_on", "cut_start", "cut_len", "cut_partner",
    "motion_on", "motion_amp", "motion_freq", "motion_phase",
    "noise_on", "noise_frac",
    "drop_on", "drop_start", "drop_len",
    "noise_key_lo", "noise_key_hi",
    "crop_start", "rrc_on", "rrc_start", "rrc_frac",
)
COL = {name: i for i, name in enumerate(COLUMNS)}
N_PARAMS = len(COLUMNS)
BANDPASS_PADLEN = 15  # scipy.signal.sosfiltfilt's default for two biquads: 3 * (2 * 2 + 1)
MIN_LENGTH = 64


def layout_mismatch(columns, bandpass_pad: int) -> str | None:
    """Where a compiled layout (its column names in order, its band-pass padding) differs from
    ``COLUMNS`` and ``BANDPASS_PADLEN``: one line naming the first differing column, or None."""
    for i, (want, got) in enumerate(zip_longest(COLUMNS, tuple(columns))):
        if want != got:
            have = "no column" if got is None else f"column {got!r}"
            wanted = "no column" if want is None else f"{want!r}"
            return (f"parameter column {i}: the compiled kernels have {have} (csrc/augment/augment_lead.h), "
                    f"ecgfast/augment/params.py COLUMNS has {wanted}")
    if int(bandpass_pad) != BANDPASS_PADLEN:
        return (f"band-pass padding: the compiled kernels pad by {bandpass_pad} samples "
                f"(csrc/augment/augment_lead.h kBandpassPad), ecgfast/augment/params.py BANDPASS_PADLEN "
                f"is {BANDPASS_PADLEN}")
    return None


def check_compiled_layout() -> None:
    """Refuse (ImportError) a loaded extension whose parameter layout or band-pass padding is not this
    module's: its kernels would read the wrong columns. Nothing to check without the extension."""
    from ecgfast.base import extension

    if not extension.EXTENSION_AVAILABLE:
        return
    import torch

    rebuild = f"rebuild the extension ({extension.REBUILD_COMMAND})"
    try:
        columns = torch.ops.ecgfast.augment_param_layout()
        pad = torch.ops.ecgfast.augment_bandpass_pad()
    except (AttributeError, RuntimeError):
        raise ImportError(f"ecgfast._C does not report its augmentation parameter layout (built from an older "
                          f"source): {rebuild}") from None
    problem = layout_mismatch(columns, pad)
    if problem is not None:
        raise ImportError(f"ecgfast._C is out of step with the Python package: {problem}; {rebuild}")


check_compiled_layout()

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class AugmentParams:
    """Ranges of the seven augmentations (DESIGN.md); every one can be overridden."""

    warp_range: tuple = (0.95, 1.05)
    bandpass_low: tuple = (0.5, 1.5)        # Hz
    bandpass_high: tuple = (40.0, 60.0)     # Hz, capped at nyquist_fraction * fs / 2
    nyquist_fraction: float = 0.95
    mixup_alpha: float = 0.4                # lambda ~ Beta(alpha, alpha), folded to >= 0.5
    cutmix_span: tuple = (0.10, 0.30)       # fraction of T
    motion_amplitude: tuple = (0.01, 0.05)  # mV
    motion_frequency: tuple = (0.5, 2.0)    # Hz
    noise_fraction: tuple = (0.005, 0.02)   # of each lead's std
    dropout_span: tuple = (0.05, 0.20)      # fraction of T
    resized_crop_min: float | None = None   # random-resized-crop keeps a fraction in [min, 1]; None: off
    rates: dict = field(default_factory=lambda: dict(DEFAULT_RATES))
    enabled: dict = field(default_factory=lambda: {a: True for a in AUGMENTATIONS + VIEW_AUGMENTATIONS})

    def __post_init__(self):
        check_resized_crop_min(self.resized_crop_min)


def check_resized_crop_min(value, flag: str = "resized_crop_min") -> None:
    """The random-resized-crop's smallest kept fraction: None (off) or in (0, 1]."""
    if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise ValueError(f"{flag} {value!r}: the kept fraction of a random-resized-crop must be in (0, 1]")


def view_samples(crop_seconds: float, sampling_rate: float, record_length: int, flag: str = "crop_seconds") -> int:
    """Samples of a view of ``crop_seconds`` s (rounded) cut from records of ``record_length`` samples;
    a crop longer than the record, or shorter than the augmentations' minimum, is a ValueError."""
    if not (isinstance(crop_seconds, (int, float)) and crop_seconds > 0 and np.isfinite(crop_seconds)):
        raise ValueError(f"{flag} {crop_seconds!r}: must be a positive number of seconds")
    n = int(round(crop_seconds * sampling_rate))
    if n > record_length:
        raise ValueError(f"{flag} {crop_seconds:g}: a crop of {n} samples at {sampling_rate:g} Hz is longer than "
                         f"the record window ({record_length} samples = {record_length / sampling_rate:g} s)")
    if n < MIN_LENGTH:
        raise ValueError(f"{flag} {crop_seconds:g}: a crop of {n} samples at {sampling_rate:g} Hz is shorter than "
                         f"the augmentations' minimum of {MIN_LENGTH} samples")
    return n


def enabled_for_config(name: str) -> dict:
    """``"full"`` or ``"no-<augmentation>"`` (ablations) -> which augmentations are on."""
    if name not in CONFIGS:
        raise ValueError(f"unknown augmentation config {name!r}: expected one of {', '.join(CONFIGS)}")
    off = name[3:].replace("-", "_") if name != "full" else None
    return {a: a != off for a in AUGMENTATIONS + VIEW_AUGMENTATIONS}


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return x ^ (x >> np.uint64(31))


def sample_keys(seed: int, step: int, view: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """uint64 key of each (view, sample) of one call: a hash of (seed, step, view, sample)."""
    h = _splitmix64(np.full(np.broadcast(view, sample).shape, np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
    for part in (np.uint64(step & 0xFFFFFFFFFFFFFFFF), view.astype(np.uint64), sample.astype(np.uint64)):
        h = _splitmix64(h ^ part)
    return h


# Each parameter slot hashes the sample key with its own salt: independent streams per parameter.
# Slots 0-21 are the seed's (21 keys the noise); the crops' slots come after, so the seed's draws
# are unchanged by them.
_NOISE_KEY_SLOT = 21
_CROP_SLOTS = (22, 23, 24, 25)  # crop start, resized-crop flag, kept fraction, kept part's offset
_SLOT_SALTS = _splitmix64(np.arange(_CROP_SLOTS[-1] + 1, dtype=np.uint64))


def butterworth2(f: np.ndarray, fs: float, highpass: bool) -> np.ndarray:
    """Biquad (b0, b1, b2, a1, a2) of ``scipy.signal.butter(2, f, 'high'|'low', fs=fs)``, vectorised."""
    k = np.tan(np.pi * f / fs)  # bilinear transform with pre-warping
    norm = 1.0 / (1.0 + np.sqrt(2.0) * k + k * k)
    a1 = 2.0 * (k * k - 1.0) * norm
    a2 = (1.0 - np.sqrt(2.0) * k + k * k) * norm
    if highpass:
        b0 = norm
        b1 = -2.0 * norm
    else:
        b0 = k * k * norm
        b1 = 2.0 * b0
    return np.stack([b0, b1, b0, a1, a2], axis=-1)


def draw_params(batch: int, length: int, sampling_rate: float, seed: int, step: int,
                p: AugmentParams, sample_ids: np.ndarray | None = None, record_length: int | None = None) -> np.ndarray:
    """The (2, B, N_PARAMS) float64 parameters of both views of a batch.

    ``length``: the views' samples (the seven's spans are fractions of it); ``record_length``: the
    records' (default: ``length``), from which each view is cropped (``crop_start``) and, with the
    random-resized-crop, resampled (``rrc_start + t * rrc_frac`` reads the crop's kept part).
    """
    record_length = length if record_length is None else record_length
    if not 0 < length <= record_length:
        raise ValueError(f"views of {length} samples cannot be cut from records of {record_length}")
    sample = np.arange(batch, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, np.int64)
    view = np.arange(2, dtype=np.int64)[:, None]
    sample = sample[None, :]
    keys = sample_keys(seed, step, view, sample)  # (2, B)
    # Every slot's hash in one vectorised call: (slots, 2, B); the last slot keys the noise.
    slot_hashes = _splitmix64(keys[None] ^ _SLOT_SALTS[:, None, None])
    uniforms = (slot_hashes >> np.uint64(11)).astype(np.float64) / 2.0 ** 53
    u = lambda slot: uniforms[slot]  # noqa: E731
    lerp = lambda rng, x: rng[0] + (rng[1] - rng[0]) * x  # noqa: E731
    out = np.zeros((2, batch, N_PARAMS))

    def flag(name, slot):
        on = p.enabled.get(name, True) and p.rates.get(name, 0.0) > 0
        return (u(slot) < p.rates[name]).astype(np.float64) if on else np.zeros((2, batch))

    def partner(slot):  # another sample of the batch (itself only when B == 1)
        if batch == 1:
            return np.zeros((2, 1))
        return (np.arange(batch)[None, :] + 1 + np.floor(u(slot) * (batch - 1))) % batch

    out[..., COL["warp_on"]] = flag("frequency_warp", 0)
    out[..., COL["warp_r"]] = lerp(p.warp_range, u(1))

    out[..., COL["bp_on"]] = flag("bandpass", 2)
    nyquist_cap = p.nyquist_fraction * sampling_rate / 2
    f_low = np.minimum(lerp(p.bandpass_low, u(3)), nyquist_cap / 2)
    f_high = np.minimum(lerp(p.bandpass_high, u(4)), nyquist_cap)
    out[..., COL["hp_b0"]:COL["hp_a2"] + 1] = butterworth2(f_low, sampling_rate, highpass=True)
    out[..., COL["lp_b0"]:COL["lp_a2"] + 1] = butterworth2(f_high, sampling_rate, highpass=False)

    out[..., COL["mix_on"]] = flag("mixup", 5)
    lam = betaincinv(p.mixup_alpha, p.mixup_alpha, u(6))  # Beta(alpha, alpha) by inverse CDF
    out[..., COL["mix_lambda"]] = np.maximum(lam, 1.0 - lam)
    out[..., COL["mix_partner"]] = partner(7)

    out[..., COL["cut_on"]] = flag("cutmix", 8)
    cut_len = np.round(lerp(p.cutmix_span, u(9)) * length)
    out[..., COL["cut_len"]] = cut_len
    out[..., COL["cut_start"]] = np.floor(u(10) * (length - cut_len + 1))
    out[..., COL["cut_partner"]] = partner(11)

    out[..., COL["motion_on"]] = flag("motion_artifact", 12)
    out[..., COL["motion_amp"]] = lerp(p.motion_amplitude, u(13))
    out[..., COL["motion_freq"]] = lerp(p.motion_frequency, u(14))
    out[..., COL["motion_phase"]] = 2 * np.pi * u(15)

    out[..., COL["noise_on"]] = flag("channel_noise", 16)
    out[..., COL["noise_frac"]] = lerp(p.noise_fraction, u(17))

    out[..., COL["drop_on"]] = flag("temporal_dropout", 18)
    drop_len = np.round(lerp(p.dropout_span, u(19)) * length)
    out[..., COL["drop_len"]] = drop_len
    # Interior spans only, so each has a sample on both sides to interpolate between.
    out[..., COL["drop_start"]] = 1 + np.floor(u(20) * (length - drop_len - 1))

    # The crop (step 0): a start in [0, R - L]; the resized crop keeps a fraction f in [min, 1] of the
    # crop's span L - 1, at an offset in [0, (1 - f)(L - 1)], and stretches it back over L samples.
    start = np.floor(u(_CROP_SLOTS[0]) * (record_length - length + 1))
    out[..., COL["crop_start"]] = start
    if p.resized_crop_min is not None:
        out[..., COL["rrc_on"]] = flag("resized_crop", _CROP_SLOTS[1])
        frac = lerp((p.resized_crop_min, 1.0), u(_CROP_SLOTS[2]))
        out[..., COL["rrc_frac"]] = frac
        out[..., COL["rrc_start"]] = start + u(_CROP_SLOTS[3]) * (1.0 - frac) * (length - 1)

    key = slot_hashes[_NOISE_KEY_SLOT]
    out[..., COL["noise_key_lo"]] = (key & np.uint64(0xFFFFFFFF)).astype(np.float64)
    out[..., COL["noise_key_hi"]] = (key >> np.uint64(32)).astype(np.float64)
    return out
