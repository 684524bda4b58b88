import ast

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgfast import CLASSES
from ecgfast.data import PTBXLError, load_metadata, read_record


def test_sample_csv_gives_the_benchmark_label_counts(ptbxl_sample_root):
    meta = load_metadata(ptbxl_sample_root)
    assert meta.version == "1.0.1"
    assert len(meta) == 21837
    assert int(meta.has_label.sum()) == 21430
    assert meta.label_counts() == {"NORM": 9528, "MI": 5486, "STTC": 5250, "CD": 4907, "HYP": 2655}
    assert meta.classes == CLASSES == ("CD", "HYP", "MI", "NORM", "STTC")


def test_labels_follow_the_definition_row_by_row(ptbxl_sample_root):
    """Independent re-derivation on a few hundred rows: diagnostic codes of any likelihood."""
    meta = load_metadata(ptbxl_sample_root)
    st = pd.read_csv(ptbxl_sample_root / "scp_statements.csv", index_col=0)
    diag = st[st.diagnostic == 1].diagnostic_class.to_dict()
    for i in range(0, len(meta), 97):
        codes = ast.literal_eval(meta.records.scp_codes.iloc[i])
        want = {diag[c] for c in codes if c in diag}
        got = {c for c, v in zip(CLASSES, meta.labels[i]) if v}
        assert got == want, meta.ecg_ids[i]


def test_patients_never_cross_folds(ptbxl_sample_root):
    meta = load_metadata(ptbxl_sample_root)
    per_patient = pd.Series(meta.folds).groupby(meta.patient_ids).nunique()
    assert per_patient.max() == 1


def test_version_1_0_3_layout(ptbxl_sample_root, tmp_path):
    """1.0.3 drops 38 ecg_ids and relabels some; its csv is read the same way."""
    db = pd.read_csv(ptbxl_sample_root / "ptbxl_database.csv", index_col=0)
    dropped = [137, 139, 140, 141, 142, 143, 145] + list(range(21000, 21031))
    db = db.drop(index=dropped)
    db.loc[1, "scp_codes"] = "{'IMI': 50.0, 'SR': 0.0}"  # a relabelled record
    db.to_csv(tmp_path / "ptbxl_database.csv")
    (tmp_path / "scp_statements.csv").write_bytes((ptbxl_sample_root / "scp_statements.csv").read_bytes())
    meta = load_metadata(tmp_path)
    assert meta.version == "1.0.3" and len(meta) == 21799
    assert 137 not in set(meta.ecg_ids)
    assert meta.labels[0].tolist() == [0, 0, 1, 0, 0]  # MI only


@pytest.mark.parametrize("rate,length", [(100, 1000), (500, 5000)])
def test_signals_in_mv_equal_wfdb(ptbxl_sample_root, rate, length):
    rel = f"records{rate}/00000/00003_{'lr' if rate == 100 else 'hr'}"
    x = read_record(ptbxl_sample_root, rel, rate)
    ref, fields = wfdb.rdsamp(str(ptbxl_sample_root / rel))
    assert x.shape == (12, length) and x.dtype == np.float32
    assert fields["units"] == ["mV"] * 12
    np.testing.assert_allclose(x, ref.T, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(read_record(ptbxl_sample_root, 3, rate), x)  # by ecg_id


def test_unsupported_sampling_rate(ptbxl_sample_root):
    with pytest.raises(PTBXLError, match="unsupported sampling rate 250"):
        read_record(ptbxl_sample_root, 1, 250)
