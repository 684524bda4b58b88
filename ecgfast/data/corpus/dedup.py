"""Finding copies of PTB-XL records in another corpus (the CinC 2021 collection holds PTB-XL, renamed).

Before pretraining for a PTB-XL evaluation, every record duplicating a PTB-XL
record of the held-out folds (9 and 10 by default) is dropped, with all its
windows:

* **by id** where the source keeps PTB-XL's ids (the ``ptbxl`` layout: its
  ``ecg_id``);
* **by signal fingerprint** everywhere else: a record lasting 10 s (+-0.5 s,
  as every PTB-XL record) is low-passed and resampled to 50 Hz
  (``resample_poly``), its baseline (1-s moving mean) removed, 0.5 s cut off each end, six leads (I,
  II, V1, V2, V3, V5) z-normalised one by one (so gain and offset do not
  matter) and concatenated into a unit vector. Candidates come from
  random-hyperplane hashing (SimHash: 16 tables of 12 bits; a true copy has
  correlation > 0.95, so it shares a bucket in some table with probability >
  0.999), then the exact check: cosine (the mean Pearson correlation of the six
  leads) >= ``threshold`` (0.9). Two different ECGs, unaligned beats, mostly sit near 0
  (on the real PTB-XL sample: median -0.01, max 0.55 over 19,859 pairs of different
  patients; copies 0.995-0.998; docs/corpus.md).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from ecgfast.data.corpus.harmonise import resample

RATE = 50
SECONDS = 10
LEAD_ROWS = (0, 1, 6, 7, 8, 10)  # I, II, V1, V2, V3, V5 in standard order
EDGE = RATE // 2  # 0.5 s left out at each end
TABLES, BITS = 16, 12
THRESHOLD = 0.9


def descriptor(mv: np.ndarray, fs: float) -> np.ndarray | None:
    """Unit float32 vector of a (12, n) standard-order mV record, or None if it does not last 10 s."""
    n = mv.shape[1]
    if abs(n / fs - SECONDS) > 0.5:
        return None
    x = resample(np.asarray(mv[list(LEAD_ROWS)], dtype=np.float64), fs, RATE)
    L = RATE * SECONDS
    if x.shape[1] < L:
        x = np.pad(x, ((0, 0), (0, L - x.shape[1])), mode="edge")
    x = x[:, :L]
    x = x - uniform_filter1d(x, RATE, axis=1, mode="nearest")
    x = x[:, EDGE:L - EDGE]  # ends: where resampling and filtering transients live
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)
    v = x.reshape(-1)
    return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)


class DuplicateIndex:
    """Reference descriptors (PTB-XL held-out records) with SimHash buckets; ``match`` finds a copy."""

    def __init__(self, descriptors: np.ndarray, ids: np.ndarray, threshold: float = THRESHOLD, seed: int = 0):
        self.desc = np.asarray(descriptors, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.threshold = threshold
        dim = (RATE * SECONDS - 2 * EDGE) * len(LEAD_ROWS)
        self.planes = np.random.default_rng(seed).standard_normal((dim, TABLES * BITS)).astype(np.float32)
        self.buckets = [dict() for _ in range(TABLES)]
        for i, key in enumerate(self._keys(self.desc)):
            for t, k in enumerate(key):
                self.buckets[t].setdefault(int(k), []).append(i)

    def _keys(self, d: np.ndarray) -> np.ndarray:
        bits = (d @ self.planes > 0).reshape(len(d), TABLES, BITS)
        return (bits * (1 << np.arange(BITS))).sum(-1)

    def match(self, d: np.ndarray) -> int | None:
        """The PTB-XL ecg_id that ``d`` copies, or None."""
        if len(self.desc) == 0:
            return None
        cand = set()
        for t, k in enumerate(self._keys(d[None])[0]):
            cand.update(self.buckets[t].get(int(k), ()))
        if not cand:
            return None
        cand = np.fromiter(cand, dtype=np.int64)
        sims = self.desc[cand] @ d
        best = int(np.argmax(sims))
        return int(self.ids[cand[best]]) if sims[best] >= self.threshold else None

    def save(self, path) -> None:
        from ecgfast.base.fs import atomic_write

        atomic_write(path, lambda f: np.savez(f, desc=self.desc, ids=self.ids, threshold=self.threshold))

    @classmethod
    def load(cls, path) -> DuplicateIndex:
        with np.load(path) as z:
            return cls(z["desc"], z["ids"], float(z["threshold"]))


def ptbxl_reference(cache_path, folds=(9, 10)) -> tuple[DuplicateIndex, dict]:
    """The index of a PTB-XL HDF5 cache's records in ``folds``; and what it was built from."""
    from ecgfast.data.cache import open_cache

    cache = open_cache(cache_path)
    try:
        rows = np.flatnonzero(np.isin(cache.folds, folds))
        desc = np.zeros((len(rows), (RATE * SECONDS - 2 * EDGE) * len(LEAD_ROWS)), np.float32)
        for s in range(0, len(rows), 512):
            x = cache.signals(rows[s:s + 512]).numpy()
            for j, sig in enumerate(x):
                desc[s + j] = descriptor(sig, cache.sampling_rate)
        info = {"cache": str(cache_path), "fingerprint": cache.fingerprint, "folds": list(map(int, folds)),
                "records": int(len(rows))}
        return DuplicateIndex(desc, cache.ecg_ids[rows]), info
    finally:
        cache.close()
