"""Training on crops (--crop-seconds, --resized-crop) and scoring by window averaging."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgfast.deploy.export import export_model, load_exported
from ecgfast.eval.evaluate import evaluate
from ecgfast.models.pretrained import load_classifier, load_encoder
from ecgfast.models.windows import crop_samples, random_crops, window_average, window_starts
from ecgfast.train_finetune import main as finetune_main
from ecgfast.train_ssl_simclr import main as simclr_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from checkpoint_helpers import make_checkpoint  # noqa: E402

TINY = ["--epochs", "1", "--batch-size", "32", "--signal-length", "256", "--no-progress", "--precision", "fp32"]


def test_window_starts_cover_the_record_with_half_overlap():
    assert window_starts(1000, 250) == [0, 125, 250, 375, 500, 625, 750]
    assert window_starts(1000, 300) == [0, 150, 300, 450, 600, 700]  # the last one ends at the end
    assert window_starts(250, 250) == [0] and window_starts(200, 250) == [0]
    for T, L in ((1000, 128), (997, 250), (5000, 1250)):
        s = window_starts(T, L)
        covered = np.zeros(T, bool)
        for a in s:
            covered[a:a + L] = True
        assert covered.all() and s[-1] == T - L and all(0 < b - a <= L // 2 for a, b in zip(s, s[1:]))


def test_window_average_is_the_mean_over_the_crops():
    x = torch.randn(3, 12, 1000)
    fn = torch.nn.Sequential(torch.nn.Conv1d(12, 4, 5), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten())
    with torch.no_grad():
        got = window_average(fn, x, 250)
        want = torch.stack([fn(x[..., s:s + 250]) for s in window_starts(1000, 250)]).mean(0)
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.equal(window_average(fn, x, None), fn(x))


def test_random_crops_are_windows_at_uniform_starts():
    x = torch.arange(1000.0).expand(4000, 1, 1000)
    c = random_crops(x, 250, np.random.default_rng(0))
    start = c[:, 0, 0]
    assert torch.equal(c[:, 0], start[:, None] + torch.arange(250.0))
    assert start.min() >= 0 and start.max() <= 750
    assert abs(start.mean().item() - 375) < 4.5 * 216.8 / np.sqrt(4000)  # uniform on {0..750}
    with pytest.raises(ValueError, match="longer than the record window"):
        random_crops(x, 1001, np.random.default_rng(0))
    # Resized: on a ramp each crop is its source positions, start + t f with f in [0.5, 1], inside [0, 999].
    r = random_crops(x[:500], 250, np.random.default_rng(1), resized_min=0.5)[:, 0].double()
    f = (r[:, -1] - r[:, 0]) / 249  # over the whole span: float32 ramp values are exact to ~6e-5
    assert f.min() >= 0.5 - 1e-4 and f.max() <= 1 + 1e-4 and f.std() > 0.1
    torch.testing.assert_close(r, r[:, :1] + f[:, None] * torch.arange(250.0, dtype=torch.float64), rtol=0,
                               atol=2e-3)
    assert r.min() >= 0 and r.max() <= 999


@pytest.fixture(scope="module")
def crop_runs(synthetic_cache_path, tmp_path_factory):
    """An encoder pretrained on 1.28 s crops (with the random-resized-crop) of a 2.56 s window, and a
    classifier fine-tuned from it (inheriting its crops)."""
    d = tmp_path_factory.mktemp("crops")
    enc, clf = d / "enc.pt", d / "clf.pt"
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(enc), *TINY, "--crop-seconds", "1.28",
                        "--resized-crop", "0.5"]) == 0
    assert finetune_main(["--ssl-checkpoint", str(enc), "--cache", str(synthetic_cache_path), "--epochs", "1",
                          "--signal-length", "256", "--label-fraction", "0.5", "--out", str(clf),
                          "--resized-crop", "0.8", "--no-progress"]) == 0
    return enc, clf


def test_crop_settings_are_recorded_and_inherited(crop_runs):
    enc, clf = (torch.load(p, weights_only=True) for p in crop_runs)
    assert enc["spec"]["crop_seconds"] == 1.28 and crop_samples(enc["spec"]) == 128
    assert enc["config"]["crop_seconds"] == 1.28 and enc["config"]["resized_crop_min"] == 0.5
    assert clf["spec"]["crop_seconds"] == 1.28 and clf["config"]["crop_seconds"] == 1.28
    assert clf["config"]["resized_crop_min"] == 0.8
    assert 0 <= clf["val_macro_auroc"] <= 1


def test_loaded_models_evaluate_and_export_average_over_crops(crop_runs, synthetic_cache_path, tmp_path):
    enc_path, clf_path = crop_runs
    model = load_classifier(clf_path)
    x = np.random.default_rng(1).standard_normal((3, 12, 256)).astype(np.float32) * 0.3
    pre = model.preprocess(x, 100)
    assert pre.shape == (3, 12, 256)
    with torch.no_grad():
        crops = [model.encoder(pre[..., s:s + 128]) for s in window_starts(256, 128)]
        z = torch.stack(crops).mean(0)
        torch.testing.assert_close(model.embed(pre), z, rtol=0, atol=1e-6)
        torch.testing.assert_close(model.predict_proba(pre), torch.sigmoid(model.head(z)), rtol=0, atol=1e-6)
    windows = model.preprocess_windows(x, 100)
    assert windows.shape == (3, 3, 12, 128)  # crops at 0, 64, 128 of the 256-sample record
    torch.testing.assert_close(windows[:, 1], pre[..., 64:192], rtol=0, atol=0)
    out = export_model(clf_path, "torchscript", tmp_path / "clf.pt2", input_length=256)
    module, _ = load_exported(out, "torchscript")
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), model.predict_proba(pre).numpy(),
                                   rtol=0, atol=1e-5)
    encoder = load_encoder(enc_path)
    with torch.no_grad():
        pre_e = encoder.preprocess(x, 100)
        want = torch.stack([encoder.encoder(pre_e[..., s:s + 128]) for s in window_starts(256, 128)]).mean(0)
        torch.testing.assert_close(encoder.embed(pre_e), want, rtol=0, atol=1e-6)
    result = evaluate(clf_path, cache_path=synthetic_cache_path, n_boot=0)
    assert 0 <= result["macro_auroc"] <= 1


def test_a_model_without_crops_is_scored_on_the_whole_window(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt", "classifier")
    model = load_classifier(path)
    assert model._pre.crop_length is None and "crop_seconds" not in model.spec
    pre = model.preprocess(np.zeros((2, 12, 1000), np.float32), 100)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(pre), model.encoder(pre), rtol=0, atol=0)


def test_a_checkpoint_with_a_crop_longer_than_its_window_is_refused(tmp_path):
    from ecgfast.base.errors import CheckpointError

    path = make_checkpoint(tmp_path / "c.pt", "encoder")
    ckpt = torch.load(path, weights_only=True)
    ckpt["spec"]["crop_seconds"] = 12.0
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="crop_seconds 12.0 is not a crop of its 1000-sample window"):
        load_encoder(path)


@pytest.mark.parametrize("flags,match", [
    (["--crop-seconds", "3"], r"--crop-seconds 3: a crop of 300 samples at 100 Hz is longer than the record "
                              r"window \(256 samples"),
    (["--resized-crop", "1.5"], r"--resized-crop 1.5: the kept fraction of a random-resized-crop must be in "
                                r"\(0, 1\]"),
])
def test_bad_crop_flags_are_refused_clearly(flags, match, synthetic_cache_path, tmp_path, capsys):
    try:
        rc = simclr_main(["--cache", str(synthetic_cache_path), "--out", str(tmp_path / "x.pt"), *TINY, *flags])
    except SystemExit as exc:
        rc = exc.code
    assert rc != 0
    err = capsys.readouterr().err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "x.pt").exists()


def test_embed_and_predict_commands_average_over_crops(tmp_path):
    """``ecgfast embed``/``predict`` of a crop-trained model (2.5 s crops of a 10 s window): each record's row
    is the mean over its half-overlapping crops, the same as the loaded model's ``embed`` of the window."""
    import csv

    from ecgfast.deploy.embed import run_embed
    from ecgfast.deploy.predict import run_predict

    path = make_checkpoint(tmp_path / "c.pt", "classifier")
    ckpt = torch.load(path, weights_only=True)
    ckpt["spec"]["crop_seconds"] = 2.5
    torch.save(ckpt, path)
    x = np.random.default_rng(2).standard_normal((4, 12, 1000)).astype(np.float32) * 0.3
    np.save(tmp_path / "x.npy", x)
    files, n = run_embed(path, tmp_path / "x.npy", tmp_path / "z.npy", device="cpu", sampling_rate=100,
                         progress=False)
    model = load_classifier(path)
    with torch.no_grad():
        pre = model.preprocess(x, 100)
        want = torch.stack([model.encoder(pre[..., s:s + 250]) for s in window_starts(1000, 250)]).mean(0)
    assert n == 4 and len(window_starts(1000, 250)) == 7
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), want.numpy(), rtol=0, atol=1e-5)
    run_predict(path, tmp_path / "x.npy", tmp_path / "p.csv", device="cpu", sampling_rate=100, progress=False)
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    probs = np.array([[float(v) for v in r[1:6]] for r in rows[1:]])
    np.testing.assert_allclose(probs, torch.sigmoid(model.head(want)).detach().numpy(), rtol=0, atol=1e-5)
