"""The seven augmentations, and the views' crops (step 0), as small pure torch functions (the reference).

Each takes a batch ``x`` of shape (n, C, T) and per-sample parameters (tensors
of shape (n,)), and returns a new tensor; ``TorchReferencePipeline`` chains them
exactly as the fused ``ecgfast::augment_views`` kernels do, so all backends can
be compared element by element. Vectorised over samples and leads; no compiled
code beyond torch itself. Device-generic: every helper tensor is made on the
input's device (tests/devices.py's ``no_cpu_tensors`` checks it on ``meta``).
"""
from __future__ import annotations

import math

import torch

from ecgfast.augment.params import BANDPASS_PADLEN

_SQRT_1_5 = math.sqrt(1.5)


def crop(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Samples [start, start + length) of each record (all leads): (n, C, length)."""
    n, C, _ = x.shape
    idx = start.long()[:, None] + torch.arange(length, device=x.device)[None, :]
    return torch.gather(x, 2, idx[:, None, :].expand(n, C, length))


def resized_crop(x: torch.Tensor, start: torch.Tensor, frac: torch.Tensor, length: int) -> torch.Tensor:
    """Random-resized-crop: y(t) = x(start + t frac), t < length, positions clamped to the record, linear
    interpolation (the warp's): a part of frac x (length - 1) samples stretched over ``length``."""
    n, C, T = x.shape
    t = torch.arange(length, dtype=torch.float64, device=x.device)
    pos = (start.double()[:, None] + t[None, :] * frac.double()[:, None]).clamp(0, T - 1)  # (n, length)
    return _interpolate(x, pos)


def _interpolate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x at float64 positions pos (n, L) >= 0 of each row, by linear interpolation (the kernels' rounding)."""
    n, C, T = x.shape
    L = pos.shape[1]
    i0 = pos.floor().long()
    w = (pos - i0).float()[:, None, :]
    i1 = (i0 + 1).clamp(max=T - 1)
    g0 = torch.gather(x, 2, i0[:, None, :].expand(n, C, L))
    g1 = torch.gather(x, 2, i1[:, None, :].expand(n, C, L))
    return g0 * (1 - w) + g1 * w


def frequency_warp(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Resample time by factor ``r`` about the centre, keeping the length (linear interpolation).

    y(t) = x(c + (t - c) r), c = (T - 1) / 2, positions clamped to the record.
    """
    n, C, T = x.shape
    c = (T - 1) / 2.0
    t = torch.arange(T, dtype=torch.float64, device=x.device)
    pos = (c + (t[None, :] - c) * r.double()[:, None]).clamp(0, T - 1)  # (n, T)
    return _interpolate(x, pos)


_BLOCK = 64  # samples per block of the block-recursive filter below


def _cascade_state_space(sos: torch.Tensor):
    """The biquad cascade as one linear system s' = A s + B x, y = C s + D x, per sample.

    Each section in transposed direct form II has state (z0, z1):
    y = b0 x + z0, z0' = (b1 - a1 b0) x - a1 z0 + z1, z1' = (b2 - a2 b0) x - a2 z0;
    sections are chained by feeding one's output into the next. Shapes (n, 2S, 2S),
    (n, 2S), (n, 2S), (n,).
    """
    n, S, _ = sos.shape
    like = dict(dtype=torch.float64, device=sos.device)
    A = torch.zeros(n, 2 * S, 2 * S, **like)
    B = torch.zeros(n, 2 * S, **like)
    C = torch.zeros(n, 2 * S, **like)
    D = torch.ones(n, **like)
    for s in range(S):
        b0, b1, b2, a1, a2 = sos[:, s].unbind(1)
        i = 2 * s
        # The section's input is the previous output: C s + D x of the cascade so far.
        A[:, i:i + 2, :i] = torch.stack([b1 - a1 * b0, b2 - a2 * b0], 1)[:, :, None] * C[:, None, :i]
        A[:, i, i], A[:, i, i + 1], A[:, i + 1, i] = -a1, 1.0, -a2
        B[:, i], B[:, i + 1] = (b1 - a1 * b0) * D, (b2 - a2 * b0) * D
        C = b0[:, None] * C
        C[:, i] = 1.0
        D = b0 * D
    return A, B, C, D


def _sosfilt(sos: torch.Tensor, x: torch.Tensor, zi: torch.Tensor) -> torch.Tensor:
    """As ``scipy.signal.sosfilt(sos, x, zi=zi * x[..., :1])`` for per-sample cascades. x (n, C, L) float64.

    Block-recursive: in blocks of K samples the output is a (K x K) Toeplitz matrix of
    the impulse response times the block's input plus the carried state's response, and
    the state advances by A^K, so a recursion over L samples becomes L / K batched
    matmuls (exact up to float64 rounding).
    """
    n, C_, L = x.shape
    K = _BLOCK
    A, B, Cv, D = _cascade_state_space(sos)
    m = A.shape[1]
    power = torch.eye(m, dtype=torch.float64, device=x.device).expand(n, m, m)
    h = [D]                                   # impulse response h[0..K-1]
    state_out = []                            # C A^k: output k of a block from its start state
    input_to_state = []                       # A^k B: state at the block's end from input K-1-k
    for k in range(K):
        cp = (Cv[:, None, :] @ power)[:, 0]   # C A^k
        state_out.append(cp)
        input_to_state.append((power @ B[:, :, None])[:, :, 0])
        if k + 1 < K:
            h.append((cp * B).sum(1))
        power = A @ power
    A_K = power
    h = torch.stack(h, 1)                                              # (n, K)
    k = torch.arange(K, device=x.device)
    lag = k[:, None] - k[None, :]
    toeplitz = torch.where(lag >= 0, h[:, lag.clamp(min=0)], 0.0)  # (n, K, K)
    O = torch.stack(state_out, 1)                                      # (n, K, m)
    G = torch.stack(input_to_state[::-1], 2)                           # (n, m, K)

    nb = -(-L // K)
    xb = torch.nn.functional.pad(x, (0, nb * K - L)).view(n, C_ * nb, K)  # zeros after L don't reach back
    y = (xb @ toeplitz.transpose(1, 2)).view(n, C_, nb, K)               # the inputs' part, all blocks
    drive = (xb @ G.transpose(1, 2)).view(n, C_, nb, m)                  # each block's push on the state
    states = [zi.reshape(n, 1, m) * x[:, :, :1]]                         # start: steady state times x[0]
    for b in range(nb - 1):
        states.append(states[-1] @ A_K.transpose(1, 2) + drive[:, :, b])
    states = torch.stack(states, 2)                                      # (n, C, nb, m)
    y = y + (states.view(n, C_ * nb, m) @ O.transpose(1, 2)).view(n, C_, nb, K)
    return y.reshape(n, C_, nb * K)[:, :, :L]


def _sos_zi(sos: torch.Tensor) -> torch.Tensor:
    """``scipy.signal.sosfilt_zi`` for per-sample cascades: (n, S, 2), steady state of a unit step."""
    zi = torch.empty(sos.shape[0], sos.shape[1], 2, dtype=torch.float64, device=sos.device)
    scale = torch.ones(sos.shape[0], dtype=torch.float64, device=sos.device)
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
    t = torch.arange(x.shape[2], device=x.device)
    inside = (t[None, :] >= start[:, None]) & (t[None, :] < (start + length)[:, None])
    return torch.where(inside[:, None, :], partner, x)


def motion_artifact(x: torch.Tensor, amplitude: torch.Tensor, frequency: torch.Tensor, phase: torch.Tensor,
                    sampling_rate: float) -> torch.Tensor:
    """Add baseline wander A sin(2 pi f t / fs + phi) (mV) to every lead."""
    t = torch.arange(x.shape[2], dtype=torch.float64, device=x.device)
    wave = amplitude.double()[:, None] * torch.sin(
        2 * math.pi * frequency.double()[:, None] * t[None, :] / sampling_rate + phase.double()[:, None])
    return x + wave.to(x.dtype)[:, None, :]


def _as_int32_bits(v: torch.Tensor) -> torch.Tensor:
    """uint32 values (in any integer or float64 tensor) as int32 tensors with the same bits."""
    v = v.long()
    return (v - ((v >> 31) << 32)).to(torch.int32)


def _lowbias32(v: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 hash on int32 tensors holding uint32 bits.

    torch has no uint32 arithmetic, so int32 stands in: products wrap modulo 2^32 as in
    the kernels, and every right shift is made logical by masking off the sign fill.
    """
    v = v ^ ((v >> 16) & 0xFFFF)
    v = v * 0x7FEB352D
    v = v ^ ((v >> 15) & 0x1FFFF)
    v = v * (0x846CA68B - (1 << 32))
    return v ^ ((v >> 16) & 0xFFFF)


def hash_noise(key_lo: torch.Tensor, key_hi: torch.Tensor, channels: int, length: int) -> torch.Tensor:
    """Unit-variance noise (n, C, T) keyed per sample: an Irwin-Hall sum of eight 16-bit uniforms.

    z = (sum of 8 U(0,1) - 4) * sqrt(12 / 8): mean 0, variance 1, bell-shaped
    (kurtosis 2.85, |z| <= 4.9). Each element hashes its own counter, so any
    backend and any thread computes the same value.
    """
    e = torch.arange(channels * length, dtype=torch.int32, device=key_lo.device).view(1, channels, length) * 4
    lo = _as_int32_bits(key_lo).view(-1, 1, 1)
    hi = _as_int32_bits(key_hi).view(-1, 1, 1)
    total = torch.zeros(key_lo.shape[0], channels, length, dtype=torch.int32, device=key_lo.device)
    for j in range(4):
        w = _lowbias32(_lowbias32((e + j) ^ lo) + hi)
        total += (w & 0xFFFF) + ((w >> 16) & 0xFFFF)
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
    t = torch.arange(T, device=x.device)
    s, L = start.long(), length.long()
    left = torch.gather(x, 2, (s - 1).clamp(0, T - 1).view(n, 1, 1).expand(n, C, 1))
    right = torch.gather(x, 2, (s + L).clamp(0, T - 1).view(n, 1, 1).expand(n, C, 1))
    frac = ((t[None, :] - s[:, None] + 1).float() / (L[:, None] + 1).float())[:, None, :]
    inside = ((t[None, :] >= s[:, None]) & (t[None, :] < (s + L)[:, None]))[:, None, :]
    return torch.where(inside, left + (right - left) * frac, x)
