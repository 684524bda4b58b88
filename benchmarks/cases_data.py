"""Data stage: reading records with wfdb (the plain way) vs batches from the ecgfast cache.

The cache epoch is timed two ways: batches from the split already held in memory (the loader's
steady state, every epoch after the first), and opening the HDF5 file and loading the split first
(what each training process pays once; the file read from the page cache)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
import wfdb

from benchmarks.harness import Case
from benchmarks.workdir import synthetic_cache, synthetic_root


def cases(quick: bool) -> list[Case]:
    from ecgfast.data import ECGBatchLoader, build_cache, open_cache

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

    def load_and_epoch():  # what a training run pays once per process: open the file, load the split
        c = open_cache(cache.path)
        for _ in ECGBatchLoader(c, range(len(c)), batch_size=256, seed=0):
            pass

    def build(workers):
        return lambda: build_cache(root, tmp / f"w{workers}.h5", 100, workers=workers, progress=False)

    T = cache.signal_length
    return [*storage_cases(cache, tmp), *hash_cases(cache),
        Case("data", "wfdb.rdsamp per record", rdsamp_all, n, "records", repeat=1 if not quick else 2),
        Case("data", "cache epoch (ECGBatchLoader, B=256)", epoch, n, "records",
             baseline="wfdb.rdsamp per record", bytes_moved=n * 12 * T * (2 + 4), repeat=10),
        Case("data", "open cache + load split + epoch (B=256)", load_and_epoch, n, "records",
             baseline="wfdb.rdsamp per record", repeat=5),
        Case("cache build", "1 worker", build(1), n, "records", repeat=1, warmup=0),
        Case("cache build", "2 workers", build(2), n, "records", baseline="1 worker", repeat=1, warmup=0),
    ]


def storage_cases(cache, tmp: Path) -> list[Case]:
    """The measurement behind the cache's int16 storage: the same signals stored as float32
    mV (same chunking) against int16 ADC values, read whole from the file, and a batch of
    256 made from memory (float32 ``index_select`` vs int16 ``gather_dequantize``)."""
    from ecgfast.data._ops import gather_dequantize

    n = len(cache)
    all_rows = np.arange(n)
    mv = cache.signals(all_rows)
    f32_path = tmp / "float32.h5"
    with h5py.File(f32_path, "w") as f:
        f.create_dataset("signals", data=mv.numpy(), chunks=(1, *mv.shape[1:]))

    def read_whole(path):
        def read():
            with h5py.File(path, "r") as f:
                return f["signals"][:]
        return read

    raw = cache.raw(all_rows)
    batch = torch.from_numpy(np.random.default_rng(0).choice(n, 256, replace=False))
    size_mb = {"float32": f32_path.stat().st_size / 1e6, "int16": Path(cache.path).stat().st_size / 1e6}
    plain_read, plain_batch = "float32 file: read all", "float32 batch: index_select (B=256)"
    return [
        Case("storage", plain_read, read_whole(f32_path), n, "records", extra={"file_MB": size_mb["float32"]}),
        Case("storage", "int16 file: read all", read_whole(cache.path), n, "records", baseline=plain_read,
             extra={"file_MB": size_mb["int16"]}),
        Case("storage", plain_batch, lambda: mv.index_select(0, batch), 256, "records", repeat=50, warmup=3),
        Case("storage", "int16 batch: gather_dequantize (B=256)",
             lambda: gather_dequantize(raw, batch, cache.gain, cache.baseline), 256, "records",
             baseline=plain_batch, repeat=50, warmup=3),
    ]


def hash_cases(cache) -> list[Case]:
    """What cache format 3's per-row SHA-256 costs on loading the split into memory: HDF5's read
    (Fletcher-32 checked) alone against the same read with every row re-hashed and compared."""
    rows = np.arange(len(cache))
    plain = "split read, Fletcher-32 only"
    return [
        Case("hash check", plain, lambda: cache._read_block(rows), len(rows), "records", repeat=5),
        Case("hash check", "split read + SHA-256 per row", lambda: cache._read_rows(rows), len(rows), "records",
             baseline=plain, repeat=5),
    ]


def cache_filenames(root):
    from ecgfast.data import load_metadata

    return load_metadata(root).filenames(100)
