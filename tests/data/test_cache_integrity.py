"""Nothing stale, nothing corrupted, nothing unsafe, nothing silently wrong (the data layer's trust tests)."""
from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgfast import LEADS
from ecgfast.base.errors import DataError
from ecgfast.cli.cache import main as cache_main
from ecgfast.data import cache as cache_mod
from ecgfast.data.cache import CacheError, build_cache, ensure_cache, open_cache, verify_cache
from ecgfast.data.errors import BadRecordError, UnsafePathError
from ecgfast.data.loader import ECGBatchLoader
from ecgfast.data.metadata import load_metadata
from ecgfast.data.records import read_record


def _rec(root, ecg_id):
    return root / f"records100/00000/{ecg_id:05d}_lr"


def _rewrite(root, ecg_id, change):
    """Rewrite a record with wfdb (valid header, checksums and size) after ``change(p_signal)``."""
    path = _rec(root, ecg_id)
    rec = wfdb.rdrecord(str(path))
    sig = change(rec.p_signal.copy())
    wfdb.wrsamp(path.name, 100, ["mV"] * 12, list(LEADS), p_signal=sig, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(path.parent))


def _build(root, tmp_path, name="c.h5", **kw):
    return build_cache(root, tmp_path / name, 100, progress=False, **kw)


def _no_temps(folder):
    return not [p for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


def _set_csv(root, ecg_id, column, value):
    db = pd.read_csv(root / "ptbxl_database.csv", index_col=0, dtype=str, keep_default_na=False)
    db.loc[str(ecg_id), column] = value
    db.to_csv(root / "ptbxl_database.csv")


# ---------------------------------------------------------------- 1. integrity: fingerprint, staleness, verify

def test_fingerprint_digest_names_the_dataset_not_its_location(mini_root, tmp_path):
    a = _build(mini_root, tmp_path, "a.h5")
    moved = shutil.copytree(mini_root, tmp_path / "elsewhere", copy_function=shutil.copyfile)  # new mtimes
    b = _build(moved, tmp_path, "b.h5")
    with open_cache(a) as ca, open_cache(b) as cb:
        assert len(ca.fingerprint_digest) == 64
        assert ca.fingerprint_digest == cb.fingerprint_digest
        assert ca.fingerprint["format_version"] == 3 and ca.fingerprint["n_records"] == 20
    _rewrite(moved, 4, lambda x: x * 1.1)
    with open_cache(_build(moved, tmp_path, "c.h5")) as cc, open_cache(a) as ca:
        assert cc.fingerprint_digest != ca.fingerprint_digest
        assert cc.fingerprint["records_sha256"] == ca.fingerprint["records_sha256"]  # same ids, other content


def test_ensure_cache_rebuilds_when_a_record_is_edited(mini_root, tmp_path, capsys):
    path = tmp_path / "c.h5"
    ensure_cache(mini_root, path, 100, progress=False).close()
    _rewrite(mini_root, 6, lambda x: -x)
    c = ensure_cache(mini_root, path, 100, progress=False)
    err = capsys.readouterr().err
    assert "is stale (1 record(s) changed since it was built (first: records100/00000/00006_lr.hea" in err
    assert "rebuilding" in err
    row = int(np.flatnonzero(c.ecg_ids == 6)[0])
    np.testing.assert_array_equal(c.signals([row])[0].numpy(), read_record(mini_root, 6, 100))
    c.close()


def test_touched_but_identical_records_keep_the_cache(mini_root, tmp_path, capsys):
    path = tmp_path / "c.h5"
    ensure_cache(mini_root, path, 100, progress=False).close()
    before = path.stat().st_mtime_ns
    for ext in (".hea", ".dat"):
        os.utime(_rec(mini_root, 3).with_suffix(ext), ns=(1, 1))  # new mtime, same bytes: re-hashed, still fresh
    ensure_cache(mini_root, path, 100, progress=False).close()
    assert "rebuilding" not in capsys.readouterr().err and path.stat().st_mtime_ns == before


def test_verify_rehashes_what_the_fast_check_cannot_see(mini_root, tmp_path, capsys):
    path = _build(mini_root, tmp_path)
    assert cache_main(["--verify", "--data-root", str(mini_root), "--out", str(path)]) == 0
    assert "verified" in capsys.readouterr().out
    dat = _rec(mini_root, 9).with_suffix(".dat")
    st = dat.stat()
    data = bytearray(dat.read_bytes())
    data[100] ^= 0x01
    dat.write_bytes(bytes(data))
    os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the content hash sees it
    with pytest.raises(CacheError, match=r"1 of 20 source record\(s\) differ .*00009_lr.hea: content changed"):
        verify_cache(path, mini_root)
    assert cache_main(["--verify", "--data-root", str(mini_root), "--out", str(path)]) == 1
    assert "00009_lr" in capsys.readouterr().err
    assert verify_cache(path)["signals"] == "ok"  # without a data root: the file's own checksums only


def test_ensure_cache_refuses_what_it_cannot_rebuild(mini_root, tmp_path):
    path = tmp_path / "c.h5"
    ensure_cache(mini_root, path, 100, progress=False).close()
    dat = _rec(mini_root, 2).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:500])
    with pytest.raises(BadRecordError, match="00002_lr.dat is truncated"):
        ensure_cache(mini_root, path, 100, progress=False)


