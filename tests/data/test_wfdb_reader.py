"""The one WFDB reader (``ecgfast.data.records``): corpus building, the PTB-XL cache and inference
read a record through it, so they accept and refuse the same headers, units and lead names."""
from __future__ import annotations

import numpy as np
import pytest
import wfdb

from ecgfast import LEADS
from ecgfast.base.errors import DataError
from ecgfast.data.errors import BadRecordError, MissingRecordError, MissingSourceRecord
from ecgfast.data.records import read_record_digital, read_wfdb
from ecgfast.data.sources.readers import open_source
from ecgfast.deploy.inputs import read_wfdb as read_for_inference

NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _signal(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal((n, 12)) * 0.02, axis=0)  # (n, 12) mV, smooth


def _write(folder, name, *, fmt="16", units="mV", names=NAMES, fs=500, n=1000, gain=1000.0):
    """A WFDB record written by wfdb itself, in ``units`` (the values are the same voltage)."""
    folder.mkdir(parents=True, exist_ok=True)
    scale = {"mV": 1.0, "uV": 1000.0, "V": 1e-3}[units]
    wfdb.wrsamp(name, fs=fs, units=[units] * 12, sig_name=list(names), p_signal=_signal(n) * scale,
                fmt=[fmt] * 12, adc_gain=[gain / scale] * 12, baseline=[0] * 12, write_dir=str(folder))
    return folder / name


def test_the_one_error_type_for_a_missing_record():
    assert MissingSourceRecord is MissingRecordError


@pytest.mark.parametrize("fmt", ["16", "212", "80"])
def test_formats_match_wfdb(tmp_path, fmt):
    """Format 16 is read by np.fromfile, the others through wfdb: both equal wfdb.rdrecord's mV."""
    rec = _write(tmp_path, "r", fmt=fmt, gain={"16": 1000.0, "212": 200.0, "80": 20.0}[fmt])  # fits the format
    ref = wfdb.rdrecord(str(rec)).p_signal.T
    x, fs, header = read_wfdb(rec, leads=None)
    assert fs == 500 and x.dtype == np.float32 and x.shape == (12, 1000)
    np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(read_for_inference(rec.with_suffix(".hea"))[0], x)


def test_units_are_converted_the_same_everywhere(tmp_path):
    """A record in uV or V reads as the mV record, in the corpus (before: refused) and for inference."""
    mv = _write(tmp_path / "WFDB_A", "A1")
    ref = read_wfdb(mv)[0]
    for units in ("uV", "V"):
        rec = _write(tmp_path / "WFDB_A", f"A1{units}", units=units)
        # the same ADC counts up to one count (1 uV) where float rounding of the scaled value flips
        np.testing.assert_allclose(read_wfdb(rec)[0], ref, rtol=1e-5, atol=1.01e-3)
        np.testing.assert_allclose(read_for_inference(rec)[0], ref, rtol=1e-5, atol=1.01e-3)
    bad = _write(tmp_path / "other", "B1")
    hea = bad.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("/mV", "/mmHg", 1))
    for read in (read_wfdb, read_for_inference):
        with pytest.raises(BadRecordError, match=r"record .*B1: units \['mmHg'\], expected V, mV, uV"):
            read(bad)


def test_lead_aliases_and_order(tmp_path):
    """Leads are matched through ecgfast.data.leads: aliases, any case, any order."""
    perm = [2, 0, 1, 11, 10, 9, 8, 7, 6, 5, 4, 3]
    alias = {"I": "DI", "II": "d2", "III": "DIII"}
    names = [alias.get(NAMES[i], NAMES[i].lower()) for i in perm]
    folder = tmp_path / "x"
    folder.mkdir()
    wfdb.wrsamp("p", fs=500, units=["mV"] * 12, sig_name=names, p_signal=_signal()[:, perm], fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    ref = _write(tmp_path / "y", "s")
    np.testing.assert_array_equal(read_wfdb(folder / "p")[0], read_wfdb(ref)[0])
    x, _, names_read = read_for_inference(folder / "p")
    assert names_read == names and np.array_equal(x, read_wfdb(folder / "p", leads=None)[0])


@pytest.mark.parametrize("old,new,match", [
    ("1000/mV", "0/mV", "ADC gain 0 is not a positive"),           # WFDB would assume 200/mV
    ("r 12 500 1000", "r 12", "header gives no sampling rate"),     # WFDB would assume 250 Hz
    ("r 12 500 1000", "r 12 5 1000", "sampling rate 5 Hz is outside"),
    ("r.dat", "../r.dat", "names signal file '../r.dat', not a file in the record's folder"),
])
def test_the_same_header_is_refused_by_the_corpus_and_inference(tmp_path, old, new, match):
    rec = _write(tmp_path / "W", "r")
    hea = rec.with_suffix(".hea")
    text = hea.read_text()
    text = text.replace(old, new, 1) if old != "1000/mV" else text.replace("1000.0(0)/mV", "0/mV", 1)
    hea.write_text(text)
    with pytest.raises(DataError, match=f"record .*r: .*{match}"):
        read_for_inference(rec)
    with pytest.raises(DataError, match=f"record .*r: .*{match}"):
        open_source("cinc2021", tmp_path).read("W/r")


def test_missing_signal_file_is_a_missing_record_everywhere(tmp_path):
    rec = _write(tmp_path / "W", "r", n=5000)  # 10 s at 500 Hz: a PTB-XL record too
    rec.with_suffix(".dat").unlink()
    for read in (read_wfdb, read_for_inference):
        with pytest.raises(MissingRecordError, match=r"record .*r: signal file .*r\.dat not found"):
            read(rec)
    with pytest.raises(MissingRecordError, match=r"r\.dat not found"):
        read_record_digital(rec, 500)


def test_ptbxl_promises_on_top(tmp_path):
    """PTB-XL's own rules stay: a uV record reads for inference but is refused by the cache reader."""
    rec = _write(tmp_path, "r_hr", units="uV", fs=500, n=5000)
    assert read_wfdb(rec)[0].shape == (12, 5000)
    with pytest.raises(BadRecordError, match=r"units \['uV'\], expected mV"):
        read_record_digital(rec, 500)
    ok = _write(tmp_path, "ok_hr", fs=500, n=5000)
    adc, gain, baseline = read_record_digital(ok, 500)
    mv = (adc.astype(np.float64) - baseline[:, None]) / gain[:, None]
    np.testing.assert_allclose(mv, read_wfdb(ok)[0], atol=1e-6)
    assert [n.upper() for n in wfdb.rdheader(str(ok)).sig_name] == list(LEADS)


def test_header_without_a_length_reads_the_file_as_wfdb_does(tmp_path):
    rec = _write(tmp_path, "r", fs=100)  # 10 s at 100 Hz, as PTB-XL's
    ref = read_wfdb(rec)[0]
    hea = rec.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("r 12 100 1000", "r 12 100", 1))
    assert wfdb.rdrecord(str(rec)).sig_len == 1000  # wfdb takes it from the file size too
    np.testing.assert_array_equal(read_wfdb(rec)[0], ref)
    with pytest.raises(BadRecordError, match="header gives no length, expected 1000"):
        read_record_digital(rec, 100)  # PTB-XL's headers state it
