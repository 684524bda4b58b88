import warnings

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score, roc_auc_score

from ecgfast.report.metrics import auroc_batched, bootstrap_ci, classification_metrics
from ecgfast.report.stats import mean_sd_ci, paired_test

CLASSES = ("CD", "HYP", "MI", "NORM", "STTC")


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((500, 5)) < rng.uniform(0.1, 0.5, 5)).astype(int)
    p = np.clip(y * 0.3 + rng.random((500, 5)) * 0.8, 0, 1)
    p[:50] = np.round(p[:50], 1)  # ties
    m = classification_metrics(y, p, CLASSES)
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, p, average="macro"), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, p >= 0.5, average="macro", zero_division=0), abs=1e-12)
    for j, c in enumerate(CLASSES):
        assert m["per_class"][c]["auroc"] == pytest.approx(roc_auc_score(y[:, j], p[:, j]), abs=1e-12)
        assert m["per_class"][c]["f1"] == pytest.approx(f1_score(y[:, j], p[:, j] >= 0.5), abs=1e-12)
        tp = ((p[:, j] >= 0.5) & (y[:, j] == 1)).sum()
        assert m["per_class"][c]["sensitivity"] == pytest.approx(tp / y[:, j].sum())
    pred = p >= 0.5
    assert m["micro_sensitivity"] == pytest.approx((pred & (y == 1)).sum() / (y == 1).sum())
    assert m["micro_specificity"] == pytest.approx((~pred & (y == 0)).sum() / (y == 0).sum())
    for j in range(5):  # the bootstrap's vectorised AUROC is the same statistic
        assert auroc_batched(y[None, :, j], p[None, :, j])[0] == pytest.approx(roc_auc_score(y[:, j], p[:, j]))


def test_bootstrap_interval_covers_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (200, 2000):
        y = (rng.random((n, 5)) < 0.3).astype(int)
        p = np.clip(y * 0.4 + rng.random((n, 5)) * 0.7, 0, 1)
        ci = bootstrap_ci(y, p, n_boot=500, seed=1)
        point = classification_metrics(y, p, CLASSES)["macro_auroc"]
        assert ci["macro_auroc"][0] < point < ci["macro_auroc"][1]
        widths.append(ci["macro_auroc"][1] - ci["macro_auroc"][0])
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(n): 10x the records, ~1/3 the width
    assert bootstrap_ci(y, p, 200, seed=3) == bootstrap_ci(y, p, 200, seed=3)


def test_mean_sd_and_t_interval():
    v = [0.81, 0.84, 0.83, 0.86, 0.80]
    s = mean_sd_ci(v)
    lo, hi = sps.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=sps.sem(v))
    assert s["mean"] == pytest.approx(np.mean(v)) and s["sd"] == pytest.approx(np.std(v, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))


def test_paired_test_matches_scipy():
    a = [0.85, 0.86, 0.84, 0.88, 0.87, 0.86, 0.85]
    b = [0.83, 0.85, 0.84, 0.85, 0.84, 0.85, 0.82]
    t = paired_test(a, b)
    assert t["t_p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert t["wilcoxon_p_value"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    with pytest.raises(ValueError, match="share their seeds"):
        paired_test([1, 2], [1])


def test_bootstrap_on_a_tiny_set_is_quiet_and_equals_nanmean():
    """Resamples of 6 records where some draw no positive of any class: their macro AUROC is NaN (left out of
    the percentiles), with no "Mean of empty slice" warning; the interval is nanmean's."""
    import warnings

    from ecgfast.report import metrics

    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1], [0, 0], [0, 0]])
    p = np.linspace(0.1, 0.9, 12).reshape(6, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_ci(y, p, n_boot=200, seed=1)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 6, size=(200, 6))
    auroc = np.stack([auroc_batched(y[idx][..., j], p[idx][..., j]) for j in range(2)], axis=-1)
    assert np.isnan(auroc).all(axis=1).any()  # the case: some resample has no class with both labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmean(auroc, axis=1)
    np.testing.assert_array_equal(metrics._nanmean_quiet(auroc, axis=1), ref)
    assert ci["macro_auroc"] == (float(np.nanpercentile(ref, 2.5)), float(np.nanpercentile(ref, 97.5)))


def test_bootstrap_intervals_are_nanpercentiles_and_quiet_when_undefined():
    rng = np.random.default_rng(3)
    y = (rng.random((40, 3)) < 0.3).astype(int)
    p = rng.random((40, 3))
    ci = bootstrap_ci(y, p, n_boot=200, seed=1)
    # the same resamples through numpy's own NaN-aware percentile
    idx = np.random.default_rng(1).integers(0, 40, size=(200, 40))
    auroc = np.stack([auroc_batched(y[idx][..., j], p[idx][..., j]) for j in range(3)], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = np.nanmean(auroc, axis=1)
    assert ci["macro_auroc"] == pytest.approx((np.nanpercentile(macro, 2.5), np.nanpercentile(macro, 97.5)))
    # one record: no resample has both labels of any class, so AUROC's interval is undefined, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = bootstrap_ci(y[:1], p[:1], n_boot=20, seed=0)
    assert all(np.isnan(one["macro_auroc"]))
