"""Harmonised shards + manifest: windows, rates, counts, parallel = serial, resume, stale shards."""
from __future__ import annotations

import os

import numpy as np
import pytest

from ecgfast import LEADS
from ecgfast.base.errors import DataError
from ecgfast.data.corpus import build_corpus, open_corpus
from ecgfast.data.corpus.harmonise import harmonise, resample
from ecgfast.data.sources.readers import SourceRecord


def test_harmonise_windows_pad_clip():
    fs = 257
    t = np.arange(int(26 * fs)) / fs
    sig = np.tile(np.sin(2 * np.pi * 1.3 * t), (12, 1)).astype(np.float32)
    sig[3, 5:60] = 40.0  # beyond int16 at 1000/mV
    rec = SourceRecord("x", "r1", sig[::-1].copy(), tuple(reversed([l.lower() for l in LEADS])), fs)
    mv, w, valid, start, clipped = harmonise(rec, 100, 1000)
    assert w.shape == (3, 12, 1000) and w.dtype == np.int16  # 10 s + 10 s + 6 s padded
    assert valid.tolist() == [1000, 1000, 600] and start.tolist() == [0, 1000, 2000]
    assert np.all(w[2, :, 600:] == 0)
    assert clipped >= 1
    ref = np.round(np.sin(2 * np.pi * 1.3 * np.arange(1000) / 100) * 1000)
    assert np.abs(w[0, 0, 50:950] - ref[50:950]).max() < 15  # resampled, not distorted
    rec2 = SourceRecord("x", "r2", sig[:, : int(3 * fs)], LEADS, fs)
    assert harmonise(rec2, 100, 1000)[1].shape[0] == 0  # 3 s < half a window: dropped


def test_resample_is_antialiased():
    t = np.arange(5000) / 500
    hi = np.sin(2 * np.pi * 80 * t)[None]  # above the 50 Hz Nyquist of 100 Hz
    assert np.abs(resample(hi, 500, 100)[:, 20:-20]).max() < 0.05


def test_build_cinc(layouts, tmp_path):
    m = build_corpus("cinc2021", layouts / "cinc2021", tmp_path / "c", sampling_rate=100, shard_records=5,
                     progress=False)
    c = open_corpus(tmp_path / "c" / "manifest.json")
    assert len(c) == m["totals"]["windows"] and c.sampling_rate == 100 and c.signal_length == 1000
    assert c.classes == ("CD", "HYP", "MI", "NORM", "STTC") and len(c.fingerprint_digest) == 64
    meta = c.metadata()
    ids, n = np.unique(meta["record_id"][meta["source"] == "cinc2021/WFDB_StPetersburg"], return_counts=True)
    assert n.tolist() == [6, 6]  # 60 s at 257 Hz -> six 10-s windows of one record id
    assert m["totals"]["records"] == 16
    x = c.signals(np.arange(len(c)))
    assert x.shape == (len(c), 12, 1000) and np.abs(x).max() < 10
    assert np.allclose(x[:, 2], x[:, 1] - x[:, 0], atol=0.05)  # lead order survived
    lab = np.concatenate([c.shard_labels(k) for k in range(len(c.shard_names))])
    assert lab.shape == (len(c), 5) and lab.any()


def test_parallel_equals_serial_and_resume(layouts, tmp_path):
    a = build_corpus("code15", layouts / "code15", tmp_path / "a", shard_records=4, workers=1, progress=False)
    b = build_corpus("code15", layouts / "code15", tmp_path / "b", shard_records=4, workers=2, progress=False)
    assert a["fingerprint_digest"] == b["fingerprint_digest"]
    assert len(a["shards"]) == 3
    again = build_corpus("code15", layouts / "code15", tmp_path / "a", shard_records=4, progress=False)
    assert again["built_now"] == 0 and again["fingerprint_digest"] == a["fingerprint_digest"]
    # a killed build: one shard's record gone -> only that shard is rebuilt
    (tmp_path / "a" / "shard-00001.json").unlink()
    assert build_corpus("code15", layouts / "code15", tmp_path / "a", shard_records=4,
                        progress=False)["built_now"] == 1
    # a changed source file -> its shard is stale: refused, or rebuilt
    part = layouts / "code15" / "exams_part2.hdf5"
    st = part.stat()
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="shard-00002: stale"):
        build_corpus("code15", layouts / "code15", tmp_path / "a", shard_records=4, on_stale="refuse",
                     progress=False)
    m = build_corpus("code15", layouts / "code15", tmp_path / "a", shard_records=4, progress=False)
    assert m["rebuilt_stale"] == ["shard-00002"] and m["built_now"] == 1
    # a corrupted shard is caught by verify
    f = tmp_path / "a" / "shard-00000.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match its manifest hash"):
        open_corpus(tmp_path / "a", verify=True)


