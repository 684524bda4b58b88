"""Property-based tests: whatever the csvs, headers and signal files hold, the readers either
return valid data or raise the library's own ``DataError`` -- never another exception."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgfast import CLASSES
from ecgfast.base.errors import DataError
from ecgfast.data.metadata import load_metadata
from ecgfast.data.records import Confiner, read_record_digital, record_path

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STATEMENTS = Path(__file__).resolve().parents[2] / "ecgfast" / "data" / "resources" / "scp_statements.csv"
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ---------------------------------------------------------------- csv reader

def _integers(lo, hi, odd):
    return st.one_of(st.integers(lo, hi).map(str), st.sampled_from(odd), text,
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


_ROW = st.fixed_dictionaries({
    "ecg_id": _integers(-2, 12, ["abc", "1.5", "", "2.0", "1e3", "nan", "inf", " 7", "-0", "99999999999999999999"]),
    "patient_id": _integers(-2, 99, ["x1", "12.25", "", "15709.0", "None", "1e400"]),
    "scp_codes": st.one_of(st.sampled_from([
        "{'NORM': 100.0}", "{'IMI': 50.0, 'SR': 0.0}", "{}", "NORM", "{'NORM': 'x'}", "{1: 2}", "{'a': {'b': 1}}",
        "[1]", "{'NORM': float('nan')}", "{'NORM': True}", "((((", "{'NORM': 1e400}", "{[1]: 2}", "{'NORM': None}",
        "{'CLBBB': 100, 'LVH': 50.0}", "[" * 200]), text),
    "strat_fold": _integers(-1, 12, ["3.5", "abc", "", "10.0", "True", "0x3"]),
    "filename_lr": st.one_of(st.sampled_from(["records100/00000/00001_lr", "", " ", "../x", "/etc/passwd",
                                              "records100/../../x", "a\\b", "."]), text),
})


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _check_metadata(root: Path) -> None:
    try:
        meta = load_metadata(root)
    except DataError:
        return
    n = len(meta)
    assert n >= 1 and meta.ecg_ids.dtype == np.int64 and meta.patient_ids.dtype == np.int64
    assert np.all(np.diff(meta.ecg_ids) > 0) and meta.ecg_ids.min() >= 0
    assert meta.folds.shape == (n,) and set(np.unique(meta.folds)) <= set(range(1, 11))
    assert meta.labels.shape == (n, len(CLASSES)) and set(np.unique(meta.labels)) <= {0.0, 1.0}
    try:
        confine = Confiner(root)
        for i, f in zip(meta.ecg_ids, meta.filenames(100)):
            p = Path(record_path(root, f, f"record ecg_id={i}", confine))
            assert Path(confine(str(p) + ".hea", "x")).is_relative_to(root.resolve())
    except DataError:
        pass


@FUZZ
@given(rows=st.lists(_ROW, min_size=0, max_size=6))
def test_generated_database_csv_loads_or_raises_data_error(work, rows):
    root = work / "gen"
    root.mkdir(exist_ok=True)
    shutil.copyfile(STATEMENTS, root / "scp_statements.csv")
    header = ["ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"]
    _write_csv(root / "ptbxl_database.csv", header,
               [[r["ecg_id"], r["patient_id"], r["scp_codes"], r["strat_fold"], r["filename_lr"], "x"] for r in rows])
    _check_metadata(root)


_EDIT = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.floats(0, 1),
                  st.sampled_from(list(",\"'\n\r{}[]:.0123456789-eNa \\\x00\xe9") + ["nan", "inf", "\ufeff"]))


def _mutate(data: str, edits) -> str:
    for op, where, s in edits:
        i = int(where * len(data))
        if op == "insert":
            data = data[:i] + s + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + len(s):]
        else:
            data = data[:i] + s + data[i + 1:]
    return data


@FUZZ
@given(edits=st.lists(_EDIT, min_size=1, max_size=8), which=st.sampled_from(["database", "statements"]))
def test_mutated_csv_text_loads_or_raises_data_error(work, ptbxl_sample_root, edits, which):
    root = work / "mut"
    root.mkdir(exist_ok=True)
    with open(ptbxl_sample_root / "ptbxl_database.csv", encoding="utf-8") as f:
        db = "".join(f.readline() for _ in range(9))  # header + 8 records
    st_text = (ptbxl_sample_root / "scp_statements.csv").read_text(encoding="utf-8")
    if which == "database":
        db = _mutate(db, edits)
    else:
        st_text = _mutate(st_text, edits)
    (root / "ptbxl_database.csv").write_text(db, encoding="utf-8")
    (root / "scp_statements.csv").write_text(st_text, encoding="utf-8")
    _check_metadata(root)


# ---------------------------------------------------------------- header and signal readers

@pytest.fixture(scope="module")
def real_record(ptbxl_sample_root):
    base = ptbxl_sample_root / "records100/00000/00001_lr"
    return base.with_suffix(".hea").read_text(), base.with_suffix(".dat").read_bytes()


def _read(root: Path):
    try:
        adc, gain, baseline = read_record_digital(root / "00001_lr", 100, root=root)
    except DataError:
        return None
    assert adc.shape == (12, 1000) and adc.dtype == np.int16
    assert np.all(np.isfinite(gain)) and np.all(gain > 0) and np.all(np.isfinite(baseline))
    return adc


_TOKEN = st.one_of(st.sampled_from(["", "0", "-1", "1e9", "99999999999", "nan", "16", "212", "80", "24",
                                    "1000.0(0)/mV", "0/mV", "-5(0)/uV", "100/3", "00001_lr.dat", "../x.dat",
                                    "x.dat", "I", "AVR", "12", "500", "1000", "0:0:0", "+", "#"]), text)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 9), st.sampled_from(["set", "drop", "dup"]),
                                _TOKEN), min_size=1, max_size=4))
def test_mutated_header_reads_or_raises_data_error(work, real_record, edits):
    root = work / "hea"
    root.mkdir(exist_ok=True)
    lines = real_record[0].splitlines()
    for line_no, token_no, op, token in edits:
        if not lines:
            break
        line_no %= len(lines)
        tokens = lines[line_no].split(" ")
        if op == "set":
            tokens[token_no % len(tokens)] = token
            lines[line_no] = " ".join(tokens)
        elif op == "drop":
            del lines[line_no]
        else:
            lines.insert(line_no, lines[line_no])
    (root / "00001_lr.hea").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "00001_lr.dat").write_bytes(real_record[1])
    _read(root)


@FUZZ
@given(cut=st.one_of(st.none(), st.integers(0, 24001)),
       flips=st.lists(st.tuples(st.integers(0, 23999), st.integers(1, 255)), max_size=6),
       extra=st.binary(max_size=3))
def test_mutated_signal_file_reads_or_raises_data_error(work, real_record, cut, flips, extra):
    root = work / "dat"
    root.mkdir(exist_ok=True)
    data = bytearray(real_record[1])
    for pos, mask in flips:
        data[pos] ^= mask
    data = bytes(data[:cut] if cut is not None else data) + extra
    (root / "00001_lr.hea").write_text(real_record[0])
    (root / "00001_lr.dat").write_bytes(data)
    adc = _read(root)
    if len(flips) == 1 and cut is None and not extra:
        assert adc is None  # one changed byte always fails the header checksum (or is a NaN sample)
