"""Each reader on its real layout, and each kind of bad input refused with the record named."""
from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest
import wfdb

from ecgfast import LEADS
from ecgfast.base.errors import DataError
from ecgfast.data.sources.readers import MissingSourceRecord, open_source


def test_cinc_layout_is_real(layouts):
    root = layouts / "cinc2021"
    assert {p.name for p in root.iterdir()} >= {"WFDB_CPSC2018", "WFDB_PTBXL", "WFDB_Ga", "WFDB_StPetersburg"}
    hea = (root / "WFDB_CPSC2018" / "A0001.hea").read_text().splitlines()
    assert hea[0].startswith("A0001 12 500 ")
    assert hea[1].startswith("A0001.mat 16+24 1000/mV 16 0 ") and hea[1].endswith(" I")
    assert any(l.startswith("#Dx: ") for l in hea) and any(l.startswith("#Age: ") for l in hea)
    mat = (root / "WFDB_CPSC2018" / "A0001.mat").read_bytes()
    mopt, rows, cols, imagf, namelen = struct.unpack("<5i", mat[:20])
    assert (mopt, rows, imagf, namelen, mat[20:24]) == (30, 12, 0, 4, b"val\x00")
    assert len(mat) == 24 + 2 * 12 * cols
    rec = wfdb.rdrecord(str(root / "WFDB_PTBXL" / "HR00001"))  # wfdb reads the .mat as format 16 + offset
    assert rec.fs == 500 and rec.p_signal.shape == (5000, 12)
    assert (root / "WFDB_PTBXL" / "HR00001.mat").is_file()


def test_cinc_reader(layouts):
    src = open_source("cinc2021", layouts / "cinc2021")
    items = src.items()
    assert len(items) == 16
    rates = set()
    for item in items:
        (r,) = src.read(item)
        rates.add(r.sampling_rate)
        assert r.signal.shape[0] == 12 and r.signal.dtype == np.float32 and r.leads == LEADS
        assert r.source.startswith("cinc2021/WFDB_")
    assert rates == {257.0, 500.0, 1000.0}
    (r,) = src.read("WFDB_StPetersburg/I0001")
    assert r.signal.shape[1] == 60 * 257
    raw = wfdb.rdrecord(str(layouts / "cinc2021/WFDB_StPetersburg/I0001"))
    np.testing.assert_allclose(r.signal, raw.p_signal.T, atol=1e-6)


def test_mimic_reader_matches_leads_by_name(layouts):
    src = open_source("mimic-iv-ecg", layouts / "mimic-iv-ecg")
    (r,) = src.read(0)
    raw = wfdb.rdrecord(str(layouts / "mimic-iv-ecg" / src.paths[0]))
    assert raw.sig_name[4] == "aVF"  # the machine's order
    np.testing.assert_allclose(r.signal[LEADS.index("AVF")], raw.p_signal[:, 4], atol=1e-6)
    np.testing.assert_allclose(r.signal[LEADS.index("AVL")], raw.p_signal[:, 5], atol=1e-6)
    assert r.sampling_rate == 500 and r.signal.shape == (12, 5000) and r.patient_id == src.subjects[0]
    assert np.allclose(r.signal[2], r.signal[1] - r.signal[0], atol=0.02)  # III = II - I


def test_code15_reader(layouts):
    src = open_source("code15", layouts / "code15")
    recs = [r for item in src.items() for r in src.read(item)]
    assert len(recs) == 12  # the closing all-zero exam_id 0 rows are not records
    assert {r.signal.shape[1] for r in recs} <= {2800, 4000} and all(r.sampling_rate == 400 for r in recs)
    assert all(r.patient_id >= 500000 for r in recs)


def test_numpy_reader(layouts):
    src = open_source("numpy", layouts / "numpy")
    recs = src.read(src.items()[0])
    assert len(recs) == 20 and recs[0].record_id == "rec000000" and recs[0].sampling_rate == 250


def test_truncated_mat_is_refused(layouts, tmp_path):
    import shutil

    shutil.copytree(layouts / "cinc2021" / "WFDB_Ga", tmp_path / "WFDB_Ga")
    mat = tmp_path / "WFDB_Ga" / "E00001.mat"
    mat.write_bytes(mat.read_bytes()[:-100])
    src = open_source("cinc2021", tmp_path)
    with pytest.raises(DataError, match=r"E00001.*truncated"):
        src.read("WFDB_Ga/E00001")
    (tmp_path / "WFDB_Ga" / "E00002.mat").unlink()
    with pytest.raises(MissingSourceRecord, match="E00002.mat not found"):
        src.read("WFDB_Ga/E00002")


