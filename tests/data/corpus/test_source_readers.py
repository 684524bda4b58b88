"""Hostile input to the corpus readers: paths confined, memory bounded, one bad record costs one, flags checked.

Each test writes the hostile file itself (tiny synthetic records) and asserts the
refusal names the record and the file, or that the skip is counted exactly.
"""
from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data.corpus import build_corpus, open_corpus
from ecgfast.data.errors import UnsafePathError
from ecgfast.data.sources.readers import MissingSourceRecord, open_source
from ecgfast.data.sources.synthetic import write_cinc_record

ZERO = np.zeros((12, 1000))


def _cinc(folder, name="A1", n=1000, fs=500):
    rng = np.random.default_rng(0)
    return write_cinc_record(folder, name, rng.standard_normal((12, n)) * 0.2, fs, 1000, 50, "Male",
                             ["426783006"])


def _edit_header(rec, old, new):
    hea = rec.with_name(rec.name + ".hea")
    text = hea.read_text()
    assert old in text
    hea.write_text(text.replace(old, new))


# --- class 1: every path a reader opens stays inside its source ---------------------------------

@pytest.mark.parametrize("name", ["../../outside/S.mat", "/etc/passwd", "..", "sub/A1.mat", ""])
def test_cinc_header_signal_file_must_be_in_the_record_folder(tmp_path, name):
    rec = _cinc(tmp_path / "src" / "WFDB_X")
    _edit_header(rec, "A1.mat 16+24", f"{name or '.'} 16+24")
    with pytest.raises(UnsafePathError, match=r"record .*src/WFDB_X/A1: header .*A1\.hea names signal file"):
        open_source("cinc2021", tmp_path / "src").read("WFDB_X/A1")


