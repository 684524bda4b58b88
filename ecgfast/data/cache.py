"""One HDF5 file per PTB-XL folder and sampling rate (``ecgfast cache``).

Signals are stored as the WFDB ADC integers (int16, exactly as in the .dat
files) with one gain and baseline per lead; ``signals()`` turns rows into
float32 mV with the fused ``ecgfast::gather_dequantize`` op. The file layout is
documented in docs/data.md. A cache carries a fingerprint of its source (csv
hashes, record list, sampling rate, format version); ``ensure_cache`` rebuilds
a cache whose fingerprint no longer matches its folder instead of using it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from ecgfast import CLASSES, LEADS, __version__
from ecgfast.data._ops import gather_dequantize
from ecgfast.data.errors import PTBXLError
from ecgfast.data.metadata import (DATABASE_CSV, STATEMENTS_CSV, check_sampling_rate, file_sha256,
                                   load_metadata)
from ecgfast.data.records import expected_length, read_indexed_record

FORMAT = "ecgfast-ptbxl-cache"
FORMAT_VERSION = 1
SPLITS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}


def _record_present(root: Path, rel: str) -> bool:
    p = root / rel
    return p.with_name(p.name + ".hea").is_file() and p.with_name(p.name + ".dat").is_file()


def source_fingerprint(root: Path, sampling_rate: int, ecg_ids: np.ndarray) -> dict:
    """What a cache was built from; two equal fingerprints mean the same cache contents."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sampling_rate": int(sampling_rate),
        "database_sha256": file_sha256(root / DATABASE_CSV),
        "statements_sha256": file_sha256(root / STATEMENTS_CSV),
        "n_records": int(len(ecg_ids)),
        "records_sha256": hashlib.sha256(np.asarray(ecg_ids, dtype="<i8").tobytes()).hexdigest(),
    }


def build_cache(data_root: str | Path, out: str | Path, sampling_rate: int = 100,
                skip_missing: bool = False, workers: int = 1, progress: bool = True) -> Path:
    """Convert a PTB-XL folder into one HDF5 cache at ``out`` (atomically); returns ``out``."""
    root, out = Path(data_root), Path(out)
    sampling_rate = check_sampling_rate(sampling_rate)
    meta = load_metadata(root)
    files = meta.filenames(sampling_rate)
    present = np.array([_record_present(root, f) for f in files], dtype=bool)
    if not present.all():
        missing = [files[i] for i in np.flatnonzero(~present)]
        if not skip_missing:
            raise PTBXLError(
                f"{root}: {len(missing)} of {len(files)} records at {sampling_rate} Hz are missing "
                f"(first: {missing[0]}); pass --skip-missing to cache the {int(present.sum())} present")
        if not present.any():
            raise PTBXLError(f"{root}: none of the {len(files)} records at {sampling_rate} Hz is present")
        print(f"ecgfast cache: skipping {len(missing)} missing record(s) of {len(files)} "
              f"(first: {missing[0]})", file=sys.stderr)
    keep = np.flatnonzero(present)
    n, T = len(keep), expected_length(sampling_rate)
    fingerprint = source_fingerprint(root, sampling_rate, meta.ecg_ids[keep])
    fingerprint["skipped"] = int(len(files) - n)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    jobs = [(j, root / files[i], sampling_rate) for j, i in enumerate(keep)]
    try:
        with h5py.File(tmp, "w") as h5:
            signals = h5.create_dataset("signals", (n, len(LEADS), T), dtype="int16",
                                        chunks=(1, len(LEADS), T))
            gain = baseline = None
            bar = tqdm(total=n, desc=f"caching {sampling_rate} Hz", unit="rec", disable=not progress)
            pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
            try:
                results = (pool.imap(read_indexed_record, jobs, chunksize=32) if pool else map(read_indexed_record, jobs))
                for j, adc, g, b in results:
                    if gain is None:
                        gain, baseline = g, b
                    elif not (np.array_equal(g, gain) and np.array_equal(b, baseline)):
                        # One gain per lead for the file: re-quantise this record onto it.
                        mv = (adc.astype(np.float64) - b[:, None]) / g[:, None]
                        adc = np.round(mv * gain[:, None] + baseline[:, None])
                        if np.abs(adc).max() > 32767:
                            raise PTBXLError(f"record {jobs[j][1]}: does not fit int16 at the cache's gain")
                        adc = adc.astype(np.int16)
                    signals[j] = adc
                    bar.update()
            finally:
                bar.close()
                if pool:
                    pool.terminate()
            h5.create_dataset("gain", data=gain.astype(np.float32))
            h5.create_dataset("baseline", data=baseline.astype(np.float32))
            h5.create_dataset("ecg_id", data=meta.ecg_ids[keep])
            h5.create_dataset("patient_id", data=meta.patient_ids[keep])
            h5.create_dataset("strat_fold", data=meta.folds[keep].astype(np.int8))
            h5.create_dataset("labels", data=meta.labels[keep].astype(np.uint8))
            h5.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION, "sampling_rate": sampling_rate,
                "signal_length": T, "units": "mV", "leads": json.dumps(LEADS),
                "classes": json.dumps(meta.classes), "ptbxl_version": meta.version,
                "fingerprint": json.dumps(fingerprint), "created_by": f"ecgfast {__version__}",
            })
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


