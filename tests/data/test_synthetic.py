import hashlib

import numpy as np
import pandas as pd

from ecgfast.data import load_metadata, read_record, write_synthetic_ptbxl


def _tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a = write_synthetic_ptbxl(tmp_path / "a", 40, seed=3, progress=False, workers=1)
    b = write_synthetic_ptbxl(tmp_path / "b", 40, seed=3, progress=False, workers=2)
    c = write_synthetic_ptbxl(tmp_path / "c", 40, seed=4, progress=False, workers=1)
    assert _tree_hash(a) == _tree_hash(b)
    assert _tree_hash(a) != _tree_hash(c)


def test_real_layout_and_columns(synthetic_root, ptbxl_sample_root):
    real = pd.read_csv(ptbxl_sample_root / "ptbxl_database.csv", index_col=0, nrows=5)
    syn = pd.read_csv(synthetic_root / "ptbxl_database.csv", index_col=0)
    assert list(syn.columns) == list(real.columns)
    meta = load_metadata(synthetic_root)
    assert set(np.unique(meta.folds)) == set(range(1, 11))
    assert pd.Series(meta.folds).groupby(meta.patient_ids).nunique().max() == 1
    counts = meta.labels.sum(0)
    assert (counts > 10).all()  # every class present
    assert (meta.labels.sum(1) == 2).sum() > 5  # some records carry two classes
    assert (~meta.has_label).sum() > 5  # some none
    for rate in (100, 500):
        x = read_record(synthetic_root, int(meta.ecg_ids[0]), rate)
        assert x.shape == (12, 10 * rate)


def test_lead_relations_and_plausible_amplitudes(synthetic_root):
    """Einthoven/Goldberger relations hold (to the int16 quantum); R peaks of ~0.5-3 mV."""
    meta = load_metadata(synthetic_root)
    normal = np.flatnonzero(meta.labels[:, 3] == 1)[:10]
    for i in normal:
        x = read_record(synthetic_root, int(meta.ecg_ids[i]), 500)
        I, II, III, aVR = x[0], x[1], x[2], x[3]
        np.testing.assert_allclose(III, II - I, atol=1.5e-3)
        np.testing.assert_allclose(aVR, -(I + II) / 2, atol=1.5e-3)
        peak = np.abs(x - np.median(x, axis=1, keepdims=True)).max()
        assert 0.4 < peak < 5.0


def test_class_effects_are_present(synthetic_root):
    """CD widens QRS: more energy at low QRS frequencies; MI/STTC shift the ST segment."""
    meta = load_metadata(synthetic_root)
    def qrs_width(x, fs=500):
        # width at half maximum of the strongest lead's largest deflection, averaged over beats
        lead = x[np.argmax(np.abs(x).max(1))]
        lead = lead - np.median(lead)
        thr = 0.5 * np.abs(lead).max()
        return (np.abs(lead) > thr).sum() / fs
    widths = {}
    for cls, j in (("NORM", 3), ("CD", 0)):
        only = np.flatnonzero((meta.labels[:, j] == 1) & (meta.labels.sum(1) == 1))[:15]
        widths[cls] = np.median([qrs_width(read_record(synthetic_root, int(meta.ecg_ids[i]), 500))
                                 for i in only])
    assert widths["CD"] > 1.3 * widths["NORM"]