def test_bad_records_refused_or_skipped(layouts, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(layouts / "cinc2021" / "WFDB_Ga", src / "WFDB_Ga")
    mat = src / "WFDB_Ga" / "E00002.mat"
    mat.write_bytes(mat.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"E00002.*truncated.*--skip-bad"):
        build_corpus("cinc2021", src, tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "manifest.json").exists()
    m = build_corpus("cinc2021", src, tmp_path / "o", skip_bad=True, progress=False)
    assert m["totals"]["bad"] == 1 and m["totals"]["records"] == 1 and "E00002" in m["skipped_messages"][0]


def test_ptbxl_source_skip_missing(ptbxl_sample_root, tmp_path):
    m = build_corpus("ptbxl", ptbxl_sample_root, tmp_path / "p", shard_records=30000, skip_missing=True,
                     progress=False)
    assert m["totals"]["records"] == 200 and m["totals"]["missing"] > 21000
    c = open_corpus(tmp_path / "p")
    meta = c.metadata()
    assert meta["record_id"][0] == "1" and set(meta["fold"]) <= set(range(1, 11))


def test_cli(layouts, tmp_path, capsys):
    from ecgfast.cli import main

    assert main(["corpus", "build", "--layout", "numpy", "--source", str(layouts / "numpy"), "--out",
                 str(tmp_path / "n"), "--sampling-rate", "100", "--quiet"]) == 0
    assert "20 windows from 20 records" in capsys.readouterr().out
    assert main(["corpus", "stream", "--corpus", f"{tmp_path / 'n' / 'manifest.json'}:1", "--batch-size", "4"]) == 0
    assert "per corpus: [20]" in capsys.readouterr().out
    assert main(["corpus", "build", "--layout", "mimic-iv-ecg", "--source", str(tmp_path), "--out",
                 str(tmp_path / "m")]) == 1


@pytest.mark.parametrize("cut", [1, 100, 24_000, "half"])
def test_a_truncated_shard_is_refused_by_name(arrays, tmp_path, cut):
    """A shard file cut short (by a byte, by less than its .npy header, by a window, by half) is refused
    when the corpus is opened, and a shard cut after the corpus was opened when it is first read:
    a DataError naming the shard, never numpy's mmap error or a short batch."""
    from ecgfast.data.corpus import StreamingLoader

    arrays(tmp_path / "src", 30, T=1000, seed=1)
    build_corpus("numpy", tmp_path / "src", tmp_path / "c", sampling_rate=100, progress=False)
    f = tmp_path / "c" / "shard-00000.npy"
    whole = f.read_bytes()
    cut = len(whole) // 2 if cut == "half" else cut
    opened = open_corpus(tmp_path / "c")  # opened while the file was whole
    f.write_bytes(whole[:-cut])
    with pytest.raises(DataError, match=r"shard file .*/c/shard-00000\.npy is \d+ bytes, its manifest says \d+ "
                                        r"\(truncated.*ecgfast corpus build"):
        open_corpus(tmp_path / "c")
    with pytest.raises(DataError, match=r"shard file .*shard-00000\.npy changed since it was verified"):
        list(StreamingLoader([(opened, 1.0)], 10, seed=0))
    f.write_bytes(whole)
    assert len(open_corpus(tmp_path / "c").signals(np.arange(30))) == 30