def test_symlinks_followed_inside_refused_outside(tmp_path):
    src, outside = tmp_path / "src", tmp_path / "outside"
    secret = _cinc(outside, "S1")
    _cinc(src / "WFDB_X", "A1")
    # a .mat linking outside; a folder linking outside; a .mat linking to another file inside
    _cinc(src / "WFDB_X", "B1")
    (src / "WFDB_X" / "B1.mat").unlink()
    os.symlink(secret.with_suffix(".mat"), src / "WFDB_X" / "B1.mat")
    os.symlink(outside, src / "WFDB_link")
    shutil.copy(src / "WFDB_X" / "A1.hea", src / "WFDB_X" / "C1.hea")
    _edit_header(src / "WFDB_X" / "C1", "A1 12", "C1 12")
    s = open_source("cinc2021", src)
    with pytest.raises(UnsafePathError, match=r"B1\.mat resolves to .*outside/S1\.mat, outside the source folder"):
        s.read("WFDB_X/B1")
    with pytest.raises(UnsafePathError, match=r"WFDB_link/S1\.hea resolves to .*outside"):
        s.read("WFDB_link/S1")
    (c1,) = s.read("WFDB_X/C1")  # C1.hea names A1.mat: inside, read
    (a1,) = s.read("WFDB_X/A1")
    np.testing.assert_array_equal(c1.signal, a1.signal)
    os.symlink(src / "WFDB_X" / "A1.mat", src / "WFDB_X" / "D1.mat")  # a link that stays inside: followed
    shutil.copy(src / "WFDB_X" / "A1.hea", src / "WFDB_X" / "D1.hea")
    _edit_header(src / "WFDB_X" / "D1", "A1.mat", "D1.mat")
    assert s.read("WFDB_X/D1")[0].signal.shape == a1.signal.shape
    # building: an unsafe path stops the build even under --skip-bad (never skipped)
    with pytest.raises(UnsafePathError, match="B1"):
        build_corpus("cinc2021", src, tmp_path / "out", skip_bad=True, skip_missing=True, progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_mimic_record_list_paths_confined(layouts, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(layouts / "mimic-iv-ecg", m)
    df = pd.read_csv(m / "record_list.csv")
    outside = _cinc(tmp_path / "outside", "S1")
    df.loc[0, "path"] = "../outside/S1"
    df.to_csv(m / "record_list.csv", index=False)
    s = open_source("mimic-iv-ecg", m)
    with pytest.raises(UnsafePathError, match=r"study .*record_list\.csv row 1.*resolves to .*outside/S1\.hea"):
        s.read(0)
    assert outside.with_suffix(".hea").is_file()
    for bad in ["/etc/passwd", ""]:
        df.loc[1, "path"] = bad
        df.to_csv(m / "record_list.csv", index=False)
        with pytest.raises(DataError, match=r"record_list\.csv"):
            open_source("mimic-iv-ecg", m)


def test_code15_and_numpy_links_confined(layouts, tmp_path):
    c = tmp_path / "c"
    shutil.copytree(layouts / "code15", c)
    shutil.move(c / "exams_part1.hdf5", tmp_path / "p1.hdf5")
    os.symlink(tmp_path / "p1.hdf5", c / "exams_part1.hdf5")
    with pytest.raises(UnsafePathError, match=r"exams_part1\.hdf5 resolves to .*p1\.hdf5"):
        open_source("code15", c)
    n = tmp_path / "n"
    shutil.copytree(layouts / "numpy", n)
    shutil.move(n / "records.csv", tmp_path / "records.csv")
    os.symlink(tmp_path / "records.csv", n / "records.csv")
    with pytest.raises(UnsafePathError, match=r"records\.csv resolves to"):
        open_source("numpy", n)
    assert open_source("numpy", n, csv=tmp_path / "records.csv").n == 20  # a csv the user names: trusted


def test_code15_exams_in_no_part_are_missing_not_dropped(layouts, tmp_path):
    c = tmp_path / "c"
    shutil.copytree(layouts / "code15", c)
    (c / "exams_part2.hdf5").unlink()  # a part not downloaded: its 2 exams are listed, held by no file
    with pytest.raises(DataError, match=r"exams\.csv: exam_id \d+ \(trace_file exams_part2\.hdf5\) is in no "
                                        r"exams_part.*and 1 more.*--skip-missing"):
        build_corpus("code15", c, tmp_path / "o", progress=False)
    m = build_corpus("code15", c, tmp_path / "o", skip_missing=True, progress=False)
    assert m["totals"]["missing"] == 2 and m["totals"]["records"] == 10
    assert "exams_part2.hdf5" in m["skipped_messages"][0]


# --- class 2: bounded memory for any header; rates, gains, lengths ----------------------------

@pytest.mark.parametrize("old,new,match", [
    ("1000/mV", "0/mV", "ADC gain 0 is not a positive"),  # wfdb would read 0 as 200/mV
    ("1000/mV", "-5/mV", "ADC gain -5"),
    ("1000/mV", "1e999/mV", "ADC gain 1e999"),
    ("GAINLESS", "", "signal line 1 gives no ADC gain"),
    ("A1 12 500 1000", "A1 12 0 1000", "sampling rate 0 Hz is outside"),
    ("A1 12 500 1000", "A1 12 -500 1000", "sampling rate -500 Hz"),
    ("A1 12 500 1000", "A1 12 0.01 1000", "0.01 Hz is outside"),
    ("A1 12 500 1000", "A1 12 1e9 1000", "is outside"),
    ("A1 12 500 1000", "A1 12 nan 1000", "invalid sampling rate nan"),
    ("A1 12 500 1000", "A1 12 500 0", "0 samples per lead"),
    ("A1 12 500 1000", "A1 12 500 -7", "-7 samples per lead"),
    ("A1 12 500 1000", "A1 12 500 999999999999", "exceeds the cap of 2097152"),
    ("A1 12 500 1000 05-Feb-2020 11:39:16", "A1 12", "no sampling rate"),
    ("16 0 ", "16 zz ", "malformed gain, baseline or ADC zero"),
])
def test_header_numbers_refused_with_record_named(tmp_path, old, new, match):
    rec = _cinc(tmp_path / "W")
    if old == "GAINLESS":  # signal lines of a file name and format only: WFDB would assume 200/mV
        hea = rec.with_name("A1.hea")
        hea.write_text("\n".join(l if not l.startswith("A1.mat") else "A1.mat 16+24"
                                 for l in hea.read_text().splitlines()))
    else:
        _edit_header(rec, old, new)
    with pytest.raises(DataError, match=f"record {tmp_path}/W/A1.*{match}"):
        open_source("cinc2021", tmp_path).read("W/A1")


def test_huge_claimed_length_is_refused_before_reading(tmp_path):
    """A header claiming 3e8 samples over a sparse .mat of that size: refused by the cap, nothing read."""
    rec = _cinc(tmp_path / "W")
    n = 300_000_000
    with open(rec.with_suffix(".mat"), "r+b") as f:
        f.truncate(24 + 2 * 12 * n)  # sparse: no disk, but a reader that trusts it would allocate 7 GB
    _edit_header(rec, "A1 12 500 1000", f"A1 12 500 {n}")
    with pytest.raises(DataError, match=r"A1: 300000000 samples per lead exceeds the cap"):
        open_source("cinc2021", tmp_path).read("W/A1")
    s = open_source("cinc2021", tmp_path, max_record_samples=500)  # the cap is an option
    _edit_header(rec, f"A1 12 500 {n}", "A1 12 500 1000")
    with pytest.raises(DataError, match="1000 samples per lead exceeds the cap of 500"):
        s.read("W/A1")
    (rec.with_name("A1.hea")).write_text("#" * (2 << 20))
    with pytest.raises(DataError, match=r"A1\.hea holds \d+ bytes"):
        s.read("W/A1")


_TOKENS = ["0", "-1", "1e999", "nan", "inf", "500", "1000", "12", "-32768", "x", "/", "+", "(", "1e-300",
           "999999999999999999999", "16", "16+24", "A1.mat", "../A1.mat", "1000/mV", "0/mV", "uV", ""]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.lists(st.sampled_from(_TOKENS), min_size=0, max_size=5),
       line=st.lists(st.sampled_from(_TOKENS), min_size=0, max_size=6), which=st.integers(0, 11))
def test_fuzzed_headers_give_a_record_or_a_named_error(tmp_path, record, line, which):
    folder = tmp_path / "fz"
    if not (folder / "W" / "A1.hea").exists():
        _cinc(folder / "W")
    hea = folder / "W" / "A1.hea"
    good = hea.read_text() if not (folder / "good").exists() else (folder / "good").read_text()
    (folder / "good").write_text(good)
    lines = good.splitlines()
    lines[0] = " ".join(["A1", *record])
    sig = lines[1 + which].split()
    lines[1 + which] = " ".join(line + sig[len(line):])
    hea.write_text("\n".join(lines) + "\n")
    try:
        (r,) = open_source("cinc2021", folder).read("W/A1")
    except DataError as exc:
        assert "A1" in str(exc)
    else:
        assert r.signal.shape[0] == 12 and np.isfinite(r.signal).all() and 10 <= r.sampling_rate <= 20000


def test_npz_rows_streamed_equal_np_load(tmp_path):
    x = np.random.default_rng(1).standard_normal((5, 12, 300)).astype(np.float32)
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "a.npz", signals=x, sampling_rate=np.float64(100))
        s = open_source("numpy", tmp_path / "a.npz")
        s.block = 2
        recs = [r for item in s.items() for r in s.read(item)]
        np.testing.assert_array_equal(np.stack([r.signal for r in recs]), x)
    np.savez(tmp_path / "f.npz", signals=np.asfortranarray(x))
    with pytest.raises(DataError, match=r"f\.npz: array 'signals' is Fortran-ordered"):
        open_source("numpy", tmp_path / "f.npz", sampling_rate=100)
    with pytest.raises(DataError, match=r"a\.npz: 300 samples per lead exceeds the cap of 100"):
        open_source("numpy", tmp_path / "a.npz", max_record_samples=100)
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match=r"z\.npz: not a readable \.npz"):
        open_source("numpy", tmp_path / "z.npz", sampling_rate=100)


