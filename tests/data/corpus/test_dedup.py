"""No leakage: copies of PTB-XL fold-9/10 records hidden in a CinC-layout corpus are all found, nothing else."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecgfast import LEADS
from ecgfast.data.corpus import build_corpus, open_corpus
from ecgfast.data.sources.readers import read_wfdb
from ecgfast.data.sources.synthetic import CINC_LEADS, write_cinc_record, write_synthetic_cinc2021


@pytest.fixture(scope="module")
def ptbxl(tmp_path_factory):
    from ecgfast.data import build_cache, load_metadata, write_synthetic_ptbxl

    root = write_synthetic_ptbxl(tmp_path_factory.mktemp("px") / "PTB-XL", n_records=70, seed=11,
                                 sampling_rates=(100, 500), progress=False, workers=1)
    cache = build_cache(root, root.parent / "ptbxl100.h5", 100, progress=False)
    return root, cache, load_metadata(root)


def _to_cinc_order(mv_ptbxl_order):
    return mv_ptbxl_order[[LEADS.index(n.upper()) for n in CINC_LEADS]]


def test_every_copy_of_a_held_out_record_is_found_and_nothing_else(ptbxl, tmp_path):
    root, cache, meta = ptbxl
    rng = np.random.default_rng(0)
    held = [int(i) for i, f in zip(meta.ecg_ids, meta.folds) if f in (9, 10)]
    others = [int(i) for i, f in zip(meta.ecg_ids, meta.folds) if f not in (9, 10)][:12]
    assert len(held) >= 8
    cinc = tmp_path / "cinc"
    write_synthetic_cinc2021(cinc, 24, seed=5)  # non-PTB-XL records of every database
    expect = {}  # record name -> the held-out ecg_id it copies
    k = 0
    for ecg_id in held + others:
        row = meta.records.loc[ecg_id]
        copies = []
        hr = read_wfdb(root / row["filename_hr"])[0]  # the 500 Hz record
        copies.append(("WFDB_PTBXL", hr))
        lr = read_wfdb(root / row["filename_lr"])[0]  # the 100 Hz record, resampled to 500 Hz
        copies.append(("WFDB_Ga", resample_poly(lr, 5, 1, axis=1)))
        for db, sig in copies:
            k += 1
            scale, offset = rng.uniform(0.5, 2.0), rng.uniform(-0.8, 0.8, (12, 1))
            name = f"HR9{k:04d}" if db == "WFDB_PTBXL" else f"E9{k:04d}"  # renamed
            write_cinc_record(cinc / db, name, _to_cinc_order(sig * scale + offset), 500, 1000, 60, "Male",
                              ["426783006"])
            if ecg_id in held:
                expect[name] = ecg_id
    m = build_corpus("cinc2021", cinc, tmp_path / "corpus", sampling_rate=100, exclude_ptbxl=cache,
                     progress=False)
    found = {rec: hit for _, rec, hit, how in m["excluded"]}
    assert found == expect  # every copy of a fold-9/10 record, matched to its ecg_id; no other record dropped
    assert m["totals"]["excluded_by_fingerprint"] == len(expect) == 2 * len(held)
    kept = set(open_corpus(tmp_path / "corpus").metadata()["record_id"].tolist())
    assert not kept & set(expect)
    assert len(kept) == m["totals"]["records"] == 24 + 2 * len(others)


def test_ptbxl_layout_excludes_by_id(ptbxl, tmp_path):
    root, cache, meta = ptbxl
    m = build_corpus("ptbxl", root, tmp_path / "p", sampling_rate=100, exclude_ptbxl=cache, progress=False)
    held = int(np.isin(meta.folds, (9, 10)).sum())
    assert m["totals"]["excluded_by_id"] == held and m["totals"]["excluded_by_fingerprint"] == 0
    folds = open_corpus(tmp_path / "p").metadata()["fold"]
    assert len(folds) == len(meta) - held and not np.isin(folds, (9, 10)).any()


def test_fingerprint_on_real_ptbxl(ptbxl_sample_root):
    """Real records: each 500 Hz record (rescaled, offset) matches its own 100 Hz version (PTB-XL made
    those by downsampling) and no record of another patient comes near the threshold."""
    from ecgfast.data import load_metadata
    from ecgfast.data.corpus.dedup import THRESHOLD, DuplicateIndex, descriptor
    from ecgfast.data.corpus.harmonise import resample

    meta = load_metadata(ptbxl_sample_root)
    ids = list(range(1, 201))
    lr = [read_wfdb(ptbxl_sample_root / meta.records.loc[e, "filename_lr"])[0] for e in ids]
    D = np.stack([descriptor(x, 100) for x in lr])
    index = DuplicateIndex(D, np.array(ids))
    for e in range(1, 51):
        hr = read_wfdb(ptbxl_sample_root / meta.records.loc[e, "filename_hr"])[0] * 1.7 + 0.3
        assert index.match(descriptor(resample(hr.astype(np.float64), 500, 100), 100)) == e
    S = D @ D.T
    patients = meta.records.loc[ids, "patient_id"].to_numpy()
    other_patient = patients[:, None] != patients[None, :]
    assert S[other_patient].max() < THRESHOLD - 0.2  # 0.55 on this slice
