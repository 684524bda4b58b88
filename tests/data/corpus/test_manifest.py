"""Shards and manifests are verified before a gradient sees them (issue 19, class 4).

A manifest's shard names stay in the corpus folder, its counts equal the shard headers, every
signal, label and metadata file is sized and hashed in it; opening a corpus hashes every file
(an unchanged one is remembered, not rehashed) and an edited shard is refused by the streaming
loader, pretraining and embedding before any window is read.
"""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ecgfast.data.corpus.store as store
from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data.corpus import StreamingLoader, build_corpus_from_arrays, open_corpus
from ecgfast.data.corpus.build import FORMAT_VERSION, SUFFIXES, upgrade_corpus

T = 100


def _build(folder, sizes=(7, 5), seed=0):
    rng = np.random.default_rng(seed)
    chunks, start = [], 0
    for n in sizes:
        x = (rng.standard_normal((n, 12, T)) * 0.3).astype(np.float32)
        lab = (rng.random((n, 5)) < 0.3).astype(np.uint8)
        chunks.append((x, np.arange(start, start + n), lab))
        start += n
    build_corpus_from_arrays(folder, chunks, sampling_rate=100, signal_length=T, name=f"trust{seed}")
    return folder / "manifest.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("trust") / "c").parent


@pytest.fixture
def corpus(built, tmp_path):
    """A fresh copy of the built corpus as built (tests edit it): without the sidecar other tests' opens wrote."""
    shutil.copytree(built, tmp_path / "c")
    (tmp_path / "c" / ".manifest.json.verified").unlink(missing_ok=True)
    return tmp_path / "c"


def _edit_manifest(folder, edit):
    mf = folder / "manifest.json"
    m = json.loads(mf.read_text())
    edit(m)
    mf.write_text(json.dumps(m))
    return mf


def _flip(f, at=-1):
    data = bytearray(f.read_bytes())
    data[at] ^= 0x01
    f.write_bytes(bytes(data))


class _Counter:
    """Counts the shard files hashed (the hash function wrapped, not timed)."""

    def __init__(self, monkeypatch):
        self.files = []
        real = store._sha256_file

        def counting(path, *a, **k):
            self.files.append(os.path.basename(path))
            return real(path, *a, **k)

        monkeypatch.setattr(store, "_sha256_file", counting)


# --- the manifest: names, counts, coverage -------------------------------------------------------

@pytest.mark.parametrize("name", ["../c2/shard-00000", "/tmp/shard-00000", "sub/shard-00000", "..", "", ".",
                                  "shard\x00", 7, None])
def test_shard_names_must_be_file_names_in_the_folder(corpus, name):
    mf = _edit_manifest(corpus, lambda m: m["shards"][0].update(name=name))
    with pytest.raises(DataError, match=rf"corpus manifest {mf}: shard name .* is not a file name in its folder"):
        open_corpus(corpus)