# --- class 3: one bad record costs one record ---------------------------------------------------

def test_nan_row_in_numpy_costs_one_record(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 12, 1000)).astype(np.float32)
    x[3, 2, 5] = np.nan
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(DataError, match=rf"{tmp_path}/a\.npy record 3 \(id 3\): holds 1 NaN.*--skip-bad"):
        build_corpus("numpy", tmp_path / "a.npy", tmp_path / "o", source_options={"sampling_rate": 100},
                     progress=False)
    m = build_corpus("numpy", tmp_path / "a.npy", tmp_path / "o", source_options={"sampling_rate": 100},
                     skip_bad=True, progress=False)
    assert m["totals"]["bad"] == 1 and m["totals"]["records"] == 9 and m["totals"]["windows"] == 9
    assert "3" not in set(open_corpus(tmp_path / "o").metadata()["record_id"])


def test_nan_row_in_code15_costs_one_record(layouts, tmp_path):
    c = tmp_path / "c"
    shutil.copytree(layouts / "code15", c)
    with h5py.File(c / "exams_part0.hdf5", "r+") as f:
        f["tracings"][2, 2000, 3] = np.nan
        bad_exam = int(f["exam_id"][2])
    m = build_corpus("code15", c, tmp_path / "o", skip_bad=True, progress=False)
    assert m["totals"]["bad"] == 1 and m["totals"]["records"] == 11
    assert f"exams_part0.hdf5 row 2 (exam_id {bad_exam})" in m["skipped_messages"][0]
    assert str(c) in m["skipped_messages"][0]


