"""The command wing's tests: a tiny synthetic PTB-XL cache for the runs (built once per session)."""
import pytest


@pytest.fixture(scope="session")
def cli_tiny_cache(tmp_path_factory):
    """80 synthetic records at 100 Hz (72 in folds 1-8: two steps of 32)."""
    from ecgfast.data import build_cache, write_synthetic_ptbxl

    d = tmp_path_factory.mktemp("cli_ptbxl")
    root = write_synthetic_ptbxl(d / "PTB-XL", n_records=80, seed=11, sampling_rates=(100,), progress=False,
                                 workers=1)
    return root, build_cache(root, d / "c100.h5", 100, progress=False)
