"""Shared fixtures: the real PTB-XL sample and a small synthetic PTB-XL with its cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
