"""The seven augmentations as small pure torch functions (the reference implementation).

Each takes a batch ``x`` of shape (n, C, T) and per-sample parameters (tensors
of shape (n,)), and returns a new tensor; ``TorchReferencePipeline`` chains them
exactly as the fused ``ecgfast::augment_views`` kernels do, so all backends can
be compared element by element. Vectorised over samples and leads; no compiled
code beyond torch itself.
"""
from __future__ import annotations

import math

import torch

from ecgfast.augment.params import BANDPASS_PADLEN

_SQRT_1_5 = math.sqrt(1.5)


def frequency_warp(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Resample time by factor ``r`` about the centre, keeping the length (linear interpolation).

    y(t) = x(c + (t - c) r), c = (T - 1) / 2, positions clamped to the record.
    """
    n, C, T = x.shape
    c = (T - 1) / 2.0
    t = torch.arange(T, dtype=torch.float64)
    pos = (c + (t[None, :] - c) * r.double()[:, None]).clamp(0, T - 1)  # (n, T)
    i0 = pos.floor().long()
    w = (pos - i0).float()[:, None, :]
    i1 = (i0 + 1).clamp(max=T - 1)
    g0 = torch.gather(x, 2, i0[:, None, :].expand(n, C, T))
    g1 = torch.gather(x, 2, i1[:, None, :].expand(n, C, T))
    return g0 * (1 - w) + g1 * w


def _sosfilt(sos: torch.Tensor, x: torch.Tensor, zi: torch.Tensor) -> torch.Tensor:
    """Transposed direct form II over time, per-sample biquads. x (n, C, L) float64.

    As ``scipy.signal.sosfilt(sos, x, zi=zi * x[0])``: every section starts from
    its steady state scaled by the cascade's first input.
    """
    y = x.clone()
    x0 = x[:, :, 0]
    for s in range(sos.shape[1]):
        b0, b1, b2, a1, a2 = (sos[:, s, k][:, None] for k in range(5))
        z0 = zi[:, s, 0][:, None] * x0
        z1 = zi[:, s, 1][:, None] * x0
        out = torch.empty_like(y)
        for t in range(y.shape[2]):
            xt = y[:, :, t]
            yt = b0 * xt + z0
            z0 = b1 * xt - a1 * yt + z1
            z1 = b2 * xt - a2 * yt
            out[:, :, t] = yt
        y = out
    return y


def _sos_zi(sos: torch.Tensor) -> torch.Tensor:
    """``scipy.signal.sosfilt_zi`` for per-sample cascades: (n, S, 2), steady state of a unit step."""
    zi = torch.empty(sos.shape[0], sos.shape[1], 2, dtype=torch.float64)
    scale = torch.ones(sos.shape[0], dtype=torch.float64)
    for s in range(sos.shape[1]):
        b0, b1, b2, a1, a2 = (sos[:, s, k] for k in range(5))
        B0, B1 = b1 - a1 * b0, b2 - a2 * b0
        z0 = (B0 + B1) / (1 + a1 + a2)
        zi[:, s, 0] = scale * z0
        zi[:, s, 1] = scale * (B1 - a2 * z0)
        scale = scale * (b0 + b1 + b2) / (1 + a1 + a2)
    return zi


def bandpass(x: torch.Tensor, sos: torch.Tensor) -> torch.Tensor:
    """Zero-phase filtering as ``scipy.signal.sosfiltfilt`` (odd padding of 15, steady-state start).

    sos: (n, S, 5) rows (b0, b1, b2, a1, a2) per sample, e.g. high-pass then low-pass biquad.
    """
    n, C, T = x.shape
    pad = BANDPASS_PADLEN
    if T <= pad:
        raise ValueError(f"bandpass: signal length {T} must exceed the filter padding {pad}")
    xd = x.double()
    left = 2 * xd[:, :, :1] - xd[:, :, 1:pad + 1].flip(2)
    right = 2 * xd[:, :, -1:] - xd[:, :, -pad - 1:-1].flip(2)
    ext = torch.cat([left, xd, right], dim=2)
    zi = _sos_zi(sos.double())
    y = _sosfilt(sos.double(), ext, zi)
    y = _sosfilt(sos.double(), y.flip(2), zi).flip(2)
    return y[:, :, pad:pad + T].to(x.dtype)


def mixup(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam * x + (1 - lam) * partner, lam >= 0.5 so the sample stays the dominant one."""
    lam = lam.to(x.dtype)[:, None, None]
    return lam * x + (1 - lam) * partner


def cutmix(x: torch.Tensor, partner: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Replace samples [start, start + length) of all leads by the partner's."""
    t = torch.arange(x.shape[2])
    inside = (t[None, :] >= start[:, None]) & (t[None, :] < (start + length)[:, None])
    return torch.where(inside[:, None, :], partner, x)


def motion_artifact(x: torch.Tensor, amplitude: torch.Tensor, frequency: torch.Tensor, phase: torch.Tensor,
                    sampling_rate: float) -> torch.Tensor:
    """Add baseline wander A sin(2 pi f t / fs + phi) (mV) to every lead."""
    t = torch.arange(x.shape[2], dtype=torch.float64)
    wave = amplitude.double()[:, None] * torch.sin(
        2 * math.pi * frequency.double()[:, None] * t[None, :] / sampling_rate + phase.double()[:, None])
    return x + wave.to(x.dtype)[:, None, :]


def _lowbias32(v: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' lowbias32) on int64 tensors holding uint32 values."""
    m = 0xFFFFFFFF
    v = v ^ (v >> 16)
    v = (v * 0x7FEB352D) & m
    v = v ^ (v >> 15)
    v = (v * 0x846CA68B) & m
    return v ^ (v >> 16)


def hash_noise(key_lo: torch.Tensor, key_hi: torch.Tensor, channels: int, length: int) -> torch.Tensor:
    """Unit-variance noise (n, C, T) keyed per sample: an Irwin-Hall sum of eight 16-bit uniforms.

    z = (sum of 8 U(0,1) - 4) * sqrt(12 / 8): mean 0, variance 1, bell-shaped
    (kurtosis 2.85, |z| <= 4.9). Each element hashes its own counter, so any
    backend and any thread computes the same value.
    """
    e = torch.arange(channels * length, dtype=torch.int64).view(1, channels, length) * 4
    lo = key_lo.long().view(-1, 1, 1)
    hi = key_hi.long().view(-1, 1, 1)
    total = torch.zeros(key_lo.shape[0], channels, length, dtype=torch.int64)
    for j in range(4):
        w = _lowbias32((_lowbias32((e + j) ^ lo) + hi) & 0xFFFFFFFF)
        total += (w & 0xFFFF) + (w >> 16)
    return ((total.float() + 4.0) * (1.0 / 65536.0) - 4.0) * _SQRT_1_5


def channel_noise(x: torch.Tensor, fraction: torch.Tensor, key_lo: torch.Tensor,
                  key_hi: torch.Tensor) -> torch.Tensor:
    """Add noise of sigma = fraction x (that lead's std) to each lead."""
    std = x.double().std(dim=2, unbiased=False)  # (n, C)
    sigma = (fraction.double()[:, None] * std).float()
    return x + sigma[:, :, None] * hash_noise(key_lo, key_hi, x.shape[1], x.shape[2])


def temporal_dropout(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Mask samples [start, start + length) and fill them by linear interpolation between the edges."""
    n, C, T = x.shape
    t = torch.arange(T)
    s, L = start.long(), length.long()
    left = torch.gather(x, 2, (s - 1).clamp(0, T - 1).view(n, 1, 1).expand(n, C, 1))
    right = torch.gather(x, 2, (s + L).clamp(0, T - 1).view(n, 1, 1).expand(n, C, 1))
    frac = ((t[None, :] - s[:, None] + 1).float() / (L[:, None] + 1).float())[:, None, :]
    inside = ((t[None, :] >= s[:, None]) & (t[None, :] < (s + L)[:, None]))[:, None, :]
    return torch.where(inside, left + (right - left) * frac, x)
