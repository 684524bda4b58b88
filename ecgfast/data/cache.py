"""One HDF5 file per PTB-XL folder and sampling rate (``ecgfast cache``).

Signals are stored as the WFDB ADC integers (int16, exactly as in the .dat
files) with one gain and baseline per lead; ``signals()`` turns rows into
float32 mV with the fused ``ecgfast::gather_dequantize`` op. The file layout
(format version 3) is documented in the README ("Cache file layout"). Each row
keeps its record's ``scp_codes`` and the file the statements table, so every
PTB-XL benchmark task's labels come from the cache (``ECGCache.task_labels``).

Trust, in five layers:

* **Fingerprint.** A cache records what it was built from: the SHA-256 of both
  csvs, the list of cached ``ecg_id``s, the sampling rate, the format version,
  the records skipped (missing / bad) and, per source record, the relative
  paths, sizes, modification times and one SHA-256 over its ``.hea`` and
  ``.dat`` (hashed by the reader workers during the build; their digests in row
  order give ``content_sha256``). ``ECGCache.fingerprint_digest`` is the
  SHA-256 of the canonical fingerprint JSON: equal digests mean the same
  dataset, whatever the folder's location or file times.
* **Staleness.** ``ensure_cache`` checks a cache against its data root on every
  open: csv hashes, the record list, then the size and mtime of every source
  file (fast: no file is read); a record whose stat changed is re-hashed, and
  the cache is rebuilt (with a message saying why) when any content differs. A
  stale cache is never used silently; where it cannot be rebuilt the rebuild's
  own error says why. ``verify_cache`` / ``ecgfast cache --verify`` re-hash
  every source record and read every signal chunk.
* **Checksums.** Every dataset is written with HDF5's Fletcher-32 filter, so
  flipped bytes fail the read; ``CacheError`` then names the file, the row and
  ``ecg_id``, and says to rebuild. Missing or inconsistent metadata fails
  ``open_cache`` the same way, as does a cache of another format version
  (``ensure_cache`` rebuilds those when it has a data root).
* **Content hashes.** Fletcher-32 guards each chunk but not HDF5's chunk index:
  a damaged B-tree can hand back another row's chunk, or zeros, with no error.
  So the build stores the SHA-256 of every row's int16 bytes
  (``signals_sha256``), and one SHA-256 over all the metadata datasets, both
  sealed in the fingerprint. Opening checks the metadata digest; every read of
  signals (the whole 100 Hz split the loader holds in memory, a 500 Hz batch,
  ``--verify``) re-hashes the rows it returns and refuses a mismatch naming the
  file, the row and ``ecg_id``.
* **Crash safety.** A build writes ``.<name>.<pid>.<token>.tmp`` beside the
  target and renames it over the target only when complete; temps of killed
  builds (their process gone) are removed on the next build or open, never a
  live writer's. Free space is checked before writing, and file-system
  failures (read-only folder, full disk) raise ``DataError`` with no partial
  file left.
"""
from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch

from ecgfast import LEADS, __version__
from ecgfast.base.fs import explain_os_error, os_error_message, remove_stale_temps, temp_path
from ecgfast.base.progress import progress_bar
from ecgfast.data._ops import gather_dequantize
from ecgfast.data.errors import CacheError, DataError, PTBXLError
from ecgfast.data.metadata import (
    DATABASE_CSV,
    DEFAULT_TASK,
    STATEMENTS_CSV,
    check_sampling_rate,
    check_task,
    file_sha256,
    load_metadata,
    task_code_sets,
    task_labels,
)
from ecgfast.data.records import Confiner, expected_length, read_indexed_record, record_digest, record_path

log = logging.getLogger("ecgfast")
FORMAT = "ecgfast-ptbxl-cache"
FORMAT_VERSION = 3
SPLITS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}
_SOURCE = "source"  # group of the per-record source table
_REBUILD = "rebuild it with `ecgfast cache`"
# Datasets sealed by the fingerprint's metadata_sha256 (read whole on open).
_METADATA = ("gain", "baseline", "ecg_id", "patient_id", "strat_fold", "labels", "scp_codes", "statements",
             "signals_sha256")
_unchecked_noted: set[str] = set()  # caches already said to be used without a staleness check

