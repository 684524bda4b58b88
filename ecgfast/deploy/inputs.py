"""Where ``ecgfast embed`` / ``predict`` read ECGs from, and the windowed inference over them.

``open_input(paths, ...)`` accepts

- an ecgfast HDF5 cache (``.h5``/``.hdf5``): ids are the ``ecg_id``\\ s;
- a PTB-XL folder (with ``ptbxl_database.csv``): its records read with wfdb at
  ``sampling_rate`` (default: the model's rate when PTB-XL has it, else 100 Hz),
  ids are the ``ecg_id``\\ s;
- a text file listing WFDB record paths, one a line (relative paths are taken
  from the list's folder; blank lines and ``#`` comments skipped), or one or
  more WFDB record paths (``.hea`` optional): any rate, lead names and units as
  the headers say; ids are the paths as given;
- a ``.npy`` array (N, 12, T) or (12, T) (``sampling_rate`` required; leads in
  the model's order unless ``leads`` names them; units ``units``): ids are the
  row numbers;
- a corpus manifest (``*.json``) written by ``ecgfast corpus build``.

Each source yields :class:`Chunk`\\ s of records. :func:`embed_records` runs a
model over any source: every record is cut into windows of the trained length
(see ``Preprocessing.windows``), the windows go through the encoder in batches,
and a record's representation is the mean over its windows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ecgfast.base.errors import ConfigError, DataError

__all__ = ["Chunk", "InputSource", "embed_records", "open_input", "read_wfdb"]

CACHE_SUFFIXES = (".h5", ".hdf5")


@dataclass
class Chunk:
    ids: list[str]
    signals: np.ndarray          # (n, C, T) float32/float64
    sampling_rate: float
    leads: list[str] | None      # channel names (None: the model's order)
    units: str


class InputSource:
    """A sequence of records: ``len(source)`` records, read in :class:`Chunk`\\ s by ``chunks(size)``."""

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


class CacheSource(InputSource):
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


class PTBXLFolderSource(InputSource):
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


def read_wfdb(path: str | os.PathLike) -> tuple[np.ndarray, float, list[str]]:
    """Any WFDB record as (float64 (C, T) in mV, sampling rate, lead names); ``DataError`` naming it on failure."""
    import wfdb

    from ecgfast.models.pretrained import UNITS

    p = Path(path)
    if p.suffix in (".hea", ".dat"):
        p = p.with_suffix("")
    if not p.with_name(p.name + ".hea").is_file():
        raise DataError(f"record {path}: header {p.name}.hea not found")
    try:
        rec = wfdb.rdrecord(str(p), physical=True)
    except Exception as exc:
        raise DataError(f"record {path}: unreadable ({type(exc).__name__}: {exc})") from None
    if rec.p_signal is None:
        raise DataError(f"record {path}: no signals")
    x = np.asarray(rec.p_signal, dtype=np.float64).T
    units = list(rec.units or ["mV"] * x.shape[0])
    factors = []
    for name, u in zip(rec.sig_name, units):
        key = str(u or "mV").strip().lower()
        if key not in UNITS:
            raise DataError(f"record {path}: lead {name} in units {u!r}; expected V, mV or uV")
        factors.append(UNITS[key] / UNITS["mv"])
    x = x * np.asarray(factors)[:, None]
    return x, float(rec.fs), [str(n) for n in rec.sig_name]


class RecordListSource(InputSource):
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
            x, fs, names = read_wfdb(path)
            yield Chunk([rid], x[None], fs, names, "mV")

    @classmethod
    def from_list_file(cls, path: Path) -> "RecordListSource":
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
                raise DataError(f"input {path} line {n}: record {line} not found ({rp}.hea does not exist)")
            records.append((line, rp))
        return cls(records, f"record list {path}")


class NpySource(InputSource):
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


class CorpusSource(InputSource):
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
        self.rate = getattr(c, "sampling_rate")
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
            x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
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
               model_rate: int | None = None) -> InputSource:
    """Open ``paths`` (one path, or several WFDB record paths) as an :class:`InputSource` (see the module doc)."""
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
        return NpySource(p, sampling_rate, leads, units)
    if suffix == ".json":
        return CorpusSource(p)
    return RecordListSource.from_list_file(p)


# ---------------------------------------------------------------------------------------------
# Windowed inference over a source
# ---------------------------------------------------------------------------------------------

def _window_batches(model, source: InputSource, batch_size: int, pad: bool, ids: list, counts: list):
    pre = model._pre
    buf: list[torch.Tensor] = []
    n_buf = 0
    for chunk in source.chunks(batch_size):
        x = np.asarray(chunk.signals)
        where = (f"{source.description}: record {chunk.ids[0]}" if len(chunk.ids) == 1
                 else f"{source.description} (records {chunk.ids[0]} to {chunk.ids[-1]})")
        w = pre.windows(x, chunk.sampling_rate, chunk.leads, chunk.units, pad=pad, where=where, ids=chunk.ids)
        n, W = w.shape[:2]
        ids.extend(chunk.ids)
        counts.extend([W] * n)
        buf.append(w.reshape(n * W, *w.shape[2:]))
        n_buf += n * W
        while n_buf >= batch_size:
            flat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield flat[:batch_size]
            rest = flat[batch_size:]
            buf, n_buf = ([rest] if rest.shape[0] else []), rest.shape[0]
    if n_buf:
        yield torch.cat(buf) if len(buf) > 1 else buf[0]


def embed_records(model, source: InputSource, *, device="cpu", batch_size: int = 256, pad: bool = False,
                  progress: bool = False, precision: str = "fp32", desc: str = "embedding") -> tuple[list[str], torch.Tensor]:
    """``(ids, embeddings (N, D) float32)``: one row per record, the mean over the record's windows (D: the
    backbone's width, 256 for ecg1dcnn)."""
    from ecgfast.models.inference import inference_loop

    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    ids: list[str] = []
    counts: list[int] = []
    model = model.to(device).eval()
    feats = inference_loop(model.encoder, _window_batches(model, source, batch_size, pad, ids, counts),
                           device=device, precision=precision, progress=progress, desc=desc,
                           unit="window", count=len)
    if not ids:
        raise DataError(f"{source.description}: no records")
    if all(c == 1 for c in counts):
        return ids, feats
    if len(set(counts)) == 1:
        return ids, feats.view(len(ids), counts[0], -1).mean(dim=1)
    return ids, torch.stack([part.mean(dim=0) for part in torch.split(feats, counts)])
