"""Where ECGs come from: the one source protocol (``ECGSource``) and its implementations.

An ``ECGSource`` is a finite sequence of records read in chunks::

    with open_input("ptbxl/") as source:     # or a cache, a corpus manifest, WFDB records, an array
        len(source)                          # records
        source.description                   # "PTB-XL folder ptbxl at 100 Hz": for messages
        for chunk in source.chunks(256):     # Chunk(ids, signals (n, C, T), sampling_rate, leads, units)
            ...

``open_input(paths, ...)`` accepts

- an ecgfast HDF5 cache (``.h5``/``.hdf5``; ``ECGCache`` adapted by ``CacheSource``): ids are the
  ``ecg_id``\\ s;
- a PTB-XL folder (with ``ptbxl_database.csv``; ``PTBXLFolderSource``): its records read by the
  one WFDB reader (``ecgfast.data.records``) at ``sampling_rate`` (default: the model's rate when
  PTB-XL has it, else 100 Hz), ids are the ``ecg_id``\\ s;
- a text file listing WFDB record paths, one a line (relative paths are taken from the list's
  folder; blank lines and ``#`` comments skipped), or one or more WFDB record paths (``.hea``
  optional; ``RecordListSource``): any rate, format, lead names (``ecgfast.data.leads``) and
  units as the headers say, read by ``ecgfast.data.records.read_wfdb``; ids are the paths as given;
- a ``.npy`` array (N, 12, T) or (12, T) (``ArraySource``; ``sampling_rate`` required; leads in
  the model's order unless ``leads`` names them; units ``units``): ids are the row numbers;
- a corpus manifest (``*.json``) written by ``ecgfast corpus build`` (``Corpus`` adapted by
  ``CorpusSource``).

The corpus builder's layout readers (``ecgfast.data.sources.readers.Source``) are a different
thing: a work list (``items``, ``item_files``, ``index_files``) for building shards in parallel
and keeping unchanged ones; they read WFDB records through the same reader.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data.errors import MissingRecordError

__all__ = ["ArraySource", "CacheSource", "Chunk", "CorpusSource", "ECGSource", "PTBXLFolderSource",
           "RecordListSource", "RecordSource", "open_input", "read_channels"]

CACHE_SUFFIXES = (".h5", ".hdf5")


@dataclass
class Chunk:
    """Records read together: ``signals[i]`` is record ``ids[i]``."""
    ids: list[str]
    signals: np.ndarray          # (n, C, T) float32/float64
    sampling_rate: float
    leads: list[str] | None      # channel names (None: the model's order)
    units: str


@runtime_checkable
class ECGSource(Protocol):
    """Where ECGs come from: ``len(source)`` records, read in :class:`Chunk`\\ s of at most ``size``
    records by ``chunks(size)`` (records of different rates or leads come in separate chunks);
    ``description`` names the source in messages; ``close()`` releases files (also a context manager)."""

    description: str

    def __len__(self) -> int: ...

    def chunks(self, size: int) -> Iterator[Chunk]: ...

    def close(self) -> None: ...

    def __enter__(self): ...

    def __exit__(self, *exc): ...


class RecordSource:
    """The base of this module's ``ECGSource``\\ s: ``close`` does nothing, ``with`` closes."""

    description = "input"

    def __len__(self) -> int:
        raise NotImplementedError

    def chunks(self, size: int) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CacheSource(RecordSource):
    """An ecgfast HDF5 cache (``ECGCache``): ids are the ``ecg_id``\\ s."""

    def __init__(self, path: Path):
        from ecgfast.data import open_cache

        try:
            self.cache = open_cache(path)
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from None
        self.description = f"cache {path}"

    def __len__(self):
        return len(self.cache)

    def chunks(self, size):
        c = self.cache
        for start in range(0, len(c), size):
            idx = np.arange(start, min(start + size, len(c)))
            yield Chunk([str(int(i)) for i in c.ecg_ids[idx]], c.signals(idx).numpy(), c.sampling_rate,
                        list(c.leads), "mV")

    def close(self):
        self.cache.close()


class PTBXLFolderSource(RecordSource):
    """A PTB-XL folder at 100 or 500 Hz, read by the one WFDB reader: ids are the ``ecg_id``\\ s."""

    def __init__(self, root: Path, sampling_rate: int):
        from ecgfast.data import load_metadata
        from ecgfast.data.metadata import check_sampling_rate

        self.root, self.rate = root, check_sampling_rate(int(sampling_rate))
        meta = load_metadata(root)
        self.files = list(meta.filenames(self.rate))
        self.ids = [str(int(i)) for i in meta.ecg_ids]
        self.description = f"PTB-XL folder {root} at {self.rate} Hz"

    def __len__(self):
        return len(self.files)

    def chunks(self, size):
        from ecgfast import LEADS
        from ecgfast.data import read_record

        for start in range(0, len(self.files), size):
            rows = range(start, min(start + size, len(self.files)))
            x = np.stack([read_record(self.root, self.files[i], self.rate) for i in rows])
            yield Chunk([self.ids[i] for i in rows], x, self.rate, list(LEADS), "mV")


def read_channels(path: str | os.PathLike) -> tuple[np.ndarray, float, list[str]]:
    """Any WFDB record as (float32 (C, T) in mV, sampling rate, lead names as the header gives them).

    The one WFDB reader, ``ecgfast.data.records.read_wfdb``, with the file's channels kept in its
    order (a model picks its leads by name) and no length cap; ``DataError`` naming the record.
    """
    from ecgfast.data.records import read_wfdb

    x, fs, header = read_wfdb(path, leads=None, cap=None)
    return x, fs, [str(n) for n in header.sig_name]


