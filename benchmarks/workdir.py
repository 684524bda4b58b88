"""Synthetic PTB-XL folders and caches shared by the benchmark stages, built once and reused."""
from __future__ import annotations

import os
from pathlib import Path

WORKDIR = Path(os.environ.get("ECGFAST_BENCH_DIR", Path.home() / ".cache" / "ecgfast-bench"))


def synthetic_root(n_records: int, seed: int = 0) -> Path:
    from ecgfast.data import write_synthetic_ptbxl

    root = WORKDIR / f"ptbxl-{n_records}-{seed}"
    if not (root / "ptbxl_database.csv").is_file():
        write_synthetic_ptbxl(root, n_records, seed, sampling_rates=(100,), progress=True)
    return root


def synthetic_cache(n_records: int, seed: int = 0):
    from ecgfast.data import ensure_cache

    return ensure_cache(synthetic_root(n_records, seed), WORKDIR / f"ptbxl-{n_records}-{seed}.h5", 100)