__all__ = ["CacheError", "ECGCache", "FORMAT_VERSION", "build_cache", "default_cache_path", "ensure_cache",
           "fingerprint_digest", "open_cache", "stale_reason", "verify_cache"]


def canonical_json(obj) -> str:
    """The one JSON text of ``obj`` that its digest is taken over (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint_digest(fingerprint: dict) -> str:
    """SHA-256 hex of the canonical JSON of a cache fingerprint."""
    return hashlib.sha256(canonical_json(fingerprint).encode()).hexdigest()


def row_digests(block: np.ndarray) -> np.ndarray:
    """uint8 (n, 32): the SHA-256 of each row's int16 bytes (little-endian, C order) of ``block``."""
    block = np.ascontiguousarray(block, dtype="<i2")
    out = np.empty((len(block), 32), dtype=np.uint8)
    for i, row in enumerate(block):
        out[i] = np.frombuffer(hashlib.sha256(row.data).digest(), dtype=np.uint8)
    return out


def _metadata_sha256(arrays: dict) -> str:
    """One SHA-256 over name, dtype, shape and bytes of each metadata dataset, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_bytes(obj) -> np.ndarray:
    """uint8 of the canonical JSON of ``obj`` (a chunked dataset, so Fletcher-32 guards it)."""
    return np.frombuffer(canonical_json(obj).encode(), dtype=np.uint8)


def _content_sha256(ecg_ids, digests) -> str:
    """One SHA-256 over (ecg_id, record digest) of every source record, in table order."""
    h = hashlib.sha256()
    for ecg_id, d in zip(np.asarray(ecg_ids, dtype="<i8"), digests):
        h.update(ecg_id.tobytes())
        h.update(bytes(d))
    return h.hexdigest()


def _record_present(path) -> bool:
    path = os.fspath(path)
    return os.path.isfile(path + ".hea") and os.path.isfile(path + ".dat")


def _source_records(root: Path, meta, sampling_rate: int) -> tuple[list[str], np.ndarray]:
    """The csv's record paths at ``sampling_rate`` (each confined to ``root``) and which are present."""
    files = meta.filenames(sampling_rate)
    where = root / DATABASE_CSV
    confiner = Confiner(root)
    paths = [record_path(root, f, f"{where}: record ecg_id={i}", confiner) for i, f in zip(meta.ecg_ids, files)]
    return files, np.array([_record_present(p) for p in paths], dtype=bool)


def _fs_error(exc: OSError, path: Path, action: str = "write") -> DataError:
    """A DataError for a file-system failure; h5py's errno-less errors on a full disk say so."""
    return DataError(str(explain_os_error(exc, path, action)))


def _remove_stale_temps(path: Path) -> None:
    try:
        remove_stale_temps(path.parent, path.name)
    except OSError:  # a read-only folder: nothing can be cleaned, nothing needs to be
        pass


def _check_free_space(out: Path, n: int, T: int) -> None:
    need = n * len(LEADS) * T * 2 * 1.02 + n * 256 + (4 << 20)
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError as exc:
        raise _fs_error(exc, out.parent, "inspect") from exc
    if free < need:
        msg = os_error_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), out)
        raise DataError(f"{msg}; the cache needs about {need / 1e6:.0f} MB, {free / 1e6:.0f} MB are free")


def build_cache(data_root: str | Path, out: str | Path, sampling_rate: int = 100,
                skip_missing: bool = False, workers: int = 1, progress: bool = True,
                skip_bad: bool = False) -> Path:
    """Convert a PTB-XL folder into one HDF5 cache at ``out`` (atomically); returns ``out``.

    ``skip_missing`` caches the records present when some are absent; ``skip_bad``
    skips records that are present but unusable (NaN samples, corrupted files),
    counting them in the fingerprint and naming them on stderr.
    """
    root, out = Path(data_root), Path(out)
    sampling_rate = check_sampling_rate(sampling_rate)
    meta = load_metadata(root)
    csv_sha256 = {"database_sha256": file_sha256(root / DATABASE_CSV),
                  "statements_sha256": file_sha256(root / STATEMENTS_CSV)}
    files, present = _source_records(root, meta, sampling_rate)
    if not present.all():
        missing = [files[i] for i in np.flatnonzero(~present)]
        if not skip_missing:
            raise PTBXLError(
                f"{root}: {len(missing)} of {len(files)} records at {sampling_rate} Hz are missing "
                f"(first: {missing[0]}); pass --skip-missing to cache the {int(present.sum())} present")
        if not present.any():
            raise PTBXLError(f"{root}: none of the {len(files)} records at {sampling_rate} Hz is present")
        log.warning(f"ecgfast cache: skipping {len(missing)} missing record(s) of {len(files)} "
                    f"(first: {missing[0]})")
    keep = np.flatnonzero(present)
    n, T = len(keep), expected_length(sampling_rate)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    except OSError as exc:
        raise _fs_error(exc, out, "create the folder of") from exc
    _remove_stale_temps(out)
    _check_free_space(out, n, T)
    tmp = temp_path(out)
    jobs = [(j, str(root), files[i], sampling_rate, skip_bad) for j, i in enumerate(keep)]
    try:
        try:
            _write(tmp, root, meta, keep, jobs, sampling_rate, len(files) - n, workers, progress, csv_sha256)
            with open(tmp, "rb+") as f:  # the rename below must not publish unflushed data
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except OSError as exc:
            raise _fs_error(exc, out) from exc
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return out