def test_a_shard_file_linking_out_of_the_folder_is_refused(corpus, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    f = corpus / "shard-00001.labels.npy"
    shutil.move(f, outside / f.name)
    os.symlink(outside / f.name, f)
    with pytest.raises(DataError, match=rf"shard file {f} resolves to {outside / f.name}, outside the corpus folder"):
        open_corpus(corpus)


@pytest.mark.parametrize("count", [-1, 1.5, "7", True, None, 2**70])
def test_window_counts_must_be_integers_at_least_zero(corpus, count):
    _edit_manifest(corpus, lambda m: m["shards"][0].update(windows=count))
    with pytest.raises(DataError, match=re.escape(f"shard shard-00000 has window count {count!r}, not an integer "
                                                  "in [0, 2**48)")):
        open_corpus(corpus)


@pytest.mark.parametrize("delta", [-1, 1])
def test_window_counts_must_equal_the_shard_headers(corpus, delta):
    def edit(m):
        m["shards"][1]["windows"] += delta
        m["totals"]["windows"] += delta  # consistent totals: the header check itself must catch it
    _edit_manifest(corpus, edit)
    with pytest.raises(DataError, match=rf"shard file {corpus}/shard-00001\.npy holds int16 \(5, 12, {T}\), its "
                                        rf"manifest says int16 \({5 + delta}, 12, {T}\)"):
        open_corpus(corpus, verify=False)
    _edit_manifest(corpus, lambda m: m["totals"].update(windows=m["totals"]["windows"] - delta))
    with pytest.raises(DataError, match=r"totals\.windows 12 is not the \d+ windows of its shards"):
        open_corpus(corpus)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_shard_file_must_be_covered_by_a_hash(corpus, suffix):
    _edit_manifest(corpus, lambda m: m["shards"][0]["files"].pop(suffix))
    with pytest.raises(DataError, match=r"shard shard-00000 does not list the sizes and hashes of its "
                                        r"shard-00000\.npy, shard-00000\.labels\.npy, shard-00000\.meta\.npz"):
        open_corpus(corpus)
    _edit_manifest(corpus, lambda m: m["shards"][0]["files"].update({suffix: {"bytes": 10, "sha256": "x" * 64}}))
    with pytest.raises(DataError, match=rf"shard file shard-00000{suffix.replace('.', '[.]')} has no valid size"):
        open_corpus(corpus)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_flipped_byte_in_any_shard_file_is_refused_by_name(corpus, suffix):
    f = corpus / f"shard-00001{suffix}"
    _flip(f, at=-3 if suffix != ".meta.npz" else len(f.read_bytes()) // 2)
    assert len(open_corpus(corpus, verify=False)) == 12  # the cheap checks cannot see it: same size, same header
    with pytest.raises(DataError, match=rf"shard file {f} does not match its manifest hash .*corrupted or "
                                        r"rewritten .*ecgfast corpus build"):
        open_corpus(corpus)


# --- refused before training, streaming or embedding starts --------------------------------------

def _count_reads(monkeypatch):
    reads = []
    for name in ("read_into", "raw", "shard_meta"):
        real = getattr(store.Corpus, name)

        def counted(self, *a, _real=real, _name=name, **k):
            reads.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(store.Corpus, name, counted)
    return reads


def test_the_streaming_loader_verifies_before_the_first_batch(corpus, monkeypatch):
    lazy = open_corpus(corpus, verify=False)  # opened unverified, then edited
    good = StreamingLoader([(open_corpus(corpus), 1.0)], 4, seed=0)
    _flip(corpus / "shard-00000.npy")
    reads = _count_reads(monkeypatch)
    with pytest.raises(DataError, match=r"shard-00000\.npy does not match its manifest hash"):
        StreamingLoader([(lazy, 1.0)], 4, seed=0)
    with pytest.raises(DataError, match=r"shard-00000\.npy does not match its manifest hash"):
        StreamingLoader([(str(corpus / "manifest.json"), 1.0)], 4, seed=0)
    # a loader built before the edit: the shard differs from the one verified when it is first mapped
    with pytest.raises(DataError, match=r"shard-00000\.npy changed since it was verified"):
        next(iter(good))
    assert set(reads) == {"read_into"}  # the buffer's first fill stopped at the edited shard: no batch drawn


def test_pretraining_and_embedding_refuse_an_edited_shard_before_any_batch(corpus, tmp_path, monkeypatch, capsys):
    from ecgfast.cli import main as cli
    from ecgfast.train_ssl_simclr import main as simclr_main

    enc = tmp_path / "enc.pt"
    args = ["--corpus", str(corpus / "manifest.json"), "--epochs", "1", "--batch-size", "4", "--signal-length",
            str(T), "--no-progress", "--precision", "fp32"]
    assert simclr_main([*args, "--out", str(enc)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    _flip(corpus / "shard-00001.labels.npy")
    reads = _count_reads(monkeypatch)
    again = tmp_path / "again.pt"
    assert simclr_main([*args, "--out", str(again)]) == 1
    err = capsys.readouterr().err
    assert f"shard file {corpus}/shard-00001.labels.npy does not match its manifest hash" in err
    assert not again.exists() and not again.with_suffix(".jsonl").exists()
    out = tmp_path / "e.h5"
    assert cli(["embed", "--checkpoint", str(enc), "--input", str(corpus / "manifest.json"), "--out", str(out),
                "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecgfast embed: error: ") and "shard-00001.labels.npy does not match" in err
    assert not out.exists() and reads == []


def test_the_refusal_s_advice_works_rebuilding_replaces_only_the_edited_shard(layouts, tmp_path):
    from ecgfast.data.corpus import build_corpus

    kw = dict(shard_records=4, progress=False)
    first = build_corpus("code15", layouts / "code15", tmp_path / "c", **kw)
    assert len(first["shards"]) == 3
    _flip(tmp_path / "c" / "shard-00001.meta.npz", at=200)
    with pytest.raises(DataError, match=r"shard-00001\.meta\.npz does not match its manifest hash .*corpus build"):
        open_corpus(tmp_path / "c")
    with pytest.raises(DataError, match=r"shard-00001: stale \(shard-00001\.meta\.npz does not match its recorded"):
        build_corpus("code15", layouts / "code15", tmp_path / "c", on_stale="refuse", **kw)
    again = build_corpus("code15", layouts / "code15", tmp_path / "c", **kw)
    assert again["rebuilt_stale"] == ["shard-00001"] and again["built_now"] == 1
    assert again["fingerprint_digest"] == first["fingerprint_digest"]
    assert len(open_corpus(tmp_path / "c")) == first["totals"]["windows"]


# --- remembered verification ---------------------------------------------------------------------

def test_an_unchanged_corpus_is_not_rehashed_and_any_change_is(corpus, monkeypatch):
    hashed = _Counter(monkeypatch)
    all_files = sorted(f"shard-0000{k}{s}" for k in range(2) for s in SUFFIXES)
    c = open_corpus(corpus)
    assert sorted(hashed.files) == all_files and c.verification["hashed"] == 6
    assert c.verification["remembered_saved"] and (corpus / ".manifest.json.verified").is_file()
    hashed.files.clear()
    c = open_corpus(corpus)
    assert hashed.files == [] and c.verification == {**c.verification, "hashed": 0, "remembered": 6}
    # a touched file (same bytes, new mtime) is rehashed, and passes; the others are not
    f = corpus / "shard-00000.meta.npz"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    open_corpus(corpus)
    assert hashed.files == ["shard-00000.meta.npz"]
    # an edit that restores size and mtime still changes ctime: rehashed, refused
    f = corpus / "shard-00001.npy"
    st = f.stat()
    _flip(f, at=-5)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed.files.clear()
    with pytest.raises(DataError, match=r"shard-00001\.npy does not match its manifest hash"):
        open_corpus(corpus)
    assert hashed.files == ["shard-00001.npy"]
    _flip(f, at=-5)  # back as built: verifies again
    open_corpus(corpus)
    hashed.files.clear()
    assert open_corpus(corpus, verify="full").verification["hashed"] == 6 and len(hashed.files) == 6


def test_remembered_entries_never_pass_another_hash_and_a_bad_sidecar_is_ignored(corpus, monkeypatch):
    good = (corpus / "manifest.json").read_text()
    open_corpus(corpus)
    hashed = _Counter(monkeypatch)
    side = corpus / ".manifest.json.verified"
    # a manifest expecting another hash for a file remembered unchanged: rehashed (and refused)
    _edit_manifest(corpus, lambda m: m["shards"][0]["files"][".meta.npz"].update(sha256="0" * 64))
    with pytest.raises(DataError, match=r"shard-00000\.meta\.npz does not match its manifest hash"):
        open_corpus(corpus)
    assert hashed.files == ["shard-00000.meta.npz"]
    (corpus / "manifest.json").write_text(good)
    for junk in ("not json", json.dumps({"format": "other", "files": {}}), json.dumps([1, 2]),
                 json.dumps({"format": "ecgfast-corpus-verified", "files": {"shard-00000.npy": [1, 2]}})):
        side.write_text(junk)
        hashed.files.clear()
        assert open_corpus(corpus).verification["hashed"] == 6 and len(hashed.files) == 6


def test_a_read_only_folder_is_verified_every_time_but_not_remembered(corpus, monkeypatch):
    def refuse(path, *a, **k):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(store, "atomic_write", refuse)
    hashed = _Counter(monkeypatch)
    for _ in range(2):
        c = open_corpus(corpus)
        assert c.verification["hashed"] == 6 and c.verification["remembered_saved"] is False
    assert len(hashed.files) == 12 and not (corpus / ".manifest.json.verified").exists()
    _flip(corpus / "shard-00000.npy")
    with pytest.raises(DataError, match="does not match its manifest hash"):
        open_corpus(corpus)


# --- format versions ------------------------------------------------------------------------------

def _as_version_1(folder):
    def downgrade(m):
        m["format_version"] = 1
        for sh in m["shards"]:
            sh.pop("files")
    return _edit_manifest(folder, downgrade)


def test_a_version_1_manifest_is_refused_with_the_command_that_upgrades_it(corpus, capsys):
    from ecgfast.cli.corpus import main

    before = open_corpus(corpus).fingerprint_digest
    mf = _as_version_1(corpus)
    with pytest.raises(DataError, match=rf"{mf}: corpus format version 1, .*`ecgfast corpus upgrade {mf}`"):
        open_corpus(corpus)
    assert main(["stream", "--corpus", str(mf), "--batch-size", "4"]) == 1
    assert f"ecgfast corpus upgrade {mf}" in capsys.readouterr().err
    assert main(["upgrade", str(mf)]) == 0
    assert "upgraded to format version 2" in capsys.readouterr().out
    c = open_corpus(corpus)
    assert c.manifest["format_version"] == FORMAT_VERSION == 2 and c.fingerprint_digest == before
    assert main(["upgrade", str(mf)]) == 0 and "already format version 2" in capsys.readouterr().out
    # a version-1 corpus whose signals no longer match its hashes is not upgraded
    _as_version_1(corpus)
    _flip(corpus / "shard-00001.npy")
    with pytest.raises(DataError, match=r"shard-00001\.npy does not match its manifest hash .*not upgraded"):
        upgrade_corpus(mf)
    assert json.loads(mf.read_text())["format_version"] == 1


def test_other_versions_and_non_manifests_are_refused(corpus):
    mf = _edit_manifest(corpus, lambda m: m.update(format_version=3))
    with pytest.raises(DataError, match=rf"{mf}: format version 3, this ecgfast reads 2; rebuild"):
        open_corpus(corpus)
    mf.write_text("[1, 2]")
    with pytest.raises(DataError, match="not an ecgfast corpus manifest"):
        open_corpus(corpus)
    mf.write_bytes(b"\xff\xfe{")
    with pytest.raises(DataError, match="not JSON"):
        open_corpus(corpus)


# --- an empty corpus says so ----------------------------------------------------------------------

def test_an_empty_corpus_says_it_is_empty(tmp_path, capsys):
    from ecgfast.train_ssl_simclr import main as simclr_main

    build_corpus_from_arrays(tmp_path / "e", [], sampling_rate=100, signal_length=T)
    c = open_corpus(tmp_path / "e")
    assert len(c) == 0 and c.verification["files"] == 0 and c.metadata() == {}
    with pytest.raises(ConfigError, match=r"corpus .*/e/manifest\.json holds no windows"):
        StreamingLoader([(c, 1.0)], 4, seed=0)
    assert simclr_main(["--corpus", str(tmp_path / "e" / "manifest.json"), "--epochs", "1", "--batch-size", "4",
                        "--signal-length", str(T), "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1
    assert "/e/manifest.json is empty: it holds no windows" in capsys.readouterr().err


# --- fuzzing: the manifest loader, the shard readers, the streaming loader's arguments ------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65), st.floats(allow_nan=True),
                    st.sampled_from(["", "..", "../x", "/etc/passwd", "shard-00000", "shard-00001", "0" * 64,
                                     "a" * 64, "ecgfast-corpus"]),
                    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from(["a", "bytes"]),
                                                                              st.integers(-3, 3), max_size=2))


def _paths(obj, prefix=()):
    """Every (path, value) of a JSON object, for replacing one value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj, path, value):
    if not path:
        return value
    obj = json.loads(json.dumps(obj))
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return obj


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 10**6), value=_VALUES, drop=st.booleans())
def test_fuzzed_manifests_open_consistently_or_are_refused_by_name(built, tmp_path, pick, value, drop):
    folder = tmp_path / "fz"
    if not folder.exists():
        shutil.copytree(built, folder)
    good = json.loads((built / "manifest.json").read_text())
    paths = list(_paths(good))
    path = paths[pick % len(paths)]
    if drop and path:
        m = json.loads(json.dumps(good))
        cur = m
        for k in path[:-1]:
            cur = cur[k]
        del cur[path[-1]]
    else:
        m = _replace(good, path, value)
    (folder / "manifest.json").write_text(json.dumps(m))
    try:
        c = open_corpus(folder)
    except DataError as exc:
        assert str(folder / "manifest.json") in str(exc) or str(folder) in str(exc)
        return
    # what opened is the corpus as built: every window, label and metadata row as the shard files hold them
    ref = open_corpus(built)
    assert (len(c), c.signal_length, c.shard_names) == (len(ref), ref.signal_length, ref.shard_names)
    assert c.manifest["format_version"] == FORMAT_VERSION
    np.testing.assert_array_equal(c.raw(np.arange(len(c))), ref.raw(np.arange(len(ref))))
    for k in range(len(c.shard_names)):
        np.testing.assert_array_equal(c.shard_labels(k), ref.shard_labels(k))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from([f"shard-0000{k}{s}" for k in range(2) for s in SUFFIXES]),
       at=st.integers(0, 10**6), byte=st.integers(0, 255), cut=st.sampled_from([None, None, 0, 1, 64, 200]))
def test_fuzzed_shard_files_are_refused_or_read_whole(built, tmp_path, which, at, byte, cut):
    folder = tmp_path / "fz"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(built, folder)
    f = folder / which
    data = bytearray(f.read_bytes())
    if cut is None:
        at %= len(data)
        changed = data[at] != byte
        data[at] = byte
    else:
        keep = max(0, len(data) - cut - at % 300)
        data, changed = data[:keep], keep < len(data)
    f.write_bytes(bytes(data))
    if changed:  # verified: any change to any file is refused, naming the file
        with pytest.raises(DataError, match=str(folder)):
            open_corpus(folder)
    # unverified (the cheap checks only): a readable corpus of the right shapes, or a DataError naming it
    try:
        c = open_corpus(folder, verify=False)
        x = c.raw(np.arange(len(c)))
        labels = [c.shard_labels(k) for k in range(2)]
        meta = c.metadata()
    except DataError as exc:
        assert str(folder) in str(exc)
        return
    assert x.shape == (12, 12, T) and [lab.shape for lab in labels] == [(7, 5), (5, 5)]
    assert all(len(v) == 12 for v in meta.values())


_ARG = st.one_of(st.integers(-3, 40), st.integers(2**40, 2**64), st.floats(allow_nan=True, allow_infinity=True),
                 st.booleans(), st.none(), st.sampled_from(["4", "x", 1.5, np.int64(8), np.float32(2.0)]))


@settings(max_examples=100, deadline=None)
@given(batch_size=_ARG, seed=_ARG, epoch_samples=_ARG, replicas=_ARG, rank=_ARG, budget=_ARG, block=_ARG,
       weight=_ARG, drop_last=st.booleans())
# found by the fuzzer: a batch of 2^40 over a 24-window epoch once sized its buffers by the batch (8 TiB)
@example(batch_size=2**40, seed=0, epoch_samples=None, replicas=1, rank=0, budget=2**40, block=4, weight=1.0,
         drop_last=False)
def test_fuzzed_streaming_loader_arguments_give_batches_or_a_config_error(built, batch_size, seed, epoch_samples,
                                                                          replicas, rank, budget, block, weight,
                                                                          drop_last):
    c = open_corpus(built)
    try:
        loader = StreamingLoader([(c, weight), (c, 1.0)], batch_size, seed=seed, epoch_samples=epoch_samples,
                                 num_replicas=replicas, rank=rank, memory_budget_mb=budget, block_windows=block,
                                 drop_last=drop_last)
    except ConfigError as exc:
        assert str(exc)
        return
    B = int(batch_size)
    per_rank = -(-loader.epoch_samples // int(replicas))
    assert len(loader) == (per_rank // B if drop_last else -(-per_rank // B)) and sum(loader.quotas) == per_rank
    assert loader.group_size <= -(-per_rank // B) * B  # never a buffer larger than the epoch needs
    n = 0
    for j, b in enumerate(loader):
        assert b.signals.shape[1:] == (12, T) and 1 <= len(b.index) <= B and b.labels.shape == (len(b.index), 5)
        assert bool(((b.index >= 0) & (b.index < 2 * len(c))).all())
        n += len(b.index)
        if j == 2:
            break
    else:
        assert n == (len(loader) * B if drop_last else per_rank)


_CELLS = ["", "0", "1", "-1", "2", "nan", "inf", "1e999", "x", "../x", "/etc/passwd", "1.5", "999999999999999999999",
          "NORM", "r0", "\"", ",", "M", "F"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.sampled_from(["numpy", "mimic-iv-ecg", "code15"]), row=st.integers(0, 10**6),
       col=st.integers(0, 10**6), cell=st.sampled_from(_CELLS), rate=st.sampled_from([None, "100", "0", "nan", "x",
                                                                                    "1e9", "-5", ""]))
def test_fuzzed_source_index_files_give_records_or_a_named_error(layouts, tmp_path, layout, row, col, cell, rate):
    """The corpus readers' index files (numpy records.csv + sampling_rate.txt, MIMIC record_list.csv, CODE-15
    exams.csv) with one cell replaced: every record read is finite 12-lead mV with 0/1 labels, or the reader
    raises a DataError naming the file."""
    import pandas as pd

    from ecgfast.data.sources.readers import open_source

    folder = tmp_path / "fz"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(layouts / layout, folder)
    index = {"numpy": "records.csv", "mimic-iv-ecg": "record_list.csv", "code15": "exams.csv"}[layout]
    df = pd.read_csv(folder / index, dtype=str, keep_default_na=False)
    df.iloc[row % len(df), col % df.shape[1]] = cell
    df.to_csv(folder / index, index=False)
    if layout == "numpy" and rate is not None:
        (folder / "sampling_rate.txt").write_text(rate)
    try:
        src = open_source(layout, folder)
        recs = [r for item in src.items() for r in src.read(item)]
    except DataError as exc:
        assert str(folder) in str(exc) or index in str(exc) or "sampling_rate" in str(exc)
        return
    for r in recs:
        assert r.signal.ndim == 2 and r.signal.shape[0] == 12 and np.isfinite(r.signal).all()
        assert np.isfinite(r.sampling_rate) and 10 <= r.sampling_rate <= 20000
        assert set(np.unique(r.labels)) <= {0, 1} and isinstance(r.patient_id, (int, np.integer))


def test_corpus_info_verify_rehashes_everything_and_names_an_edited_file(corpus, capsys, monkeypatch):
    from ecgfast.cli.corpus import main

    open_corpus(corpus)  # remembered: info --verify must still read every file
    hashed = _Counter(monkeypatch)
    assert main(["info", str(corpus / "manifest.json"), "--verify"]) == 0
    assert "verified: 6 shard files hashed" in capsys.readouterr().out and len(hashed.files) == 6
    hashed.files.clear()
    assert main(["info", str(corpus / "manifest.json")]) == 0 and hashed.files == []  # cheap checks only
    _flip(corpus / "shard-00000.labels.npy")
    assert main(["info", str(corpus / "manifest.json"), "--verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecgfast corpus: error: ") and "shard-00000.labels.npy does not match" in err