@pytest.mark.parametrize("old", [1, 2])
def test_old_format_cache_is_rebuilt_or_refused(mini_root, tmp_path, capsys, old):
    path = _build(mini_root, tmp_path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["format_version"] = old
    command = f"ecgfast cache --data-root <PTB-XL folder> --sampling-rate 100 --out {path}"
    with pytest.raises(CacheError, match=rf"format version {old}, this ecgfast reads 3; rebuild it with "
                                         rf"`{re.escape(command)}`"):
        open_cache(path)
    with pytest.raises(CacheError, match=f"format version {old}"):
        ensure_cache(None, path, 100)
    c = ensure_cache(mini_root, path, 100, progress=False)
    assert len(c) == 20 and "rebuilding it" in capsys.readouterr().err
    c.close()


# ---------------------------------------------------------------- 2. checksums in the HDF5 file

def _flip_in_chunk(path, dataset, chunk, offset=40):
    with h5py.File(path, "r") as h5:
        info = h5[dataset].id.get_chunk_info(chunk)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + offset)
        b = f.read(1)
        f.seek(info.byte_offset + offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_flipped_signal_bytes_fail_the_read_naming_the_record(mini_root, tmp_path):
    path = _build(mini_root, tmp_path)
    _flip_in_chunk(path, "signals", 3)
    with open_cache(path) as c:
        assert c.signals([0, 1, 4]).shape == (3, 12, 1000)  # the other rows still read
        with pytest.raises(CacheError, match=r"row 3 \(ecg_id=4\).*corrupted; rebuild it with `ecgfast cache`"):
            c.signals([5, 3])
        with pytest.raises(DataError, match="ecg_id=4"):
            ECGBatchLoader(c, np.arange(len(c)), batch_size=4)  # the in-memory loader reads it all
    with pytest.raises(CacheError, match="ecg_id=4"):
        verify_cache(path)


@pytest.mark.parametrize("damage", ["drop_fingerprint", "bad_json", "edited_fingerprint", "drop_labels",
                                    "flip_ecg_id", "short_folds", "drop_source"])
def test_corrupted_metadata_fails_open_cleanly(mini_root, tmp_path, damage):
    path = _build(mini_root, tmp_path)
    if damage == "flip_ecg_id":
        _flip_in_chunk(path, "ecg_id", 0, offset=3)
    else:
        with h5py.File(path, "r+") as h5:
            if damage == "drop_fingerprint":
                del h5.attrs["fingerprint"]
            elif damage == "bad_json":
                h5.attrs["classes"] = "[not json"
            elif damage == "edited_fingerprint":
                h5.attrs["fingerprint"] = h5.attrs["fingerprint"].replace('"skipped":0', '"skipped":1')
            elif damage == "drop_labels":
                del h5["labels"]
            elif damage == "short_folds":
                del h5["strat_fold"]
                h5["strat_fold"] = np.ones(5, np.int8)
            elif damage == "drop_source":
                del h5["source"]
    with pytest.raises(CacheError, match=rf"cache {path}: .*rebuild it with `ecgfast cache`"):
        open_cache(path)
    c = ensure_cache(mini_root, path, 100, progress=False)  # with a data root: rebuilt
    assert len(c) == 20
    c.close()


# ---------------------------------------------------------------- 3. NaN samples

def test_nan_samples_are_refused_or_skipped_never_cached(mini_root, tmp_path, capsys):
    def holes(x):
        x[100:107, 4] = np.nan
        return x
    _rewrite(mini_root, 7, holes)
    with pytest.raises(BadRecordError, match=r"00007_lr: 7 NaN sample\(s\) .*--skip-bad"):
        _build(mini_root, tmp_path)
    assert _no_temps(tmp_path)
    path = _build(mini_root, tmp_path, skip_bad=True)
    assert "skipped 1 bad record(s) (first: record" in capsys.readouterr().err
    with open_cache(path) as c:
        assert len(c) == 19 and 7 not in c.ecg_ids
        assert c.fingerprint["skipped_bad"] == 1 and c.fingerprint["skipped"] == 1
        assert c.raw(np.arange(19)).min() > -32768
        assert "7 NaN sample(s)" in c.source.reason[~c.source.cached][0]
    ensure_cache(mini_root, path, 100, progress=False, skip_bad=True).close()  # fresh: used as is
    assert "rebuilding" not in capsys.readouterr().err
    with pytest.raises(BadRecordError, match="NaN"):  # without --skip-bad it is refused, never used silently
        ensure_cache(mini_root, path, 100, progress=False)
    _rewrite(mini_root, 7, lambda x: np.nan_to_num(x))  # repaired: the skipped record's change is noticed
    c = ensure_cache(mini_root, path, 100, progress=False, skip_bad=True)
    assert len(c) == 20 and "rebuilding" in capsys.readouterr().err
    c.close()
    assert cache_main(["--data-root", str(mini_root), "--out", str(tmp_path / "cli.h5"), "--skip-bad"]) == 0


# ---------------------------------------------------------------- 4. paths confined to the data root

def _outside_record(mini_root, tmp_path):
    """A valid record outside the data root: what a hostile csv would point at."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for ext in (".hea", ".dat"):
        shutil.copy(_rec(mini_root, 1).with_suffix(ext), outside / f"00001_lr{ext}")
    return outside / "00001_lr"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "empty", "blank"])
def test_csv_paths_outside_the_root_or_empty_are_refused(mini_root, tmp_path, kind):
    outside = _outside_record(mini_root, tmp_path)
    value = {"dotdot": "../elsewhere/00001_lr", "absolute": str(outside), "empty": "", "blank": "  "}.get(kind)
    if kind == "symlink":
        (mini_root / "records100/00000/link").symlink_to(outside.parent, target_is_directory=True)
        value = "records100/00000/link/00001_lr"
    _set_csv(mini_root, 5, "filename_lr", value)
    match = "empty" if kind in ("empty", "blank") else r"ecg_id=5.*outside the data root"
    with pytest.raises(UnsafePathError, match=match):
        _build(mini_root, tmp_path, skip_missing=True, skip_bad=True)  # never skippable
    with pytest.raises(UnsafePathError, match=match):
        read_record(mini_root, 5, 100)


def test_header_dat_file_outside_the_root_is_refused(mini_root, tmp_path):
    outside = _outside_record(mini_root, tmp_path)
    dat = _rec(mini_root, 8).with_suffix(".dat")
    dat.unlink()
    dat.symlink_to(outside.with_suffix(".dat"))  # the header's .dat name is a link leading out
    with pytest.raises(UnsafePathError, match=r"00008_lr: path .*00008_lr.dat resolves to .* outside the data root"):
        _build(mini_root, tmp_path, skip_bad=True)
    hea = _rec(mini_root, 9).with_suffix(".hea")  # a header naming ../x.dat: wfdb's syntax refuses it
    hea.write_text(hea.read_text().replace("00009_lr.dat", "../../../elsewhere/00001_lr.dat"))
    with pytest.raises(DataError, match="00009_lr"):
        read_record(mini_root, 9, 100)


# ---------------------------------------------------------------- 5. csv validation

@pytest.mark.parametrize("column,value,match", [
    ("strat_fold", "abc", r"record ecg_id=4: strat_fold 'abc' is not an integer"),
    ("strat_fold", "3.5", r"record ecg_id=4: strat_fold '3.5' is not an integer"),
    ("strat_fold", "11", r"record ecg_id=4: strat_fold '11(\.0)?' is not in 1..10"),
    ("strat_fold", "", r"record ecg_id=4: strat_fold is empty"),
    ("patient_id", "12.25", r"record ecg_id=4: patient_id '12.25' is not an integer"),
    ("patient_id", "inf", r"record ecg_id=4: patient_id 'inf' is not an integer"),
    ("scp_codes", "{'NORM': 'high'}", r"record ecg_id=4: scp_codes entry 'NORM': 'high' is not"),
    ("scp_codes", "{1: 100.0}", r"record ecg_id=4: scp_codes entry 1"),
    ("scp_codes", "[('NORM', 100.0)]", r"record ecg_id=4: scp_codes .* is not a dict literal"),
    ("scp_codes", "{[1]: 2}", r"record ecg_id=4: scp_codes .* is not a dict literal"),
])
def test_bad_csv_cells_name_csv_record_and_column(mini_root, column, value, match):
    _set_csv(mini_root, 4, column, value)
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: " + match):
        load_metadata(mini_root)


@pytest.mark.parametrize("ecg_id,match", [("abc", r"line 2: ecg_id 'abc' is not an integer"),
                                          ("1.5", r"line 2: ecg_id '1.5' is not an integer"),
                                          ("2", r"ecg_id 2 appears more than once")])
def test_bad_ecg_ids(mini_root, ecg_id, match):
    db = (mini_root / "ptbxl_database.csv").read_text().splitlines(keepends=True)
    db[1] = ecg_id + db[1][db[1].index(","):]
    (mini_root / "ptbxl_database.csv").write_text("".join(db))
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: " + match):
        load_metadata(mini_root)


def test_integral_floats_are_accepted(mini_root):
    _set_csv(mini_root, 4, "strat_fold", "3.0")  # the real csv writes patient_id as 15709.0
    assert load_metadata(mini_root).folds[3] == 3


@pytest.mark.parametrize("damage,match", [
    ("drop_class", r"scp_statements\.csv: missing column\(s\) diagnostic_class"),
    ("drop_both", r"scp_statements\.csv: missing column\(s\) diagnostic, diagnostic_class"),
    ("diagnostic_word", r"scp_statements\.csv: SCP code 'NORM': diagnostic 'yes' is not a number"),
    ("empty_file", r"scp_statements\.csv: not a readable csv"),
])
def test_bad_statements_csv(mini_root, damage, match):
    p = mini_root / "scp_statements.csv"
    st = pd.read_csv(p, index_col=0, dtype=str)
    if damage == "drop_class":
        st = st.drop(columns=["diagnostic_class"])
    elif damage == "drop_both":
        st = st.drop(columns=["diagnostic", "diagnostic_class"])
    elif damage == "diagnostic_word":
        st.loc["NORM", "diagnostic"] = "yes"
    st.to_csv(p)
    if damage == "empty_file":
        p.write_text("")
    with pytest.raises(DataError, match=match):
        load_metadata(mini_root)


# ---------------------------------------------------------------- 6. file-system failures

def test_out_under_a_file_is_a_data_error(mini_root, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"cannot create the folder of .*afile/c.h5"):
        build_cache(mini_root, tmp_path / "afile" / "c.h5", 100, progress=False)
    assert cache_main(["--data-root", str(mini_root), "--out", str(tmp_path / "afile" / "c.h5")]) == 1


def test_read_only_folder_is_a_data_error(mini_root, tmp_path, monkeypatch):
    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(cache_mod.h5py, "File", read_only)
    with pytest.raises(DataError, match=r"cannot write .*c.h5: the file system is read-only \(choose a writable"):
        _build(mini_root, tmp_path)
    assert _no_temps(tmp_path) and not (tmp_path / "c.h5").exists()


def test_full_disk_before_the_build(mini_root, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError, match=r"c.h5: the disk is full \(free some space.*needs about \d+ MB, 0 MB are free"):
        _build(mini_root, tmp_path)
    assert _no_temps(tmp_path) and not (tmp_path / "c.h5").exists()


def test_full_disk_during_the_build_keeps_the_old_cache(mini_root, tmp_path, monkeypatch):
    path = _build(mini_root, tmp_path)
    old = path.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(cache_mod, "_utf8", full)  # fails after the signals are written
    with pytest.raises(DataError, match=r"cannot write .*c.h5: the disk is full"):
        _build(mini_root, tmp_path)
    assert _no_temps(tmp_path) and path.read_bytes() == old


# ---------------------------------------------------------------- 7. housekeeping

def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temps_of_killed_builds_are_removed_live_ones_kept(mini_root, tmp_path):
    dead = tmp_path / f".c.h5.{_dead_pid()}.0badf00d.tmp"
    live = tmp_path / f".c.h5.{os.getpid()}.cafe0123.tmp"
    for p in (dead, live):
        p.write_bytes(b"half a cache")
    path = _build(mini_root, tmp_path)
    assert not dead.exists() and live.exists()
    dead.write_bytes(b"another killed build")
    open_cache(path).close()  # opening cleans up too
    assert not dead.exists() and live.exists()


def test_info_reports_skips_and_refuses_a_corrupted_cache(mini_root, tmp_path, capsys):
    from ecgfast.cli.info import main as info_main

    path = _build(mini_root, tmp_path)
    assert info_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "0 skipped at build (0 missing, 0 bad); format 3, fingerprint" in out
    with h5py.File(path, "r+") as h5:
        del h5.attrs["leads"]
    assert info_main([str(path)]) == 1
    assert "error: cache" in capsys.readouterr().err


def test_verify_notices_records_that_appeared(mini_root, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for ext in (".hea", ".dat"):
        shutil.move(_rec(mini_root, 12).with_suffix(ext), hidden / f"x{ext}")
    path = _build(mini_root, tmp_path, skip_missing=True)
    assert verify_cache(path, mini_root)["source_records"] == 19
    for ext in (".hea", ".dat"):
        shutil.move(hidden / f"x{ext}", _rec(mini_root, 12).with_suffix(ext))
    with pytest.raises(CacheError, match=r"records present in .* changed since the build \(1 more, 0 fewer\)"):
        verify_cache(path, mini_root)