def test_integer_arrays_need_an_adc_gain(tmp_path):
    x = np.random.default_rng(0).integers(-2000, 2000, (3, 12, 1000)).astype(np.int16)
    np.save(tmp_path / "i.npy", x)
    with pytest.raises(DataError, match=r"i\.npy: array of integer dtype int16 holds ADC counts.*--adc-gain"):
        open_source("numpy", tmp_path / "i.npy", sampling_rate=100)
    s = open_source("numpy", tmp_path / "i.npy", sampling_rate=100, adc_gain=1000)
    np.testing.assert_allclose(s.read(s.items()[0])[1].signal, x[1] / 1000, rtol=1e-6)
    for bad in (0, -1, float("nan")):
        with pytest.raises(DataError, match="adc_gain"):
            open_source("numpy", tmp_path / "i.npy", sampling_rate=100, adc_gain=bad)


def test_npz_objects_and_array_metadata_are_clear_errors(tmp_path):
    x = np.zeros((2, 12, 100), np.float32)
    np.savez(tmp_path / "o.npz", signals=np.array([None, None], dtype=object))
    with pytest.raises(DataError, match=r"o\.npz: array 'signals' holds Python objects"):
        open_source("numpy", tmp_path / "o.npz", sampling_rate=100)
    np.savez(tmp_path / "m.npz", signals=x, sampling_rate=np.array([100, 200]))
    with pytest.raises(DataError, match=r"m\.npz: key 'sampling_rate' must be one number.*shape \(2,\)"):
        open_source("numpy", tmp_path / "m.npz")
    np.savez(tmp_path / "s.npz", signals=x, sampling_rate=np.array("100"))
    with pytest.raises(DataError, match=r"s\.npz: key 'sampling_rate' must be one number"):
        open_source("numpy", tmp_path / "s.npz")
    np.savez(tmp_path / "k.npz", other=x)
    with pytest.raises(DataError, match=r"k\.npz: no array 'signals'"):
        open_source("numpy", tmp_path / "k.npz", sampling_rate=100)
    d = tmp_path / "d"
    d.mkdir()
    np.save(d / "signals.npy", x)
    (d / "sampling_rate.txt").write_text("abc")
    with pytest.raises(DataError, match=r"sampling_rate\.txt: expected one number"):
        open_source("numpy", d)
    (d / "sampling_rate.txt").write_text("100")
    pd.DataFrame({"id": ["a", "b"], "NORM": ["yes", "no"]}).to_csv(d / "records.csv", index=False)
    with pytest.raises(DataError, match=r"records\.csv: label column NORM holds values other than 0/1"):
        open_source("numpy", d)
    pd.DataFrame({"id": ["a", "b"], "patient_id": ["p1", 2]}).to_csv(d / "records.csv", index=False)
    with pytest.raises(DataError, match=r"records\.csv: patient_id holds non-integer"):
        open_source("numpy", d)


# --- class 9: every flag and argument range-checked ---------------------------------------------

@pytest.mark.parametrize("flag", [["--sampling-rate", "nan"], ["--sampling-rate", "0"], ["--seconds", "-1"],
                                  ["--min-fraction", "0"], ["--min-fraction", "1.5"], ["--shard-records", "0"],
                                  ["--workers", "0"], ["--exclude-folds", "0"], ["--exclude-folds", "11"],
                                  ["--source-rate", "inf"], ["--adc-gain", "0"], ["--max-record-samples", "0"]])
def test_build_flags_out_of_range_are_usage_errors(layouts, tmp_path, capsys, flag):
    from ecgfast.cli.corpus import main

    with pytest.raises(SystemExit) as e:
        main(["build", "--layout", "numpy", "--source", str(layouts / "numpy"), "--out", str(tmp_path / "o"),
              *flag])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag[0]}" in err and "Traceback" not in err


def test_out_naming_a_file_and_stream_flags(layouts, tmp_path, capsys):
    from ecgfast.cli.corpus import main

    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit):
        main(["build", "--layout", "numpy", "--source", str(layouts / "numpy"), "--out", str(tmp_path / "f")])
    assert "is an existing file" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is an existing file"):
        build_corpus("numpy", layouts / "numpy", tmp_path / "f", progress=False)
    for flag in (["--memory-budget-mb", "nan"], ["--batch-size", "0"], ["--epoch-samples", "-1"],
                 ["--seed", "-1"], ["--corpus", "x.json:nan"], ["--corpus", "x.json:-1"]):
        with pytest.raises(SystemExit):
            main(["stream", "--corpus", "m.json", *flag])
        assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("kw,match", [({"sampling_rate": float("nan")}, "sampling_rate"),
                                      ({"sampling_rate": 1e9}, "sampling_rate"),
                                      ({"seconds": 0}, "seconds"), ({"min_fraction": 0}, "min_fraction"),
                                      ({"min_fraction": float("inf")}, "min_fraction"),
                                      ({"shard_records": 0}, "shard_records"), ({"workers": 0}, "workers"),
                                      ({"workers": 1.5}, "workers"), ({"exclude_folds": (0,)}, "exclude_folds"),
                                      ({"on_stale": "x"}, "on_stale"), ({"gain": -1}, "gain")])