def test_missing_lead_is_refused(tmp_path):
    from ecgfast.data.sources.synthetic import write_cinc_record

    write_cinc_record(tmp_path / "WFDB_X", "X1", np.zeros((12, 1000)), 500, 1000, 50, "Male", ["426783006"],
                      leads=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V5"))
    with pytest.raises(DataError, match=r"X1.*repeat a lead"):
        open_source("cinc2021", tmp_path).read("WFDB_X/X1")


def test_bad_arrays_are_refused(tmp_path):
    np.save(tmp_path / "signals.npy", np.zeros((3, 8, 100), np.float32))
    with pytest.raises(DataError, match=r"signals.npy.*shape \(3, 8, 100\)"):
        open_source("numpy", tmp_path, sampling_rate=100)
    np.save(tmp_path / "signals.npy", np.zeros((3, 12, 100), np.complex64))
    with pytest.raises(DataError, match="dtype complex64"):
        open_source("numpy", tmp_path, sampling_rate=100)
    x = np.zeros((3, 12, 100), np.float32)
    x[1, 4, 7] = np.nan
    np.save(tmp_path / "signals.npy", x)
    with pytest.raises(DataError, match="sampling rate unknown"):
        open_source("numpy", tmp_path)
    src = open_source("numpy", tmp_path, sampling_rate=100)
    with pytest.raises(DataError, match=r"record 1 .*NaN"):
        src.read(src.items()[0])


def test_code15_unknown_exam_and_bad_shape(layouts, tmp_path):
    import shutil

    shutil.copytree(layouts / "code15", tmp_path / "c")
    with h5py.File(tmp_path / "c" / "exams_part0.hdf5", "r+") as f:
        f["exam_id"][1] = 999
    src = open_source("code15", tmp_path / "c")
    with pytest.raises(MissingSourceRecord, match=r"exams_part0.hdf5 row 1 \(exam_id 999\).*not in exams.csv"):
        src.read(src.items()[0])
    with h5py.File(tmp_path / "c" / "exams_part1.hdf5", "w") as f:
        f["tracings"] = np.zeros((2, 4000, 12), np.float32)
        f["exam_id"] = np.array([1, 2])
    with pytest.raises(DataError, match=r"exams_part1.hdf5: tracings of shape \(2, 4000, 12\)"):
        open_source("code15", tmp_path / "c")


def test_snomed_mapping():
    from ecgfast.data.sources.snomed import superclass_labels

    assert superclass_labels(["426783006"]).tolist() == [0, 0, 0, 1, 0]  # sinus rhythm alone: NORM
    assert superclass_labels(["426783006", "59118001"]).tolist() == [1, 0, 0, 0, 0]  # + RBBB: CD only
    assert superclass_labels(["164873001", "164865005", "429622005"]).tolist() == [0, 1, 1, 0, 1]
    assert superclass_labels(["164889003"]).tolist() == [0, 0, 0, 0, 0]  # AF: a rhythm, no superclass


def test_cinc_header_fields(layouts):
    src = open_source("cinc2021", layouts / "cinc2021")
    (r,) = src.read("WFDB_Ga/E00001")
    hea = (layouts / "cinc2021/WFDB_Ga/E00001.hea").read_text()
    age = int(hea.split("#Age: ")[1].split()[0])
    assert r.age == age and r.sex in ("M", "F")
    from ecgfast.data.sources.snomed import superclass_labels

    codes = hea.split("#Dx: ")[1].split()[0].split(",")
    assert r.labels.tolist() == superclass_labels(codes).tolist() and r.has_label == bool(r.labels.any())


def test_mimic_and_numpy_index_problems(layouts, tmp_path):
    import shutil

    import pandas as pd

    shutil.copytree(layouts / "mimic-iv-ecg", tmp_path / "m")
    src = open_source("mimic-iv-ecg", tmp_path / "m")
    (tmp_path / "m" / (src.paths[2] + ".dat")).unlink()
    with pytest.raises(MissingSourceRecord, match=r"study .*\.dat not found"):
        src.read(2)
    shutil.copytree(layouts / "numpy", tmp_path / "n")
    df = pd.read_csv(tmp_path / "n" / "records.csv")
    df.iloc[:-1].to_csv(tmp_path / "n" / "records.csv", index=False)
    with pytest.raises(DataError, match=r"records.csv: 19 rows for 20 records"):
        open_source("numpy", tmp_path / "n")


def test_synth_command_writes_each_layout(tmp_path):
    from ecgfast.cli import main

    assert main(["synth", "--layout", "code15", "--out", str(tmp_path / "c"), "--records", "3"]) == 0
    assert (tmp_path / "c" / "exams.csv").is_file() and (tmp_path / "c" / "exams_part0.hdf5").is_file()


def test_layouts_have_one_home():
    """Readers, synthetic writers and the layout names agree: one list, ``ecgfast.data.sources.LAYOUTS``."""
    from ecgfast.data.sources import LAYOUTS, synthetic
    from ecgfast.data.sources.readers import SOURCES

    assert tuple(SOURCES) == LAYOUTS
    assert all(SOURCES[name].layout == name for name in LAYOUTS)
    with pytest.raises(ValueError, match="choose from " + ", ".join(LAYOUTS)):
        synthetic.write_layout("no-such-layout", "/nonexistent", 1)