class RecordListSource(RecordSource):
    """WFDB records, one per chunk (each with its own rate, lead names and units)."""

    def __init__(self, records: Sequence[tuple[str, Path]], description: str):
        if not records:
            raise DataError(f"{description}: no records listed")
        self.records = list(records)
        self.description = description

    def __len__(self):
        return len(self.records)

    def chunks(self, size):
        for rid, path in self.records:
            x, fs, names = read_channels(path)
            yield Chunk([rid], x[None], fs, names, "mV")

    @classmethod
    def from_list_file(cls, path: Path) -> RecordListSource:
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            raise DataError(f"input {path}: not a text file of record paths (nor .h5, .npy, a PTB-XL folder "
                            "or a WFDB record)") from None
        records = []
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            rp = Path(line)
            if not rp.is_absolute():
                rp = path.parent / rp
            if rp.suffix in (".hea", ".dat"):
                rp = rp.with_suffix("")
            if not rp.with_name(rp.name + ".hea").is_file():
                raise MissingRecordError(f"input {path} line {n}: record {line} not found ({rp}.hea does not exist)")
            records.append((line, rp))
        return cls(records, f"record list {path}")


class ArraySource(RecordSource):
    """A ``.npy`` array (N, C, T) or (C, T), memory-mapped: ids are the row numbers."""

    def __init__(self, path: Path, sampling_rate, leads, units):
        if sampling_rate is None:
            raise ConfigError(f"input {path}: a .npy array carries no sampling rate; pass --sampling-rate")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"input {path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"input {path}: array of shape {arr.shape}, expected (N, leads, T) or (leads, T)")
        if arr.dtype.kind not in "fiu":
            raise DataError(f"input {path}: array of dtype {arr.dtype}, expected numbers")
        self.arr, self.rate, self.leads, self.units = arr, sampling_rate, leads, units
        self.description = f"array {path}"

    def __len__(self):
        return self.arr.shape[0]

    def chunks(self, size):
        for start in range(0, len(self), size):
            stop = min(start + size, len(self))
            yield Chunk([str(i) for i in range(start, stop)], np.asarray(self.arr[start:stop]), self.rate,
                        None if self.leads is None else list(self.leads), self.units)


class CorpusSource(RecordSource):
    """A corpus opened by ``ecgfast.data.corpus.open_corpus(manifest)``.

    Duck-typed: ``len``, ``sampling_rate``, ``leads``, ``signals(indices)`` in mV
    and, for ids, ``metadata()["record_id"]`` (with ``"start"``: a record cut into
    several windows gives ids ``record@start``) or an ``ids``/``record_ids``
    attribute; else the row numbers. Each corpus row is embedded as one record.
    """

    def __init__(self, path: Path):
        from ecgfast.data.corpus import open_corpus

        self.corpus = c = open_corpus(path)
        self.ids = self._ids(c)
        self.rate = c.sampling_rate
        self.leads = list(getattr(c, "leads", None) or []) or None
        self.units = getattr(c, "units", "mV") or "mV"
        self.description = f"corpus {path}"

    @staticmethod
    def _ids(c) -> list[str]:
        meta = c.metadata() if callable(getattr(c, "metadata", None)) else None
        if isinstance(meta, dict) and "record_id" in meta and len(meta["record_id"]) == len(c):
            rec = [str(r) for r in meta["record_id"]]
            if len(set(rec)) == len(rec) or "start" not in meta:
                return rec
            return [f"{r}@{int(s)}" for r, s in zip(rec, meta["start"])]
        ids = next((getattr(c, a) for a in ("ids", "record_ids") if hasattr(c, a)), None)
        return [str(i) for i in (ids if ids is not None else range(len(c)))]

    def __len__(self):
        return len(self.corpus)

    def chunks(self, size):
        for start in range(0, len(self), size):
            idx = np.arange(start, min(start + size, len(self)))
            x = self.corpus.signals(idx)
            x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)  # a torch tensor or an array
            yield Chunk(self.ids[start:start + len(idx)], x, self.rate, self.leads, self.units)

    def close(self):
        close = getattr(self.corpus, "close", None)
        if close:
            close()


def _is_record(p: Path) -> bool:
    if p.suffix in (".hea", ".dat"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".hea").is_file()


def open_input(paths, *, sampling_rate=None, leads: Sequence[str] | None = None, units: str = "mV",
               model_rate: int | None = None) -> RecordSource:
    """Open ``paths`` (one path, or several WFDB record paths) as an :class:`ECGSource` (see the module doc)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("no input given")
    if len(paths) > 1:
        bad = [str(p) for p in paths if not _is_record(p)]
        if bad:
            raise DataError(f"input {bad[0]}: not a WFDB record (no .hea); several inputs must all be records")
        return RecordListSource([(str(p), p) for p in paths], f"{len(paths)} records")
    p = paths[0]
    if p.is_dir():
        if not (p / "ptbxl_database.csv").is_file():
            raise DataError(f"input {p}: a folder without ptbxl_database.csv is not a PTB-XL folder")
        if sampling_rate is None:
            sampling_rate = model_rate if model_rate in (100, 500) else 100
        return PTBXLFolderSource(p, sampling_rate)
    suffix = p.suffix.lower()
    if suffix in CACHE_SUFFIXES:
        if not p.is_file():
            raise DataError(f"input {p} does not exist")
        return CacheSource(p)
    if _is_record(p):
        return RecordListSource([(str(p), p)], f"record {p}")
    if not p.is_file():
        raise DataError(f"input {p} does not exist")
    if suffix == ".npy":
        return ArraySource(p, sampling_rate, leads, units)
    if suffix == ".json":
        return CorpusSource(p)
    return RecordListSource.from_list_file(p)