def _write(tmp: Path, root: Path, meta, keep: np.ndarray, jobs: list, sampling_rate: int, n_missing: int,
           workers: int, progress: bool, csv_sha256: dict) -> None:
    n, T = len(jobs), expected_length(sampling_rate)
    with h5py.File(tmp, "w") as h5:
        signals = h5.create_dataset("signals", (n, len(LEADS), T), maxshape=(None, len(LEADS), T),
                                    dtype="int16", chunks=(1, len(LEADS), T), fletcher32=True)
        gain = baseline = None
        rows, digests, bad = [], {}, []  # kept job positions; job -> digest; (job, message)
        row_sha = np.zeros((n, 32), dtype=np.uint8)  # SHA-256 of each stored row, as written
        bar = progress_bar(total=n, desc=f"caching {sampling_rate} Hz", unit="rec", enabled=progress)
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        try:
            results = (pool.imap(read_indexed_record, jobs, chunksize=32) if pool
                       else map(read_indexed_record, jobs))
            for j, adc, g, b, digest, error in results:
                bar.update()
                digests[j] = digest
                if error is not None:
                    bad.append((j, error))
                    continue
                if gain is None:
                    gain, baseline = g, b
                elif not (np.array_equal(g, gain) and np.array_equal(b, baseline)):
                    # One gain per lead for the file: re-quantise this record onto it.
                    mv = (adc.astype(np.float64) - b[:, None]) / g[:, None]
                    adc = np.round(mv * gain[:, None] + baseline[:, None])
                    if np.abs(adc).max() > 32767:
                        raise PTBXLError(f"record {root / jobs[j][2]}: does not fit int16 at the cache's gain")
                    adc = adc.astype(np.int16)
                signals[len(rows)] = adc
                row_sha[len(rows)] = row_digests(adc[None])[0]
                rows.append(j)
        finally:
            bar.close()
            if pool:
                pool.terminate()
        if bad:
            log.warning(f"ecgfast cache: skipped {len(bad)} bad record(s) (first: {bad[0][1]})")
        if not rows:
            raise PTBXLError(f"{root}: none of the {n} records present at {sampling_rate} Hz could be cached "
                             f"(first problem: {bad[0][1] if bad else 'none'})")
        signals.resize(len(rows), axis=0)
        kept = keep[rows]
        ids = meta.ecg_ids[kept].astype(np.int64)

        sealed = {}

        def put(name, data):
            h5.create_dataset(name, data=data, fletcher32=True, chunks=True if np.ndim(data) else None)
            sealed[name] = np.asarray(data)

        put("gain", gain.astype(np.float32))
        put("baseline", baseline.astype(np.float32))
        put("ecg_id", ids)
        put("patient_id", meta.patient_ids[kept].astype(np.int64))
        put("strat_fold", meta.folds[kept].astype(np.int8))
        put("labels", meta.labels[kept].astype(np.uint8))
        put("scp_codes", _utf8([canonical_json(meta.scp_codes[k]) for k in kept]))
        put("statements", _json_bytes(meta.statements))
        put("signals_sha256", row_sha[:len(rows)])

        # Source table: the cached records (in row order), then the skipped bad ones.
        order = rows + [j for j, _ in bad]
        reason = [""] * len(rows) + [msg for _, msg in bad]
        src_ids = meta.ecg_ids[keep[order]].astype(np.int64)
        paths, size, mtime, sha = [], [], [], []
        for j in order:
            d = digests[j]
            if d is None:  # a bad record whose files could not even be read
                rel = jobs[j][2]
                d = ([-1, -1], [-1, -1], bytes(32), f"{rel}.dat")
            sizes, mtimes, digest, dat = d
            paths.append([f"{jobs[j][2]}.hea", dat])
            size.append(sizes)
            mtime.append(mtimes)
            sha.append(np.frombuffer(digest, dtype=np.uint8))
        g = h5.create_group(_SOURCE)
        g.create_dataset("ecg_id", data=src_ids, fletcher32=True, chunks=True)
        g.create_dataset("cached", data=np.arange(len(order)) < len(rows), fletcher32=True, chunks=True)
        g.create_dataset("paths", data=_utf8(paths), fletcher32=True, chunks=True)
        g.create_dataset("size", data=np.array(size, dtype=np.int64), fletcher32=True, chunks=True)
        g.create_dataset("mtime_ns", data=np.array(mtime, dtype=np.int64), fletcher32=True, chunks=True)
        g.create_dataset("sha256", data=np.stack(sha), fletcher32=True, chunks=True)
        g.create_dataset("reason", data=_utf8(reason), fletcher32=True, chunks=True)

        fingerprint = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sampling_rate": int(sampling_rate),
            **csv_sha256,
            "n_records": int(len(rows)),
            "records_sha256": hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest(),
            "metadata_sha256": _metadata_sha256(sealed),
            "content_sha256": _content_sha256(src_ids, sha),
            "skipped_missing": int(n_missing),
            "skipped_bad": int(len(bad)),
            "skipped": int(n_missing + len(bad)),
        }
        h5.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "sampling_rate": sampling_rate,
            "signal_length": T, "units": "mV", "leads": json.dumps(LEADS),
            "classes": json.dumps(meta.classes), "ptbxl_version": meta.version,
            "fingerprint": canonical_json(fingerprint), "fingerprint_sha256": fingerprint_digest(fingerprint),
            "created_by": f"ecgfast {__version__}",
        })


