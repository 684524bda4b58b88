"""The seven augmentations written the way a user writes them in a Dataset's ``__getitem__``.

One view of one (12, T) sample per call: Python decisions, numpy/scipy per sample,
each step over all leads at once as a competent numpy user writes it (one
interpolation gather for the warp, ``sosfiltfilt(..., axis=-1)``, one noise draw
scaled by each lead's std, one ``linspace`` over the leads), a filter designed per
call, and a small buffer of recent samples as mixup/CutMix partners (per-sample
code has no batch). It is the "plain" baseline of the augmentation benchmarks,
not part of ecgfast.
"""
from __future__ import annotations

import numpy as np
import scipy.signal as ss
import torch


class PerSampleAugment:
    def __init__(self, sampling_rate: float = 100, seed: int = 0):
        self.fs = sampling_rate
        self.rng = np.random.default_rng(seed)
        self.recent: list[np.ndarray] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rng, fs = self.rng, self.fs
        y = x.numpy().astype(np.float64).copy()
        C, T = y.shape
        partner = self.recent[rng.integers(len(self.recent))] if self.recent else y.copy()
        self.recent = (self.recent + [x.numpy().astype(np.float64)])[-32:]
        if rng.random() < 0.5:  # frequency warp
            r = rng.uniform(0.95, 1.05)
            pos = np.clip((T - 1) / 2 + (np.arange(T) - (T - 1) / 2) * r, 0, T - 1)
            i0 = np.floor(pos).astype(np.int64)  # linear interpolation of every lead at once
            i1, w = np.minimum(i0 + 1, T - 1), pos - i0
            y = y[:, i0] * (1 - w) + y[:, i1] * w
        if rng.random() < 0.3:  # band-pass
            lo, hi = rng.uniform(0.5, 1.5), min(rng.uniform(40, 60), 0.95 * fs / 2)
            sos = np.vstack([ss.butter(2, lo, "highpass", fs=fs, output="sos"),
                             ss.butter(2, hi, "lowpass", fs=fs, output="sos")])
            y = ss.sosfiltfilt(sos, y, axis=-1)
        if rng.random() < 0.4:  # mixup
            lam = rng.beta(0.4, 0.4)
            lam = max(lam, 1 - lam)
            y = lam * y + (1 - lam) * partner
        if rng.random() < 0.25:  # CutMix
            L = int(round(rng.uniform(0.1, 0.3) * T))
            s = rng.integers(0, T - L + 1)
            y[:, s:s + L] = partner[:, s:s + L]
        if rng.random() < 0.2:  # motion artefact
            a, f, ph = rng.uniform(0.01, 0.05), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
            y += a * np.sin(2 * np.pi * f * np.arange(T) / fs + ph)
        if rng.random() < 0.6:  # per-channel noise
            frac = rng.uniform(0.005, 0.02)
            y += rng.standard_normal((C, T)) * (frac * y.std(axis=1, keepdims=True))
        if rng.random() < 0.3:  # temporal dropout
            L = int(round(rng.uniform(0.05, 0.2) * T))
            s = rng.integers(1, T - L)
            y[:, s:s + L] = np.linspace(y[:, s - 1], y[:, s + L], L + 2, axis=1)[:, 1:-1]
        return torch.from_numpy(y.astype(np.float32))
