"""Each augmentation does what DESIGN.md says, on every backend."""
import math

import numpy as np
import pytest
import scipy.signal as ss
import torch
from augment_helpers import only
from devices import cpu_and_cuda
from ecg_signals import ecg_like

from ecgfast.augment import AUGMENTATIONS, DEFAULT_RATES, AugmentPipeline
from ecgfast.augment.params import COL


def host(views):
    """Views made on a device, back on the CPU for the checks."""
    return tuple(v.cpu() for v in views)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_application_rate_within_binomial_tolerance(name, backend):
    """Count the views an augmentation changed: the share matches its rate."""
    n = 512 if backend != "torch" else 256
    x = ecg_like(n, leads=2, length=128, seed=1)
    v1, v2 = only(name, backend, rate=DEFAULT_RATES[name], leads=2)(x)
    changed = torch.cat([(v != x).flatten(1).any(1) for v in (v1, v2)]).double()
    p, m = DEFAULT_RATES[name], 2 * n
    assert abs(changed.mean().item() - p) < 4.5 * math.sqrt(p * (1 - p) / m)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_frequency_warp_factor_from_a_pure_tone(backend, device):
    fs, T, f0 = 100, 1000, 5.0
    x = torch.sin(2 * math.pi * f0 * torch.arange(T) / fs).repeat(16, 12, 1).float()
    v1, v2 = host(only("frequency_warp", backend, fs=fs)(x.to(device)))
    assert v1.shape == x.shape
    for y in torch.cat([v1, v2])[:, 0]:
        # Frequency of the warped tone from its zero crossings in the middle (away from clamped edges).
        mid = y[200:800].double().numpy()
        crossings = np.flatnonzero(np.diff(np.signbit(mid)))
        freq = (len(crossings) - 1) / 2 / ((crossings[-1] - crossings[0]) / fs)
        assert 0.95 - 0.005 <= freq / f0 <= 1.05 + 0.005


def _warp_reference(x, r):
    """The warp's definition with numpy: y(t) = x(c + (t - c) r), c = (T - 1) / 2, positions clamped to
    the record, linear interpolation between samples."""
    T = x.shape[-1]
    c = (T - 1) / 2
    pos = np.clip(c + (np.arange(T) - c) * r, 0, T - 1)
    return np.stack([np.interp(pos, np.arange(T), lead) for lead in x])


def test_frequency_warp_equals_resampling_with_the_drawn_factor(backend):
    """Each view is the input resampled by the factor drawn for it (params column warp_r), so
    the draws are used as drawn: not one factor for the batch, not another view's."""
    pipe = only("frequency_warp", backend, seed=4)
    x = ecg_like(8, length=1000, seed=3)
    params = pipe.draw(8, 1000, step=0)
    v = torch.stack(pipe(x, step=0))
    r = params[..., COL["warp_r"]]
    assert params[..., COL["warp_on"]].all() and len(torch.unique(r)) == 16
    assert ((0.95 <= r) & (r <= 1.05)).all()
    scale = x.abs().max().item()
    for view in range(2):
        for b in range(8):
            want = _warp_reference(x[b].double().numpy(), r[view, b].item())
            assert np.abs(v[view, b].double().numpy() - want).max() <= 1e-6 * scale + 1e-7, (view, b)


def _sos_of(params, v, b):
    q = params[v, b].numpy()
    return np.stack([q[COL["hp_b0"]:COL["hp_a2"] + 1], q[COL["lp_b0"]:COL["lp_a2"] + 1]])


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_bandpass_equals_scipy_sosfiltfilt(backend, device):
    fs = 100
    pipe = only("bandpass", backend, fs=fs, seed=3)
    x = ecg_like(6, length=1000, seed=2) + 0.3  # an offset too: the high-pass must remove it
    params = pipe.draw(6, 1000, step=0)
    v = torch.stack(host(pipe(x.to(device), step=0)))
    for view in range(2):
        for b in range(6):
            q = params[view, b].numpy()
            sos = np.vstack([
                ss.butter(2, _corner(q, "hp", fs), "highpass", fs=fs, output="sos"),
                ss.butter(2, _corner(q, "lp", fs), "lowpass", fs=fs, output="sos"),
            ])
            ref = ss.sosfiltfilt(sos, x[b].double().numpy(), axis=-1)
            rms = np.sqrt((x[b].double().numpy() ** 2).mean())
            assert np.abs(v[view, b].double().numpy() - ref).max() < 1e-4 * rms
            assert 0.5 <= _corner(q, "hp", fs) <= 1.5 and 40 <= _corner(q, "lp", fs) <= 0.95 * fs / 2 + 1e-9


