"""Small synthetic corpora in every layout, built once per session."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def layouts(tmp_path_factory):
    from ecgfast.data.sources.synthetic import (
        write_synthetic_cinc2021,
        write_synthetic_code15,
        write_synthetic_mimic,
        write_synthetic_numpy,
    )

    root = tmp_path_factory.mktemp("layouts")
    write_synthetic_cinc2021(root / "cinc2021", 16, seed=3)
    write_synthetic_mimic(root / "mimic-iv-ecg", 6, seed=3)
    write_synthetic_code15(root / "code15", 12, seed=3, per_part=5)
    write_synthetic_numpy(root / "numpy", 20, seed=3)
    return root


def write_arrays(folder, n, T=200, rate=100, seed=0):
    """A numpy-layout corpus of ``n`` random-ish records (fast; for loader tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 12, T)) * 0.3).astype(np.float32)
    x[:, 0, 0] = np.arange(n) / 1000.0  # each record identifiable by its first sample
    np.save(folder / "signals.npy", x)
    labels = rng.random((n, 5)) < 0.2
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "patient_id": np.arange(n),
                  **{c: labels[:, j].astype(int) for j, c in enumerate(["CD", "HYP", "MI", "NORM", "STTC"])}}
                 ).to_csv(folder / "records.csv", index=False)
    (folder / "sampling_rate.txt").write_text(f"{rate}\n")
    return folder


@pytest.fixture(scope="session")
def arrays():
    """``write_arrays`` as a fixture (test modules here are not a package)."""
    return write_arrays
