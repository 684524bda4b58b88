"""Fixtures of the API tests: checkpoints, a small batch of ECGs, a small synthetic PTB-XL and its cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api_helpers import LENGTH, RATE, make_checkpoint


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
