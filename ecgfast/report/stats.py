"""Statistics over seeds: mean +- SD, t-based confidence intervals, paired tests between arms."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_sd_ci(values, confidence: float = 0.95) -> dict:
    """Mean, sample SD and the t-based CI of the mean of ``values`` (one per seed)."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    sd = float(v.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci_low": float(lo), "ci_high": float(hi)}


def paired_test(a, b) -> dict:
    """Paired t-test (and Wilcoxon signed-rank where n allows) of arm a vs arm b over the same seeds."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {len(a)} values vs {len(b)}: the arms must share their seeds")
    out = {"n": int(len(a)), "mean_difference": float((a - b).mean()) if len(a) else float("nan"),
           "t_p_value": float("nan"), "wilcoxon_p_value": float("nan")}
    if len(a) >= 2 and np.any(a != b):
        out["t_p_value"] = float(stats.ttest_rel(a, b).pvalue)
    if len(a) >= 6 and np.any(a != b):  # below 6 pairs the exact Wilcoxon p cannot reach 0.05
        out["wilcoxon_p_value"] = float(stats.wilcoxon(a, b).pvalue)
    return out