def _utf8(strings) -> np.ndarray:
    """Fixed-length UTF-8 bytes (variable-length strings cannot carry HDF5's checksum filter)."""
    return np.array([[x.encode() for x in row] if isinstance(row, list) else row.encode() for row in strings],
                    dtype=bytes)


def _from_utf8(a: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(a) if a.size else a.astype(object)


class SourceTable:
    """Per source record of a cache: ecg_id, cached (else skipped as bad), relative paths
    of .hea and .dat, sizes, mtimes (ns), SHA-256 over both files, and the skip reason."""

    def __init__(self, h5: h5py.File):
        g = h5[_SOURCE]
        self.ecg_id = g["ecg_id"][:].astype(np.int64)
        self.cached = g["cached"][:].astype(bool)
        self.paths = _from_utf8(g["paths"][:])
        self.size = g["size"][:].astype(np.int64)
        self.mtime_ns = g["mtime_ns"][:].astype(np.int64)
        self.sha256 = g["sha256"][:].astype(np.uint8)
        self.reason = _from_utf8(g["reason"][:])
        m = len(self.ecg_id)
        if (self.cached.shape != (m,) or self.paths.shape != (m, 2) or self.size.shape != (m, 2)
                or self.mtime_ns.shape != (m, 2) or self.sha256.shape != (m, 32) or self.reason.shape != (m,)):
            raise ValueError("source table datasets disagree in shape")

    def __len__(self) -> int:
        return len(self.ecg_id)


class ECGCache:
    """Read access to a cache: metadata in memory, signals on demand.

    Opening checks the format, version and every attribute and metadata dataset
    (``CacheError`` names what is wrong) and the SHA-256 of the metadata; reading
    signals verifies their Fletcher-32 checksums and every row's stored SHA-256.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"cache {self.path} does not exist")
        _remove_stale_temps(self.path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise CacheError(f"cache {self.path}: not an HDF5 file or unreadable ({exc}); {_REBUILD}") from exc
        self._source = None
        try:
            self._load()
        except CacheError:
            self._h5.close()
            raise
        except Exception as exc:  # h5py/json/numpy errors from damaged metadata
            self._h5.close()
            raise CacheError(f"cache {self.path}: corrupted or missing metadata ({type(exc).__name__}: {exc}); "
                             f"{_REBUILD}") from exc

    def _load(self) -> None:
        a, h = self._h5.attrs, self._h5
        if a.get("format") != FORMAT:
            raise CacheError(f"cache {self.path}: not an ecgfast PTB-XL cache (no format attribute {FORMAT!r})")
        version = a.get("format_version")
        if version is None or int(version) != FORMAT_VERSION:
            raise CacheError(f"cache {self.path}: format version {version}, this ecgfast reads {FORMAT_VERSION}; "
                             f"{rebuild_command(self.path, a.get('sampling_rate'))} (a run given its --data-root "
                             "rebuilds it itself)")
        self.sampling_rate = check_sampling_rate(int(a["sampling_rate"]))
        self.signal_length = int(a["signal_length"])
        self.classes = tuple(json.loads(a["classes"]))
        self._stored_classes = self.classes
        self.leads = tuple(json.loads(a["leads"]))
        self.fingerprint = json.loads(a["fingerprint"])

        def bad(what):
            return CacheError(f"cache {self.path}: corrupted metadata ({what}); {_REBUILD}")

        if not isinstance(self.fingerprint, dict) or fingerprint_digest(self.fingerprint) != a["fingerprint_sha256"]:
            raise bad("the fingerprint does not match its SHA-256")
        if self.signal_length != expected_length(self.sampling_rate):
            raise bad(f"signal_length {self.signal_length} at {self.sampling_rate} Hz")
        if self.leads != LEADS or not all(isinstance(c, str) for c in self.classes) or not self.classes:
            raise bad("leads or classes")
        sig = h["signals"]
        n = sig.shape[0]
        if sig.dtype != np.int16 or sig.shape != (n, len(LEADS), self.signal_length):
            raise bad(f"signals are {sig.dtype} {sig.shape}")
        if self.fingerprint.get("n_records") != n or self.fingerprint.get("sampling_rate") != self.sampling_rate:
            raise bad("the fingerprint disagrees with the signals")
        stored = {name: h[name][()] for name in _METADATA}
        if _metadata_sha256(stored) != self.fingerprint.get("metadata_sha256"):
            raise bad("its metadata datasets differ from the SHA-256 sealed in the fingerprint")
        self.ecg_ids = stored["ecg_id"].astype(np.int64)
        self.patient_ids = stored["patient_id"].astype(np.int64)
        self.folds = stored["strat_fold"].astype(np.int64)
        self.labels = stored["labels"].astype(np.float32)
        self.task = DEFAULT_TASK
        self._scp_codes = stored["scp_codes"]
        self._statements = stored["statements"]
        self._row_sha256 = stored["signals_sha256"]
        if self._scp_codes.shape != (n,) or self._row_sha256.shape != (n, 32):
            raise bad("scp_codes or signals_sha256 lengths disagree with the signals")
        if (self.ecg_ids.shape != (n,) or self.patient_ids.shape != (n,) or self.folds.shape != (n,)
                or self.labels.shape != (n, len(self.classes))):
            raise bad("dataset lengths disagree")
        if not np.isin(self.folds, np.arange(1, 11)).all() or not np.isin(self.labels, (0, 1)).all():
            raise bad("folds outside 1..10 or labels not 0/1")
        self.has_label = self.labels.any(axis=1)
        self._stored_labels = self.labels
        gain, baseline = stored["gain"].astype(np.float32), stored["baseline"].astype(np.float32)
        if gain.shape != (len(LEADS),) or baseline.shape != (len(LEADS),) or not (
                np.isfinite(gain).all() and (gain > 0).all() and np.isfinite(baseline).all()):
            raise bad("gain or baseline")
        self.gain = torch.from_numpy(gain)
        self.baseline = torch.from_numpy(baseline)
        src = self.source
        if int(src.cached.sum()) != n or not np.array_equal(src.ecg_id[src.cached], self.ecg_ids):
            raise bad("the source table disagrees with the records")

    @property
    def source(self) -> SourceTable:
        """The per-record source table (paths, sizes, mtimes, SHA-256s, skip reasons)."""
        if self._source is None:
            self._source = SourceTable(self._h5)
        return self._source

    @property
    def fingerprint_digest(self) -> str:
        """SHA-256 hex of the canonical fingerprint JSON: the same dataset gives the same digest."""
        return fingerprint_digest(self.fingerprint)

    def __len__(self) -> int:
        return len(self.ecg_ids)

    def __repr__(self) -> str:
        return (f"ECGCache({str(self.path)!r}, records={len(self)}, "
                f"sampling_rate={self.sampling_rate}, signal_length={self.signal_length})")

    def split_indices(self, split: str, labelled_only: bool = False) -> np.ndarray:
        """Indices of the records of ``train`` (folds 1-8), ``val`` (9) or ``test`` (10)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        mask = np.isin(self.folds, SPLITS[split])
        if labelled_only:
            mask &= self.has_label
        return np.flatnonzero(mask).astype(np.int64)

    def task_labels(self, task: str = DEFAULT_TASK, classes=None, min_count: int = 0) -> tuple[np.ndarray, tuple]:
        """(multi-hot float32 (n, C), classes) of a PTB-XL benchmark ``task`` (``metadata.TASKS``) for every row.

        ``superdiagnostic`` with its default classes is the stored ``labels`` (the seed's);
        ``classes`` fixes the columns (a checkpoint's), see ``metadata.task_labels``.
        """
        check_task(task)
        if task == DEFAULT_TASK and (classes is None or tuple(classes) == tuple(self._stored_classes)):
            return self._stored_labels.copy(), tuple(self._stored_classes)
        try:
            codes = [json.loads(b) for b in self._scp_codes]
            table = json.loads(self._statements.tobytes())
        except ValueError as exc:
            raise CacheError(f"cache {self.path}: corrupted scp_codes or statements ({exc}); {_REBUILD}") from exc
        sets = task_code_sets(codes, table, task, where=f"cache {self.path}: its {STATEMENTS_CSV}")
        return task_labels(sets, task, classes, min_count)

    def with_task(self, task: str, classes=None, min_count: int = 0) -> ECGCache:
        """This cache with ``labels``, ``classes`` and ``has_label`` of ``task`` (the same open file).

        Training, the loader and evaluation read those three, so a task is chosen here once;
        records with no label for the task drop out of ``split_indices(labelled_only=True)``.
        """
        labels, names = self.task_labels(task, classes, min_count)
        view = copy.copy(self)
        view.task, view.labels, view.classes, view.has_label = task, labels, names, labels.any(axis=1)
        return view

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """``signals[rows]`` (increasing rows), each checked against its stored SHA-256; a failed
        read or a mismatch names the first bad row."""
        block = self._read_block(rows)
        wrong = np.flatnonzero((row_digests(block) != self._row_sha256[rows]).any(axis=1))
        if wrong.size:
            r = int(rows[wrong[0]])
            raise CacheError(f"cache {self.path}: signals of row {r} (ecg_id={int(self.ecg_ids[r])}) differ from the "
                             f"SHA-256 stored when it was built ({wrong.size} of {len(rows)} rows read): the file "
                             f"is corrupted, though its checksums pass (e.g. a damaged chunk index); "
                             f"{rebuild_command(self.path, self.sampling_rate)}")
        return block

    def _read_block(self, rows: np.ndarray) -> np.ndarray:
        """``signals[rows]`` as HDF5 returns it (Fletcher-32 checked); a failed read names the first bad row."""
        try:
            return self._h5["signals"][rows]
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            for r in rows:  # find which record it is (only on the error path)
                try:
                    self._h5["signals"][int(r)]
                except (OSError, RuntimeError, KeyError, ValueError) as row_exc:
                    raise CacheError(
                        f"cache {self.path}: signals of row {int(r)} (ecg_id={int(self.ecg_ids[r])}) "
                        f"cannot be read ({row_exc}): the file is corrupted; {_REBUILD}") from row_exc
            raise CacheError(f"cache {self.path}: signals cannot be read ({exc}); {_REBUILD}") from exc

    def raw(self, indices) -> torch.Tensor:
        """The stored int16 rows (n, 12, T) of ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"cache {self.path}: index out of range for {len(self)} records")
        unique, inverse = np.unique(idx, return_inverse=True)  # HDF5 wants increasing indices
        block = self._read_rows(unique) if unique.size else np.zeros((0, 12, self.signal_length), np.int16)
        return torch.from_numpy(block[inverse] if unique.size != idx.size or (inverse != np.arange(idx.size)).any()
                                else block)

    def signals(self, indices) -> torch.Tensor:
        """float32 (n, 12, T) in mV for ``indices``."""
        raw = self.raw(indices)
        return gather_dequantize(raw, torch.arange(raw.shape[0]), self.gain, self.baseline)

    def close(self) -> None:
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_cache(path: str | Path) -> ECGCache:
    """Open an ecgfast cache file (``CacheError`` if corrupted or of another format version)."""
    return ECGCache(path)


def rebuild_command(path: str | Path, sampling_rate=None) -> str:
    """The one command that rebuilds the cache at ``path`` (its data root is not stored: a placeholder)."""
    rate = f" --sampling-rate {int(sampling_rate)}" if sampling_rate is not None else ""
    return f"rebuild it with `ecgfast cache --data-root <PTB-XL folder>{rate} --out {path}`"


def default_cache_path(data_root: str | Path, sampling_rate: int) -> Path:
    return Path(data_root) / f"ecgfast_cache_{sampling_rate}hz.h5"


def _changed_records(src: SourceTable, root: Path, rows, full: bool) -> list[tuple[str, str]]:
    """(path, why) of the source records among ``rows`` whose files differ from the table.

    ``full`` re-hashes every record; otherwise only those whose size or mtime changed.
    """
    changed, confine = [], Confiner(root)
    for m in rows:
        hea, dat = (root / p for p in src.paths[m])
        if not full:
            try:
                st = [os.stat(hea), os.stat(dat)]
                if [s.st_size for s in st] == src.size[m].tolist() and \
                        [s.st_mtime_ns for s in st] == src.mtime_ns[m].tolist():
                    continue
            except OSError:
                pass  # re-hashing below says what is wrong
        try:
            where = f"record {src.paths[m][0]}"
            sizes, _, digest = record_digest(confine(hea, where), confine(dat, where))
        except OSError as exc:
            changed.append((src.paths[m][0], os_error_message(exc, exc.filename or hea, "read")))
            continue
        except PTBXLError as exc:
            changed.append((src.paths[m][0], str(exc)))
            continue
        if digest != bytes(src.sha256[m]):
            changed.append((src.paths[m][0], "content changed"))
    return changed


def stale_reason(cache: ECGCache, data_root: str | Path, sampling_rate: int | None = None,
                 skip_missing: bool = False, skip_bad: bool = False) -> str | None:
    """Why ``cache`` no longer matches ``data_root`` (None when it does).

    Compares the csv hashes, the record list, and every source file's size and
    mtime; a record whose stat changed is re-hashed, so a copied or touched
    folder with the same bytes is still fresh.
    """
    root = Path(data_root)
    fp = cache.fingerprint
    if sampling_rate is not None and cache.sampling_rate != sampling_rate:
        return f"it holds {cache.sampling_rate} Hz, {sampling_rate} Hz were asked for"
    meta = load_metadata(root)
    for name, key in ((DATABASE_CSV, "database_sha256"), (STATEMENTS_CSV, "statements_sha256")):
        if file_sha256(root / name) != fp.get(key):
            return f"{name} changed"
    files, present = _source_records(root, meta, cache.sampling_rate)
    if not present.all() and not skip_missing:
        return f"{int((~present).sum())} record(s) are missing and --skip-missing was not given"
    src = cache.source
    if not np.array_equal(np.sort(src.ecg_id), meta.ecg_ids[present]):
        return "the list of records present changed"
    n_bad = int((~src.cached).sum())
    if n_bad and not skip_bad:
        return f"it skipped {n_bad} bad record(s) and --skip-bad was not given"
    changed = _changed_records(src, root, range(len(src)), full=False)
    if changed:
        return f"{len(changed)} record(s) changed since it was built (first: {changed[0][0]}: {changed[0][1]})"
    return None


def verify_cache(path: str | Path, data_root: str | Path | None = None) -> dict:
    """Check a cache in full: every signal chunk's checksum, the metadata, and (with
    ``data_root``) both csvs and every source record re-hashed against the stored SHA-256.

    Returns a summary dict; raises ``CacheError`` naming the first problem.
    """
    path = Path(path)
    with open_cache(path) as c:
        for start in range(0, len(c), 256):
            c._read_rows(np.arange(start, min(len(c), start + 256)))
        src = c.source
        if _content_sha256(src.ecg_id, src.sha256) != c.fingerprint.get("content_sha256"):
            raise CacheError(f"cache {path}: its source table disagrees with its fingerprint: the file is "
                             f"corrupted; {_REBUILD}")
        report = {"path": str(path), "records": len(c), "skipped": int(c.fingerprint.get("skipped", 0)),
                  "fingerprint_digest": c.fingerprint_digest, "signals": "ok", "data_root": None}
        if data_root is None:
            return report
        root = Path(data_root)
        if not root.is_dir():
            raise PTBXLError(f"{root}: PTB-XL folder not found")
        for name, key in ((DATABASE_CSV, "database_sha256"), (STATEMENTS_CSV, "statements_sha256")):
            try:
                same = file_sha256(root / name) == c.fingerprint.get(key)
            except OSError as exc:
                raise CacheError(f"cache {path}: {os_error_message(exc, root / name, 'read')}") from exc
            if not same:
                raise CacheError(f"cache {path}: {root / name} differs from the csv it was built from; "
                                 f"rebuild it with `ecgfast cache --data-root {root}`")
        meta = load_metadata(root)
        _, present = _source_records(root, meta, c.sampling_rate)
        now, then = set(meta.ecg_ids[present].tolist()), set(src.ecg_id.tolist())
        if now != then:
            raise CacheError(f"cache {path}: the records present in {root} changed since the build "
                             f"({len(now - then)} more, {len(then - now)} fewer); "
                             f"rebuild it with `ecgfast cache --data-root {root}`")
        changed = _changed_records(src, root, range(len(src)), full=True)
        if changed:
            raise CacheError(f"cache {path}: {len(changed)} of {len(src)} source record(s) differ from {root} "
                             f"(first: {changed[0][0]}: {changed[0][1]}); "
                             f"rebuild it with `ecgfast cache --data-root {root}`")
        report.update(data_root=str(root), source_records=len(src))
        return report


def ensure_cache(data_root: str | Path | None, cache: str | Path | None = None, sampling_rate: int = 100,
                 skip_missing: bool = False, workers: int = 1, progress: bool = True,
                 skip_bad: bool = False) -> ECGCache:
    """Open ``cache``, building it from ``data_root`` when missing, stale, corrupted or of an old format.

    With a ``data_root`` folder, the cache is checked against it on every call
    (``stale_reason``) and rebuilt, with a message saying why, when it differs;
    a rebuild that cannot succeed raises its own error. Without one, an existing
    cache is used as it is (its metadata and record hashes still checked), and a
    line on stderr says so, once per cache and process.
    """
    if cache is None:
        if data_root is None:
            raise ValueError("give a data root, a cache file, or both")
        cache = default_cache_path(data_root, sampling_rate)
    cache = Path(cache)
    can_check = data_root is not None and Path(data_root).is_dir()
    if cache.is_file():
        try:
            opened = open_cache(cache)
        except CacheError as exc:
            if not can_check:
                raise
            log.warning(f"ecgfast: {exc}: rebuilding it from {data_root}")
        else:
            if opened.sampling_rate != sampling_rate:
                opened.close()
                raise PTBXLError(f"cache {cache} holds {opened.sampling_rate} Hz signals, "
                                 f"{sampling_rate} Hz were asked for")
            if not can_check:  # nothing to check it against: use it as it is, and say so once
                if str(cache) not in _unchecked_noted:
                    _unchecked_noted.add(str(cache))
                    log.warning(f"ecgfast: using cache {cache} as it is: without a --data-root folder its "
                                "staleness against the PTB-XL source is not checked (its record hashes are)")
                return opened
            try:
                reason = stale_reason(opened, data_root, sampling_rate, skip_missing, skip_bad)
            except BaseException:
                opened.close()
                raise
            if reason is None:
                return opened
            opened.close()
            log.warning(f"ecgfast: cache {cache} is stale ({reason}); rebuilding it")
    if data_root is None:
        raise FileNotFoundError(f"cache {cache} does not exist and no --data-root was given to build it")
    build_cache(data_root, cache, sampling_rate, skip_missing, workers, progress, skip_bad)
    return open_cache(cache)
