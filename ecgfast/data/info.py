"""Splits and labels of a PTB-XL folder or a cache as a table (``ecgfast info``: ecgfast.cli.info)."""
from __future__ import annotations

import numpy as np

from ecgfast.data.cache import SPLITS

SPLIT_FOLDS = {"train (folds 1-8)": SPLITS["train"], "val (fold 9)": SPLITS["val"], "test (fold 10)": SPLITS["test"]}


def summarize(folds: np.ndarray, labels: np.ndarray, classes) -> str:
    """A table: records, labelled records and per-class counts for each split."""
    has_label = labels.any(axis=1)
    head = f"{'split':<18}{'records':>9}{'labelled':>10}" + "".join(f"{c:>7}" for c in classes)
    lines = [head, "-" * len(head)]
    for name, fs in list(SPLIT_FOLDS.items()) + [("all", range(1, 11))]:
        m = np.isin(folds, list(fs))
        counts = labels[m].sum(0).astype(int)
        lines.append(f"{name:<18}{int(m.sum()):>9}{int(has_label[m].sum()):>10}"
                     + "".join(f"{n:>7}" for n in counts))
    return "\n".join(lines)
