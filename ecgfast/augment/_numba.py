"""Numba CPU implementation of ``ecgfast::augment_views`` (when the extension is absent).

The same per-lead algorithm as csrc/augment/augment_lead.h (and its step 0, the
views' crops: ``crop_views_numba``), parallel over
(view, sample, lead) with ``prange``; results agree with the C++ kernel to
float32 rounding. CPU only by design: it takes and returns NumPy arrays
(``ecgfast.augment._ops.augment_views`` refuses tensors of other devices; the
pipeline sends those to the compiled op or the torch reference).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ecgfast.augment.params import BANDPASS_PADLEN, COL

_c = {k: np.int64(v) for k, v in COL.items()}
WARP_ON, WARP_R = _c["warp_on"], _c["warp_r"]
BP_ON, HP_B0, LP_B0 = _c["bp_on"], _c["hp_b0"], _c["lp_b0"]
MIX_ON, MIX_LAMBDA, MIX_PARTNER = _c["mix_on"], _c["mix_lambda"], _c["mix_partner"]
CUT_ON, CUT_START, CUT_LEN, CUT_PARTNER = _c["cut_on"], _c["cut_start"], _c["cut_len"], _c["cut_partner"]
MOTION_ON, MOTION_AMP, MOTION_FREQ, MOTION_PHASE = (_c["motion_on"], _c["motion_amp"], _c["motion_freq"],
                                                    _c["motion_phase"])
NOISE_ON, NOISE_FRAC, KEY_LO, KEY_HI = _c["noise_on"], _c["noise_frac"], _c["noise_key_lo"], _c["noise_key_hi"]
DROP_ON, DROP_START, DROP_LEN = _c["drop_on"], _c["drop_start"], _c["drop_len"]
CROP_START, RRC_ON, RRC_START, RRC_FRAC = _c["crop_start"], _c["rrc_on"], _c["rrc_start"], _c["rrc_frac"]
PAD = BANDPASS_PADLEN
M32 = np.uint64(0xFFFFFFFF)


@numba.njit(inline="always")
def _lowbias32(v):
    v = v ^ (v >> np.uint64(16))
    v = (v * np.uint64(0x7FEB352D)) & M32
    v = v ^ (v >> np.uint64(15))
    v = (v * np.uint64(0x846CA68B)) & M32
    return v ^ (v >> np.uint64(16))


@numba.njit(inline="always")
def _hash_normal(e, lo, hi):
    total = np.uint64(0)
    for j in range(4):
        w = _lowbias32((_lowbias32(((e * np.uint64(4) + np.uint64(j)) & M32) ^ lo) + hi) & M32)
        total += (w & np.uint64(0xFFFF)) + (w >> np.uint64(16))
    return ((np.float32(total) + np.float32(4.0)) * np.float32(1.0 / 65536.0) - np.float32(4.0)) \
        * np.float32(1.2247448713915890)


@numba.njit(cache=True)
def _bandpass(y, p, ext):
    T = y.shape[0]
    n = T + 2 * PAD
    for k in range(1, PAD + 1):
        ext[PAD - k] = 2.0 * y[0] - y[k]
        ext[PAD + T - 1 + k] = 2.0 * y[T - 1] - y[T - 1 - k]
    for t in range(T):
        ext[PAD + t] = y[t]
    zi = np.empty((2, 2))
    scale = 1.0
    for s in range(2):
        o = HP_B0 if s == 0 else LP_B0
        b0, b1, b2, a1, a2 = p[o], p[o + 1], p[o + 2], p[o + 3], p[o + 4]
        B0 = b1 - a1 * b0
        B1 = b2 - a2 * b0
        z0 = (B0 + B1) / (1 + a1 + a2)
        zi[s, 0] = scale * z0
        zi[s, 1] = scale * (B1 - a2 * z0)
        scale *= (b0 + b1 + b2) / (1 + a1 + a2)
    h0, h1, h2, h3, h4 = p[HP_B0], p[HP_B0 + 1], p[HP_B0 + 2], p[HP_B0 + 3], p[HP_B0 + 4]
    l0, l1, l2, l3, l4 = p[LP_B0], p[LP_B0 + 1], p[LP_B0 + 2], p[LP_B0 + 3], p[LP_B0 + 4]
    for _ in range(2):
        x0 = ext[0]
        z0, z1 = zi[0, 0] * x0, zi[0, 1] * x0
        w0, w1 = zi[1, 0] * x0, zi[1, 1] * x0
        for t in range(n):
            xt = ext[t]
            u = h0 * xt + z0
            z0 = h1 * xt - h3 * u + z1
            z1 = h2 * xt - h4 * u
            v = l0 * u + w0
            w0 = l1 * u - l3 * v + w1
            w1 = l2 * u - l4 * v
            ext[t] = v
        ext[:n] = ext[:n][::-1].copy()
    for t in range(T):
        y[t] = np.float32(ext[PAD + t])


@numba.njit(cache=True)
def _augment_lead(x, mix, cut, y, lead, fs, p, ext):
    T = x.shape[0]
    if p[WARP_ON] != 0:
        c = (T - 1) / 2.0
        r = p[WARP_R]
        for t in range(T):
            pos = c + (t - c) * r
            pos = 0.0 if pos < 0 else (T - 1.0 if pos > T - 1 else pos)
            i0 = int(pos)
            i1 = i0 + 1 if i0 + 1 < T else T - 1
            w = np.float32(pos - i0)
            y[t] = x[i0] * (np.float32(1) - w) + x[i1] * w
    else:
        y[:] = x
    if p[BP_ON] != 0:
        _bandpass(y, p, ext)
    if p[MIX_ON] != 0:
        lam = np.float32(p[MIX_LAMBDA])
        for t in range(T):
            y[t] = lam * y[t] + (np.float32(1) - lam) * mix[t]
    if p[CUT_ON] != 0:
        s, L = int(p[CUT_START]), int(p[CUT_LEN])
        for t in range(s, min(s + L, T)):
            y[t] = cut[t]
    if p[MOTION_ON] != 0:
        w = 2 * math.pi * p[MOTION_FREQ] / fs
        a, ph = p[MOTION_AMP], p[MOTION_PHASE]
        cw, sw = math.cos(w), math.sin(w)
        cs, sn = a * math.cos(ph), a * math.sin(ph)
        for t in range(T):  # rotation recurrence, as the C++ kernel
            y[t] += np.float32(sn)
            nsn = sn * cw + cs * sw
            cs = cs * cw - sn * sw
            sn = nsn
    if p[NOISE_ON] != 0:
        s = np.zeros(4)  # four interleaved accumulators, the C++ kernel's summation order
        t = 0
        while t + 4 <= T:
            for k in range(4):
                s[k] += y[t + k]
            t += 4
        while t < T:
            s[0] += y[t]
            t += 1
        mean = ((s[0] + s[1]) + (s[2] + s[3])) / T
        q = np.zeros(4)
        t = 0
        while t + 4 <= T:
            for k in range(4):
                d = y[t + k] - mean
                q[k] += d * d
            t += 4
        while t < T:
            q[0] += (y[t] - mean) * (y[t] - mean)
            t += 1
        s2 = (q[0] + q[1]) + (q[2] + q[3])
        sigma = np.float32(p[NOISE_FRAC] * math.sqrt(s2 / T))
        e0 = np.uint64(lead * T)
        lo, hi = np.uint64(p[KEY_LO]), np.uint64(p[KEY_HI])
        for t in range(T):
            y[t] += sigma * _hash_normal(e0 + np.uint64(t), lo, hi)
    if p[DROP_ON] != 0:
        s, L = int(p[DROP_START]), int(p[DROP_LEN])
        if s >= 1 and s + L < T:
            left, right = y[s - 1], y[s + L]
            for k in range(L):
                frac = np.float32(k + 1) / np.float32(L + 1)
                y[s + k] = left + (right - left) * frac


@numba.njit(parallel=True, cache=True)
def crop_views_numba(x, params, L):
    """Step 0: x (B, C, T) float32 -> each view's crops (2, B, C, L), as augment_lead.h's crop_sample."""
    B, C, T = x.shape
    out = np.empty((2, B, C, L), dtype=np.float32)
    for row in numba.prange(2 * B * C):
        v = row // (B * C)
        b = (row // C) % B
        c = row % C
        p = params[v, b]
        s = p[CROP_START]  # in [0, T - L]: the caller checks (augment._ops)
        xr, y = x[b, c], out[v, b, c]
        if p[RRC_ON] != 0:
            for t in range(L):
                pos = p[RRC_START] + t * p[RRC_FRAC]
                pos = 0.0 if pos < 0 else (T - 1.0 if pos > T - 1 else pos)
                i0 = int(pos)
                i1 = i0 + 1 if i0 + 1 < T else T - 1
                w = np.float32(pos - i0)
                y[t] = xr[i0] * (np.float32(1) - w) + xr[i1] * w
        else:
            y[:] = xr[int(s):int(s) + L]
    return out


@numba.njit(parallel=True, cache=True)
def augment_views_numba(x, params, fs):
    """x (V, B, C, T) float32: the views' input, one batch (V = 1) or each view's crops (V = 2); params
    (2, B, P) float64 -> (2, B, C, T) float32. Partners are read from the view's input batch."""
    V, B, C, T = x.shape
    out = np.empty((2, B, C, T), dtype=np.float32)
    for item in numba.prange(2 * B * C):
        v = item // (B * C)
        b = (item // C) % B
        c = item % C
        p = params[v, b]
        xv = x[v if V == 2 else 0]
        ext = np.empty(T + 2 * PAD)
        _augment_lead(xv[b, c], xv[int(p[MIX_PARTNER]), c], xv[int(p[CUT_PARTNER]), c], out[v, b, c], c, fs, p,
                      ext)
    return out