def _corner(q, kind, fs):
    """The corner frequency a biquad was designed for, from its coefficients (K = tan(pi f / fs))."""
    a1, a2 = q[COL[f"{kind}_a1"]], q[COL[f"{kind}_a2"]]
    # a1 = 2 (K^2 - 1) n, a2 = (1 - sqrt2 K + K^2) n, n = 1 / (1 + sqrt2 K + K^2): solve for K
    # 1 + a1 + a2 = 4 K^2 n  and  1 - a1 + a2 = 4 n
    k = math.sqrt((1 + a1 + a2) / (1 - a1 + a2))
    return fs / math.pi * math.atan(k)


def test_bandpass_removes_out_of_band_tones(backend):
    fs, T = 100, 1000
    t = torch.arange(T) / fs
    inband = torch.sin(2 * math.pi * 10 * t)
    x = (inband + torch.sin(2 * math.pi * 0.05 * t) + 0.5 * torch.sin(2 * math.pi * 49 * t)).repeat(4, 12, 1).float()
    v1, _ = only("bandpass", backend, fs=fs, bandpass_high=(40, 42))(x)
    spec = np.abs(np.fft.rfft(v1[:, 0].double().numpy(), axis=-1)) / (T / 2)
    freqs = np.fft.rfftfreq(T, 1 / fs)
    at = lambda f: spec[:, np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert (at(10) > 0.95).all()  # kept
    assert (at(0.05) < 0.05).all()  # baseline wander removed
    assert (at(49) < 0.05).all()  # above the low-pass corner removed


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_motion_artifact_amplitude_and_frequency_by_fft(backend, device):
    fs, T = 100, 2000  # 20 s: frequency resolution 0.05 Hz
    x = torch.zeros(16, 12, T)
    v1, v2 = host(only("motion_artifact", backend, fs=fs)(x.to(device)))
    for y in torch.cat([v1, v2]):
        assert torch.allclose(y, y[0].expand_as(y))  # the same wander on every lead
        spec = np.abs(np.fft.rfft(y[0].double().numpy()))
        k = int(np.argmax(spec[1:])) + 1
        freq = k * fs / T
        amp = 2 * spec[k] / T
        assert 0.5 - 0.05 <= freq <= 2.0 + 0.05
        assert 0.01 * 0.8 <= amp <= 0.05 * 1.02  # spectral leakage only lowers the peak


def test_motion_artifact_equals_the_sinusoid_with_the_drawn_parameters(backend):
    """Each view is the input plus A sin(2 pi f t / fs + phi) on every lead, with the amplitude,
    frequency and phase drawn for that view (params columns motion_amp, motion_freq, motion_phase)."""
    fs, T = 100, 1000
    pipe = only("motion_artifact", backend, fs=fs, seed=6)
    x = ecg_like(8, length=T, seed=9)
    params = pipe.draw(8, T, step=0)
    v = torch.stack(pipe(x, step=0)).double()
    a, f, phi = (params[..., COL[c]] for c in ("motion_amp", "motion_freq", "motion_phase"))
    assert params[..., COL["motion_on"]].all() and len(torch.unique(f)) == 16
    t, scale = np.arange(T), x.abs().max().item()
    for view in range(2):
        for b in range(8):
            wave = a[view, b].item() * np.sin(2 * np.pi * f[view, b].item() * t / fs + phi[view, b].item())
            got = (v[view, b] - x[b].double()).numpy()  # the added wave, on every lead
            assert np.abs(got - wave[None, :]).max() <= 1e-6 * max(1.0, scale), (view, b)  # float32 ulps


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_channel_noise_sigma_per_lead(backend, device):
    x = ecg_like(16, length=1000, seed=4) * torch.linspace(0.1, 3, 12)[None, :, None]  # leads of unlike scale
    v1, v2 = host(only("channel_noise", backend)(x.to(device)))
    for v in (v1, v2):
        ratio = ((v - x).std(dim=2) / x.std(dim=2)).flatten()
        # One fraction per sample, in [0.005, 0.02]; a 1000-sample std estimate is within ~7 %.
        assert ratio.min() >= 0.005 * 0.9 and ratio.max() <= 0.02 * 1.1
        per_sample = ratio.view(16, 12)
        assert (per_sample.std(1) / per_sample.mean(1)).max() < 0.15  # the same fraction for all leads
    z = ((v1 - x) / (x.std(dim=2, keepdim=True) * 1e-2)).flatten()
    assert abs(z.mean().item()) < 0.05  # zero mean


def test_hash_noise_is_gaussian_enough():
    from ecgfast.augment.functional import hash_noise

    z = hash_noise(torch.tensor([12345]), torch.tensor([678]), 12, 20000).flatten().double()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    kurtosis = ((z - z.mean()) ** 4).mean() / z.var() ** 2
    assert abs(kurtosis - 2.85) < 0.05  # Irwin-Hall(8): 3 - 1.2 / 8
    # no correlation between neighbouring elements or leads
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1]) < 0.01


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_temporal_dropout_spans_are_straight_lines(backend, device):
    T = 1000
    x = ecg_like(16, length=T, seed=5)
    v1, v2 = host(only("temporal_dropout", backend)(x.to(device)))
    for v in (v1, v2):
        for b in range(16):
            diff = (v[b] != x[b]).any(0).nonzero().flatten()
            s, e = diff.min().item(), diff.max().item() + 1  # changed samples lie within the span
            span = torch.arange(s - 1, e + 1)
            y = v[b][:, span].double()
            line = y[:, :1] + (y[:, -1:] - y[:, :1]) * torch.linspace(0, 1, len(span), dtype=torch.float64)
            assert torch.allclose(y, line, atol=1e-5)
            assert 0.05 * T - 2 <= e - s <= 0.20 * T + 1


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_cutmix_spans_equal_the_partner(backend, device):
    x = ecg_like(8, length=500, seed=6)
    pipe = only("cutmix", backend, seed=2)
    params = pipe.draw(8, 500, step=0)
    v = torch.stack(host(pipe(x.to(device), step=0)))
    for view in range(2):
        for b in range(8):
            q = params[view, b]
            s, L, partner = int(q[COL["cut_start"]]), int(q[COL["cut_len"]]), int(q[COL["cut_partner"]])
            assert partner != b and 0.10 * 500 - 1 <= L <= 0.30 * 500 + 1
            assert torch.equal(v[view, b, :, s:s + L], x[partner, :, s:s + L])
            assert torch.equal(v[view, b, :, :s], x[b, :, :s]) and torch.equal(v[view, b, :, s + L:], x[b, :, s + L:])


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_mixup_keeps_lambda_at_least_half(backend, device):
    x = ecg_like(32, length=300, seed=7)
    pipe = only("mixup", backend, seed=9)
    params = pipe.draw(32, 300, step=0)
    v = torch.stack(host(pipe(x.to(device), step=0)))
    for view in range(2):
        for b in range(32):
            partner = int(params[view, b, COL["mix_partner"]])
            assert partner != b
            # Recover lambda by least squares from y - xp = lambda (x - xp).
            d, r = (x[b] - x[partner]).double().flatten(), (v[view, b] - x[partner]).double().flatten()
            lam = (d @ r / (d @ d)).item()
            assert 0.5 - 1e-5 <= lam <= 1 + 1e-5
            assert torch.allclose(v[view, b], lam * x[b] + (1 - lam) * x[partner], atol=1e-5)


