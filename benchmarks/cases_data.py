"""Data stage: reading records with wfdb (the plain way) vs batches from the ecgfast cache."""
from __future__ import annotations

import tempfile
from pathlib import Path

import wfdb

from benchmarks.harness import Case
from benchmarks.workdir import synthetic_cache, synthetic_root


def cases(quick: bool) -> list[Case]:
    from ecgfast.data import ECGBatchLoader, build_cache

    n = 300 if quick else 2000
    root = synthetic_root(n)
    cache = synthetic_cache(n)
    paths = [str(root / f) for f in cache_filenames(root)]
    loader = ECGBatchLoader(cache, range(len(cache)), batch_size=256, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="ecgfast-bench-"))

    def rdsamp_all():
        for p in paths:
            wfdb.rdsamp(p)

    def epoch():
        for _ in loader:
            pass

    def build(workers):
        return lambda: build_cache(root, tmp / f"w{workers}.h5", 100, workers=workers, progress=False)

    T = cache.signal_length
    return [
        Case("data", "wfdb.rdsamp per record", rdsamp_all, n, "records", repeat=1 if not quick else 2),
        Case("data", "cache epoch (ECGBatchLoader, B=256)", epoch, n, "records",
             baseline="wfdb.rdsamp per record", bytes_moved=n * 12 * T * (2 + 4), repeat=10),
        Case("cache build", "1 worker", build(1), n, "records", repeat=1, warmup=0),
        Case("cache build", "2 workers", build(2), n, "records", baseline="1 worker", repeat=1, warmup=0),
    ]


def cache_filenames(root):
    from ecgfast.data import load_metadata

    return load_metadata(root).filenames(100)