class ECGCache:
    """Read access to a cache: metadata in memory, signals on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"cache {self.path} does not exist")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise PTBXLError(f"cache {self.path}: not an HDF5 file ({exc})") from exc
        a = self._h5.attrs
        if a.get("format") != FORMAT:
            self._h5.close()
            raise PTBXLError(f"cache {self.path}: not an ecgfast PTB-XL cache")
        if int(a["format_version"]) != FORMAT_VERSION:
            self._h5.close()
            raise PTBXLError(f"cache {self.path}: format version {a['format_version']}, this ecgfast "
                             f"reads {FORMAT_VERSION}; rebuild it with `ecgfast cache`")
        self.sampling_rate = int(a["sampling_rate"])
        self.signal_length = int(a["signal_length"])
        self.classes = tuple(json.loads(a["classes"]))
        self.leads = tuple(json.loads(a["leads"]))
        self.fingerprint = json.loads(a["fingerprint"])
        h = self._h5
        self.ecg_ids = h["ecg_id"][:].astype(np.int64)
        self.patient_ids = h["patient_id"][:].astype(np.int64)
        self.folds = h["strat_fold"][:].astype(np.int64)
        self.labels = h["labels"][:].astype(np.float32)
        self.has_label = self.labels.any(axis=1)
        self.gain = torch.from_numpy(h["gain"][:].astype(np.float32))
        self.baseline = torch.from_numpy(h["baseline"][:].astype(np.float32))

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

    def raw(self, indices) -> torch.Tensor:
        """The stored int16 rows (n, 12, T) of ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"cache {self.path}: index out of range for {len(self)} records")
        unique, inverse = np.unique(idx, return_inverse=True)  # HDF5 wants increasing indices
        block = self._h5["signals"][unique] if unique.size else np.zeros((0, 12, self.signal_length), np.int16)
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
    """Open an ecgfast cache file."""
    return ECGCache(path)


def default_cache_path(data_root: str | Path, sampling_rate: int) -> Path:
    return Path(data_root) / f"ecgfast_cache_{sampling_rate}hz.h5"


def ensure_cache(data_root: str | Path | None, cache: str | Path | None = None, sampling_rate: int = 100,
                 skip_missing: bool = False, workers: int = 1, progress: bool = True) -> ECGCache:
    """Open ``cache``, building it from ``data_root`` when missing or stale.

    A cache whose fingerprint differs from ``data_root``'s (another csv, another
    record list, another sampling rate) is rebuilt, with a message saying why;
    without a ``data_root`` folder to check against, an existing cache is used as is.
    """
    if cache is None:
        if data_root is None:
            raise ValueError("give a data root, a cache file, or both")
        cache = default_cache_path(data_root, sampling_rate)
    cache = Path(cache)
    if cache.is_file():
        opened = open_cache(cache)
        if opened.sampling_rate != sampling_rate:
            opened.close()
            raise PTBXLError(f"cache {cache} holds {opened.sampling_rate} Hz signals, "
                             f"{sampling_rate} Hz were asked for")
        if data_root is None or not Path(data_root).is_dir():
            return opened  # nothing to check it against: use it as it is
        meta = load_metadata(data_root)
        files = meta.filenames(sampling_rate)
        present = np.array([_record_present(Path(data_root), f) for f in files], dtype=bool)
        if not skip_missing and not present.all():
            present[:] = True  # build_cache will name what is missing
        want = source_fingerprint(Path(data_root), sampling_rate, meta.ecg_ids[present])
        have = {k: opened.fingerprint.get(k) for k in want}
        if have == want:
            return opened
        opened.close()
        changed = [k for k in want if have[k] != want[k]]
        print(f"ecgfast: cache {cache} was built from other data ({', '.join(changed)} changed); "
              "rebuilding it", file=sys.stderr)
    if data_root is None:
        raise FileNotFoundError(f"cache {cache} does not exist and no --data-root was given to build it")
    build_cache(data_root, cache, sampling_rate, skip_missing, workers, progress)
    return open_cache(cache)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ecgfast cache", description="Convert a PTB-XL folder into one HDF5 cache.")
    p.add_argument("--data-root", required=True, type=Path, help="PTB-XL folder (with ptbxl_database.csv)")
    p.add_argument("--sampling-rate", type=int, default=100, choices=[100, 500])
    p.add_argument("--out", type=Path, default=None,
                   help="cache file (default: DATA_ROOT/ecgfast_cache_<rate>hz.h5)")
    p.add_argument("--skip-missing", action="store_true", help="cache the records present, skip the rest")
    p.add_argument("--workers", type=int, default=1, help="reader processes (default 1)")
    args = p.parse_args(argv)
    out = args.out or default_cache_path(args.data_root, args.sampling_rate)
    try:
        build_cache(args.data_root, out, args.sampling_rate, args.skip_missing, args.workers)
    except PTBXLError as exc:
        print(f"ecgfast cache: error: {exc}", file=sys.stderr)
        return 1
    with open_cache(out) as c:
        print(f"wrote {out}: {len(c)} records at {c.sampling_rate} Hz, {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
