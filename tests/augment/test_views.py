"""Views beyond the seed's seven: short crops (``crop_seconds``) and the random-resized-crop, step 0 of
the fused op on every backend."""
import math

import numpy as np
import pytest
import torch
from ecg_signals import ecg_like

from ecgfast.augment import AUGMENTATIONS, CONFIGS, AugmentPipeline
from ecgfast.augment.params import COL
from ecgfast.base.extension import EXTENSION_AVAILABLE

needs_ext = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")
ALL_ON = {a: 1.0 for a in AUGMENTATIONS}
NONE_ON = {a: False for a in AUGMENTATIONS}
CROPS = [dict(crop_seconds=2.5), dict(crop_seconds=2.5, resized_crop_min=0.3), dict(resized_crop_min=0.5)]
CROP_IDS = ["crop", "crop+rrc", "rrc"]


def starts(params, view, b):
    return int(params[view, b, COL["crop_start"]])


@needs_ext
@pytest.mark.parametrize("kw", CROPS, ids=CROP_IDS)
@pytest.mark.parametrize("rates", [None, ALL_ON], ids=["design-rates", "all-on"])
def test_cpp_numba_and_torch_agree_on_crops(kw, rates):
    x = ecg_like(24, length=1000, seed=21)
    views = {b: torch.stack(AugmentPipeline(100, seed=5, rates=rates, backend=b, **kw)(x, step=3))
             for b in ("cpp", "numba", "torch")}
    length = 250 if "crop_seconds" in kw else 1000
    assert views["cpp"].shape == (2, 24, 12, length)
    scale = x.abs().max()
    assert (views["cpp"] - views["numba"]).abs().max() <= 1e-5 * scale
    assert (views["cpp"] - views["torch"]).abs().max() <= 1e-5 * scale


def test_a_plain_crop_is_a_window_of_the_record_at_a_uniform_start(backend):
    n, T = 256, 1000
    x = ecg_like(n, length=T, seed=22)
    pipe = AugmentPipeline(100, seed=3, enabled=NONE_ON, crop_seconds=2.5, backend=backend)
    v = torch.stack(pipe(x, step=0))
    params = pipe.draw(n, T, step=0)
    for view in range(2):
        for b in range(0, n, 17):
            s = starts(params, view, b)
            assert torch.equal(v[view, b], x[b, :, s:s + 250])
    s = params[..., COL["crop_start"]].numpy().ravel()
    assert s.min() >= 0 and s.max() <= T - 250 and np.all(s == np.floor(s))
    # Uniform on {0, ..., 750}: mean 375, sd 216.8; 512 draws -> SE 9.6.
    assert abs(s.mean() - 375) < 4.5 * 216.8 / math.sqrt(s.size)
    assert not np.array_equal(params[0, :, COL["crop_start"]], params[1, :, COL["crop_start"]])  # per view


def test_resized_crop_reads_the_drawn_part_linearly(backend):
    """On a ramp x(t) = t the view is its source positions: y(t) = rrc_start + t * rrc_frac, a part of
    rrc_frac x (L - 1) samples inside the view's crop, stretched over L samples."""
    n, T, L = 128, 1000, 250
    ramp = torch.arange(T, dtype=torch.float32).expand(n, 12, T).contiguous()
    pipe = AugmentPipeline(100, seed=4, enabled=NONE_ON, crop_seconds=2.5, resized_crop_min=0.4, backend=backend)
    v = torch.stack(pipe(ramp, step=1))
    p = pipe.draw(n, T, step=1).numpy()
    assert (p[..., COL["rrc_on"]] == 1).all()  # default rate 1: every view
    frac, start, crop = p[..., COL["rrc_frac"]], p[..., COL["rrc_start"]], p[..., COL["crop_start"]]
    assert frac.min() >= 0.4 and frac.max() <= 1.0
    assert abs(frac.mean() - 0.7) < 4.5 * (0.6 / math.sqrt(12)) / math.sqrt(frac.size)  # U(0.4, 1)
    assert (start >= crop).all() and (start + (L - 1) * frac <= crop + L - 1 + 1e-9).all()
    t = np.arange(L)
    want = start[..., None] + t * frac[..., None]  # (2, n, L)
    np.testing.assert_allclose(v[:, :, 5].double().numpy(), want, rtol=0, atol=1e-3)


