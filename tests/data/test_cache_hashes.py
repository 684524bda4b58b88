"""Cache format 3: every row's SHA-256 is checked on read, so a damaged chunk index that hands back
another row's bytes (or zeros) with valid Fletcher-32 checksums is refused, naming the file and row."""
from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest

from ecgfast.cli.cache import main as cache_main
from ecgfast.data.cache import CacheError, build_cache, ensure_cache, open_cache, row_digests, verify_cache
from ecgfast.data.loader import ECGBatchLoader


@pytest.fixture
def cache_path(mini_root, tmp_path):
    return build_cache(mini_root, tmp_path / "c.h5", 100, progress=False)


def _chunk_offset(path, row):
    with h5py.File(path, "r") as h5:
        return h5["signals"].id.get_chunk_info(row).byte_offset


def _repoint_chunk_index(path, row, to_row):
    """Flip the chunk index (HDF5's B-tree) so ``row`` reads ``to_row``'s chunk: every byte the
    Fletcher-32 filter guards is untouched, only the address the index stores changes."""
    old, new = struct.pack("<Q", _chunk_offset(path, row)), struct.pack("<Q", _chunk_offset(path, to_row))
    raw = path.read_bytes()
    assert raw.count(old) == 1  # the one B-tree entry that addresses the chunk
    path.write_bytes(raw.replace(old, new))


def test_row_digests_are_the_sha256_of_each_rows_little_endian_bytes():
    import hashlib

    block = np.arange(2 * 12 * 7, dtype=np.int16).reshape(2, 12, 7)
    want = [hashlib.sha256(r.astype("<i2").tobytes()).digest() for r in block]
    assert [bytes(d) for d in row_digests(block)] == want
    assert (row_digests(block[::-1]) == row_digests(block)[::-1]).all()


def test_a_damaged_chunk_index_is_refused_naming_the_file_and_row(cache_path, capsys):
    with open_cache(cache_path) as c:
        clean = c.raw([3, 5]).numpy()
    _repoint_chunk_index(cache_path, 3, 5)
    with h5py.File(cache_path, "r") as h5:  # HDF5 itself reads it without complaint: row 3 is row 5
        np.testing.assert_array_equal(h5["signals"][3], clean[1])
    with open_cache(cache_path) as c:  # the metadata is intact: it opens, and other rows still read
        np.testing.assert_array_equal(c.raw([5]).numpy()[0], clean[1])
        message = rf"cache {cache_path}: signals of row 3 \(ecg_id=4\) differ from the SHA-256 stored"
        with pytest.raises(CacheError, match=message):
            c.signals([1, 3])
        with pytest.raises(CacheError, match=message):  # the in-memory loader reads the whole split
            ECGBatchLoader(c, np.arange(len(c)), batch_size=4)
        with pytest.raises(CacheError, match=message):  # the streaming one reads it with its batch
            list(ECGBatchLoader(c, np.arange(len(c)), batch_size=4, in_memory=False))
    with pytest.raises(CacheError, match=message):
        verify_cache(cache_path)
    assert cache_main(["--verify", "--out", str(cache_path)]) == 1
    assert "row 3 (ecg_id=4)" in capsys.readouterr().err


def test_signal_bytes_rewritten_in_a_valid_file_are_refused(cache_path):
    """A row overwritten with zeros through HDF5 (checksums recomputed): what a lost chunk reads back as."""
    with h5py.File(cache_path, "r+") as h5:
        h5["signals"][7] = np.zeros((12, 1000), np.int16)
    with open_cache(cache_path) as c:
        with pytest.raises(CacheError, match=r"row 7 \(ecg_id=8\).*rebuild it with `ecgfast cache --data-root"):
            c.raw(np.arange(len(c)))
        assert c.raw([6, 8]).shape == (2, 12, 1000)


def test_a_rebuild_with_the_data_root_repairs_a_damaged_row(mini_root, cache_path, capsys):
    _repoint_chunk_index(cache_path, 3, 5)
    assert cache_main(["--data-root", str(mini_root), "--out", str(cache_path)]) == 0
    assert verify_cache(cache_path, mini_root)["records"] == 20


@pytest.mark.parametrize("dataset", ["labels", "scp_codes", "patient_id", "signals_sha256"])
def test_metadata_rewritten_in_a_valid_file_fails_open(mini_root, cache_path, dataset):
    with h5py.File(cache_path, "r+") as h5:
        d = h5[dataset]
        first = d[0]
        d[0] = first[::-1] if d.ndim == 2 else (b"{}" if d.dtype.kind == "S" else first + 1)
    with pytest.raises(CacheError, match=rf"cache {cache_path}: corrupted metadata \(its metadata datasets differ "
                                         r"from the SHA-256 sealed in the fingerprint\)"):
        open_cache(cache_path)
    c = ensure_cache(mini_root, cache_path, 100, progress=False)  # with the data root: rebuilt
    assert len(c) == 20
    c.close()


def test_verify_reports_the_record_hashes(cache_path, capsys):
    assert cache_main(["--verify", "--out", str(cache_path)]) == 0
    assert "20 records, checksums and record hashes ok" in capsys.readouterr().out


def test_a_cache_alone_says_once_that_staleness_is_not_checked(cache_path, capsys):
    for _ in range(2):
        ensure_cache(None, cache_path, 100).close()
    err = capsys.readouterr().err
    assert err.count(f"using cache {cache_path} as it is: without a --data-root folder its staleness") == 1
