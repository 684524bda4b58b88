"""Fixtures of the data-layer tests: a tiny synthetic PTB-XL that each test may damage in its own copy."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def mini_root_template(tmp_path_factory):
    """A synthetic PTB-XL of 20 records at 100 Hz (written once, never modified)."""
    from ecgfast.data import write_synthetic_ptbxl

    return write_synthetic_ptbxl(tmp_path_factory.mktemp("mini") / "PTB-XL", n_records=20, seed=11,
                                 sampling_rates=(100,), progress=False, workers=1)


@pytest.fixture
def mini_root(mini_root_template, tmp_path):
    """A private copy of the 20-record PTB-XL (file times kept)."""
    return shutil.copytree(mini_root_template, tmp_path / "PTB-XL")