def test_partners_are_read_from_their_crop_of_the_same_view(backend):
    n, T, L = 16, 1000, 250
    x = ecg_like(n, length=T, seed=23)
    only_cutmix = {a: a == "cutmix" for a in AUGMENTATIONS}
    pipe = AugmentPipeline(100, seed=6, enabled=only_cutmix, rates={"cutmix": 1.0}, crop_seconds=2.5, backend=backend)
    v = torch.stack(pipe(x, step=2))
    p = pipe.draw(n, T, step=2)
    for view in range(2):
        for b in range(n):
            q = p[view, b]
            s0, L0, mate = int(q[COL["cut_start"]]), int(q[COL["cut_len"]]), int(q[COL["cut_partner"]])
            assert 0 <= s0 and s0 + L0 <= L  # the span is drawn in the view's time
            own, theirs = starts(p, view, b), starts(p, view, mate)
            assert torch.equal(v[view, b, :, s0:s0 + L0], x[mate, :, theirs + s0:theirs + s0 + L0])
            assert torch.equal(v[view, b, :, :s0], x[b, :, own:own + s0])


def test_the_seeds_draws_are_unchanged_by_the_crop_columns():
    """Without crops the crop columns are zero and no crop step runs; with them, every column of the
    seven that does not scale with the length is drawn exactly as before (own hash slots)."""
    seed_pipe = AugmentPipeline(100, seed=7)
    assert seed_pipe.view_length(1000) is None
    base = seed_pipe.draw(32, 1000, step=5)
    for col in ("crop_start", "rrc_on", "rrc_start", "rrc_frac"):
        assert not base[..., COL[col]].any()
    cropped = AugmentPipeline(100, seed=7, crop_seconds=2.5, resized_crop_min=0.5).draw(32, 1000, step=5)
    length_free = [c for c in COL if c not in ("cut_start", "cut_len", "drop_start", "drop_len", "crop_start",
                                               "rrc_on", "rrc_start", "rrc_frac")]
    idx = [COL[c] for c in length_free]
    assert torch.equal(cropped[..., idx], base[..., idx])


def test_no_resized_crop_is_the_ablation_of_it(backend):
    assert "no-resized-crop" in CONFIGS
    x = ecg_like(8, length=1000, seed=24)
    kw = dict(seed=8, rates=ALL_ON, crop_seconds=5.0, backend=backend)
    full = AugmentPipeline(100, resized_crop_min=0.5, **kw)
    ablated = AugmentPipeline(100, resized_crop_min=0.5, enabled="no-resized-crop", **kw)
    crop_only = AugmentPipeline(100, **kw)
    assert not ablated.draw(8, 1000, step=0)[..., COL["rrc_on"]].any()
    assert torch.equal(torch.stack(ablated(x, step=0)), torch.stack(crop_only(x, step=0)))
    assert not torch.equal(torch.stack(full(x, step=0)), torch.stack(crop_only(x, step=0)))


def test_resized_crop_alone_keeps_the_record_length_and_changes_the_views(backend):
    x = ecg_like(8, length=500, seed=25)
    pipe = AugmentPipeline(100, seed=9, enabled=NONE_ON, resized_crop_min=0.5, backend=backend)
    v1, v2 = pipe(x, step=0)
    assert v1.shape == x.shape and not torch.equal(v1, x)


def test_bad_crop_settings_are_refused_clearly(backend):
    x = ecg_like(2, length=200)
    with pytest.raises(ValueError, match=r"crop_seconds 2.5: a crop of 250 samples at 100 Hz is longer than the "
                                         r"record window \(200 samples"):
        AugmentPipeline(100, crop_seconds=2.5, backend=backend)(x)
    for bad in (0, 1.5, -0.2, float("nan")):
        with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
            AugmentPipeline(100, resized_crop_min=bad, backend=backend)
    with pytest.raises(ValueError, match="positive number of seconds"):
        AugmentPipeline(100, crop_seconds=0)
    with pytest.raises(ValueError, match="shorter than the augmentations' minimum"):
        AugmentPipeline(100, crop_seconds=0.3)


@needs_ext
def test_opcheck_with_a_view_length():
    x = ecg_like(4, length=300, seed=26)
    pipe = AugmentPipeline(100, seed=1, rates=ALL_ON, crop_seconds=1.5, resized_crop_min=0.5)
    params = pipe.draw(4, 300, step=0)
    torch.library.opcheck(torch.ops.ecgfast.augment_views.default, (x, params, 100.0, 150))
    assert torch.ops.ecgfast.augment_views(x, params, 100.0, 150).shape == (2, 4, 12, 150)


@needs_ext
def test_op_refuses_bad_crops():
    x = ecg_like(2, length=300)
    params = AugmentPipeline(100, crop_seconds=1.5).draw(2, 300, step=0)
    with pytest.raises(RuntimeError, match="longer than the record"):
        torch.ops.ecgfast.augment_views(x, params, 100.0, 301)
    with pytest.raises(RuntimeError, match="too short"):
        torch.ops.ecgfast.augment_views(x, params, 100.0, 20)
    params[1, 0, COL["crop_start"]] = 151  # 151 + 150 > 300
    with pytest.raises(RuntimeError, match="crop start"):
        torch.ops.ecgfast.augment_views(x, params, 100.0, 150)
