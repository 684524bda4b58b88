"""Shared fixtures: the real PTB-XL sample, a small synthetic PTB-XL with its cache, and trained-model
checkpoints with a small batch of ECGs (for the models, deploy, report, base and cli tests)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import LENGTH, RATE, make_checkpoint

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("ECGFAST_PTBXL_SAMPLE", REPO.parent / "shared" / "data" / "ptbxl-sample"))


@pytest.fixture(autouse=True, scope="session")
def _library_log_on_stderr():
    """The library's log lines on stderr as a command shows them (a command configures this on its first
    run; configured here for every test, so that which test ran first never matters)."""
    from ecgfast.cli.boundary import configure_logging

    configure_logging()


@pytest.fixture(scope="session")
def ptbxl_sample_root() -> Path:
    """The real slice of PTB-XL 1.0.1 (full csv, records 1-200 at 100 Hz, 1-50 at 500 Hz)."""
    if not (SAMPLE / "ptbxl_database.csv").is_file():
        message = f"the real PTB-XL sample is not at {SAMPLE} (set ECGFAST_PTBXL_SAMPLE)"
        if os.environ.get("CI"):  # CI has shared/ beside the clone: never skip the real-data tests there
            pytest.fail(message)
        pytest.skip(message)
    return SAMPLE


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A synthetic PTB-XL of 400 records at 100 and 500 Hz."""
    from ecgfast.data import write_synthetic_ptbxl

    return write_synthetic_ptbxl(tmp_path_factory.mktemp("ptbxl") / "PTB-XL", n_records=400, seed=7,
                                 sampling_rates=(100, 500), progress=False)


@pytest.fixture(scope="session")
def synthetic_cache_path(synthetic_root, tmp_path_factory) -> Path:
    """The 100 Hz HDF5 cache of ``synthetic_root``."""
    from ecgfast.data import build_cache

    return build_cache(synthetic_root, tmp_path_factory.mktemp("cache") / "ptbxl100.h5", 100,
                       progress=False)


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ckpts")


@pytest.fixture(scope="session")
def encoder_ckpt(ckpt_dir) -> Path:
    return make_checkpoint(ckpt_dir / "enc.pt", "encoder", seed=1)


@pytest.fixture(scope="session")
def classifier_ckpt(ckpt_dir) -> Path:
    return make_checkpoint(ckpt_dir / "cls.pt", "classifier", seed=2, per_lead=True)


@pytest.fixture(scope="session")
def ecg_batch() -> np.ndarray:
    """(3, 12, 1000) float32 in mV: smooth random signals, 100 Hz."""
    rng = np.random.default_rng(0)
    t = np.arange(LENGTH) / RATE
    x = np.stack([np.sin(2 * np.pi * (1 + 0.1 * i) * t + rng.uniform(0, 6, (12, 1))) * 0.5 for i in range(3)])
    return (x + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def small_ptbxl(tmp_path_factory) -> Path:
    """A synthetic PTB-XL of 24 records at 100 and 500 Hz (a few seconds to write)."""
    from ecgfast.data import write_synthetic_ptbxl

    return write_synthetic_ptbxl(tmp_path_factory.mktemp("api_ptbxl") / "PTB-XL", n_records=24, seed=5,
                                 sampling_rates=(100, 500), progress=False)


@pytest.fixture(scope="session")
def small_cache(small_ptbxl, tmp_path_factory) -> Path:
    from ecgfast.data import build_cache

    return build_cache(small_ptbxl, tmp_path_factory.mktemp("api_cache") / "c100.h5", 100, progress=False)
