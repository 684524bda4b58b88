"""Multi-label metrics with bootstrap confidence intervals.

Point estimates come from scikit-learn (``roc_auc_score``, ``f1_score``). The
bootstrap recomputes AUROC for many resamples at once with the rank formula
(Mann-Whitney U, average ranks for ties), which equals scikit-learn's AUROC and
runs vectorised over resamples.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import f1_score, roc_auc_score

THRESHOLD = 0.5


def _confusion(y: np.ndarray, pred: np.ndarray):
    tp = (pred & (y == 1)).sum(axis=-2)
    fn = (~pred & (y == 1)).sum(axis=-2)
    tn = (~pred & (y == 0)).sum(axis=-2)
    fp = (pred & (y == 0)).sum(axis=-2)
    return tp, fn, tn, fp


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, classes, threshold: float = THRESHOLD) -> dict:
    """Macro AUROC, macro F1 at ``threshold`` (a number, or one per class), micro sensitivity/specificity,
    and the same per class."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_prob, dtype=np.float64)
    pred = p >= threshold
    present = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]  # AUROC needs both labels
    auroc = {c: (float(roc_auc_score(y[:, j], p[:, j])) if j in present else float("nan"))
             for j, c in enumerate(classes)}
    f1 = f1_score(y, pred.astype(int), average=None, zero_division=0)
    tp, fn, tn, fp = _confusion(y, pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens, spec = tp / (tp + fn), tn / (tn + fp)
    return {
        "macro_auroc": float(np.nanmean([auroc[c] for c in classes])) if present else float("nan"),
        "macro_f1": float(f1_score(y, pred.astype(int), average="macro", zero_division=0)),
        "micro_sensitivity": float(tp.sum() / max(tp.sum() + fn.sum(), 1)),
        "micro_specificity": float(tn.sum() / max(tn.sum() + fp.sum(), 1)),
        "per_class": {c: {"auroc": auroc[c], "f1": float(f1[j]), "sensitivity": float(sens[j]),
                          "specificity": float(spec[j]), "support": int(y[:, j].sum())}
                      for j, c in enumerate(classes)},
    }


def auroc_batched(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUROC of each row of (R, n) labels/scores by the rank formula; NaN where a row has one label only."""
    ranks = rankdata(p, axis=-1)  # average ranks for ties, as the Mann-Whitney statistic needs
    pos = y.sum(axis=-1)
    neg = y.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y).sum(axis=-1) - pos * (pos + 1) / 2) / (pos * neg)


def _nanmean_quiet(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` (the same sums and counts) without its "Mean of empty slice" warning: NaN where every
    value is NaN (a small test set's resample in which no class has both labels)."""
    present = ~np.isnan(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, a, 0.0).sum(axis=axis) / present.sum(axis=axis)


def bootstrap_ci(y_true: np.ndarray, y_prob: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 threshold: float = THRESHOLD) -> dict:
    """Percentile bootstrap CIs (records resampled with replacement) of the headline metrics."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_prob, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    yb, pb = y[idx], p[idx]  # (R, n, C)
    auroc = np.stack([auroc_batched(yb[..., j], pb[..., j]) for j in range(y.shape[1])], axis=-1)
    pred = pb >= threshold
    tp, fn, tn, fp = _confusion(yb, pred)  # (R, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        stats = {
            "macro_auroc": _nanmean_quiet(auroc, axis=1),
            "macro_f1": f1.mean(axis=1),
            "micro_sensitivity": tp.sum(1) / (tp.sum(1) + fn.sum(1)),
            "micro_specificity": tn.sum(1) / (tn.sum(1) + fp.sum(1)),
        }
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {k: _interval(v, lo, hi) for k, v in stats.items()}


def _interval(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The ``lo``/``hi`` percentiles of the non-NaN ``values`` (``np.nanpercentile``'s numbers), NaN without
    its "All-NaN slice" warning when there are none (no resample had a class with both labels)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.percentile(values, lo)), float(np.percentile(values, hi))