def test_build_corpus_arguments_checked(layouts, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        build_corpus("numpy", layouts / "numpy", tmp_path / "o", progress=False, **kw)
    assert not (tmp_path / "o").exists()


def test_out_equal_to_source_and_unknown_layout(layouts, tmp_path):
    with pytest.raises(ConfigError, match="is the --source folder"):
        build_corpus("numpy", layouts / "numpy", layouts / "numpy", progress=False)
    with pytest.raises(ConfigError, match="unknown layout"):
        build_corpus("nope", layouts / "numpy", tmp_path / "o", progress=False)


def test_empty_corpus_says_so(tmp_path, capsys):
    from ecgfast.cli.corpus import main

    x = np.full((2, 12, 1000), np.nan, np.float32)
    np.save(tmp_path / "a.npy", x)
    rc = main(["build", "--layout", "numpy", "--source", str(tmp_path / "a.npy"), "--source-rate", "100",
               "--out", str(tmp_path / "o"), "--skip-bad", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "ecgfast corpus: error: corpus" in err and "is empty" in err and "2 bad" in err
    assert main(["info", str(tmp_path / "o")]) == 0
    assert "empty: holds no windows" in capsys.readouterr().out
    assert main(["stream", "--corpus", str(tmp_path / "o" / "manifest.json")]) == 1
    assert "holds no windows" in capsys.readouterr().err


# --- class 10: every reader error names the record and the path --------------------------------

def test_reader_errors_name_record_and_path(layouts, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(layouts / "mimic-iv-ecg", m)
    s = open_source("mimic-iv-ecg", m)
    hea = m / (s.paths[1] + ".hea")
    lines = hea.read_text().splitlines()
    f = lines[1].split()
    f[2] = "0/mV"  # the first signal's gain: uncalibrated
    hea.write_text("\n".join([lines[0], " ".join(f), *lines[2:]]) + "\n")
    with pytest.raises(DataError) as e:
        s.read(1)
    assert str(m / s.paths[1]) in str(e.value) and f"study {s.studies[1]}" in str(e.value)
    assert "ADC gain 0" in str(e.value)
    (m / (s.paths[2] + ".dat")).unlink()
    with pytest.raises(MissingSourceRecord) as e:
        s.read(2)
    assert str(m / (s.paths[2] + ".dat")) in str(e.value)


def test_arrays_api_and_manifest_checked(tmp_path):
    import json

    from ecgfast.data.corpus.build import build_corpus_from_arrays

    x = np.zeros((2, 12, 100), np.float32)
    x[1, 3, 4] = np.nan
    with pytest.raises(DataError, match=r"chunk 0: record\(s\) at row\(s\) \[1\] hold NaN"):
        build_corpus_from_arrays(tmp_path / "a", [(x, ["a", "b"], None)], sampling_rate=100, signal_length=100)
    with pytest.raises(DataError, match="record_ids of shape"):
        build_corpus_from_arrays(tmp_path / "a", [(x[:1], ["a", "b"], None)], sampling_rate=100, signal_length=100)
    with pytest.raises(ConfigError, match="sampling_rate"):
        build_corpus_from_arrays(tmp_path / "a", [], sampling_rate=float("nan"), signal_length=100)
    build_corpus_from_arrays(tmp_path / "b", [(x[:1], ["a"], None)], sampling_rate=100, signal_length=100)
    mf = tmp_path / "b" / "manifest.json"
    good = json.loads(mf.read_text())
    for edit in (lambda m: m.pop("settings"), lambda m: m["settings"].update(sampling_rate="x"),
                 lambda m: m["settings"].update(gain=0), lambda m: m["shards"][0].update(name="../../etc/x")):
        m = json.loads(json.dumps(good))
        edit(m)
        mf.write_text(json.dumps(m))
        with pytest.raises(DataError, match=r"corpus manifest .*manifest\.json"):
            open_corpus(mf)