@pytest.mark.parametrize("off", AUGMENTATIONS)
def test_switching_one_off_removes_exactly_it(off, backend):
    x = ecg_like(6, length=200, seed=8)
    all_on = {a: 1.0 for a in AUGMENTATIONS}
    full = AugmentPipeline(100, seed=1, rates=all_on, backend=backend)
    ablated = AugmentPipeline(100, seed=1, rates=all_on, backend=backend, enabled="no-" + off.replace("_", "-"))
    # Reference: the full pipeline with the flag of `off` cleared in its parameters.
    params = full.draw(6, 200, step=0)
    flag = {"frequency_warp": "warp_on", "bandpass": "bp_on", "mixup": "mix_on", "cutmix": "cut_on",
            "motion_artifact": "motion_on", "channel_noise": "noise_on", "temporal_dropout": "drop_on"}[off]
    assert params[..., COL[flag]].all()
    assert torch.equal(ablated.draw(6, 200, step=0)[..., COL[flag]], torch.zeros(2, 6, dtype=torch.float64))
    others = [c for c in COL if c != flag]
    np.testing.assert_array_equal(ablated.draw(6, 200, step=0)[..., [COL[c] for c in others]],
                                  params[..., [COL[c] for c in others]])
    assert not torch.equal(torch.stack(ablated(x, step=0)), torch.stack(full(x, step=0)))


def test_each_view_and_sample_draws_its_own_parameters():
    p = AugmentPipeline(100, seed=0).draw(256, 1000, step=0)
    for col in ("warp_r", "mix_lambda", "motion_freq", "motion_phase", "noise_frac"):
        assert len(torch.unique(p[..., COL[col]])) > 400  # not one draw for the whole batch
    assert not torch.equal(p[0], p[1])  # the two views differ


def test_closed_form_butterworth_equals_scipy():
    """The band-pass coefficients' closed form (params.butterworth2) is scipy.signal.butter's design,
    to a few float64 ulps, over the corner frequencies and rates the pipeline uses."""
    from ecgfast.augment.params import butterworth2

    for fs in (100.0, 250.0, 500.0):
        f = np.linspace(0.5, 0.95 * fs / 2, 40)
        for highpass in (True, False):
            got = butterworth2(f, fs, highpass)
            want = np.stack([ss.butter(2, fi, "highpass" if highpass else "lowpass", fs=fs, output="sos")[0]
                             [[0, 1, 2, 4, 5]] for fi in f])
            np.testing.assert_allclose(got, want, rtol=0, atol=4e-15)
