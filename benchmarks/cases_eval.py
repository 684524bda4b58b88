"""Evaluation stage: fold-10-sized evaluation (2,200 records): predictions, metrics, 1,000-resample bootstrap."""
from __future__ import annotations

import numpy as np

from benchmarks.harness import Case
from benchmarks.workdir import synthetic_cache


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    from ecgfast.data import Normalizer
    from ecgfast.models import ECGClassifier
    from ecgfast.models.inference import predict
    from ecgfast.report.metrics import bootstrap_ci, classification_metrics

    precision = "fp32"  # what `ecgfast evaluate` runs at (repeatable probabilities)
    n = 300 if quick else 2200
    cache = synthetic_cache(2200 if not quick else 300)
    idx = np.arange(min(n, len(cache)))
    model = ECGClassifier().to(device).eval()
    norm = Normalizer(0.0, 0.2)
    y = cache.labels[idx]

    def full():
        p = predict(model, cache, idx, norm, cache.signal_length, precision)
        classification_metrics(y, p, cache.classes)
        bootstrap_ci(y, p, n_boot=1000, seed=0)

    p = np.random.default_rng(0).random(y.shape)

    def metrics_only():
        classification_metrics(y, p, cache.classes)
        bootstrap_ci(y, p, n_boot=1000, seed=0)

    return [Case("eval", f"evaluate {len(idx)} records (predict + metrics + bootstrap)", full, len(idx),
                 "records", repeat=3),
            Case("eval", f"metrics + 1000 bootstraps, {len(idx)} records", metrics_only, len(idx), "records",
                 repeat=3)]
