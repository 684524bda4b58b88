"""Readers of 12-lead ECG corpora: one ``Source`` per layout, every record validated.

A source lists its work ``items`` (a record, or a block of rows of a big array
file) and ``read(item)`` returns ``SourceRecord``s: float32 mV signals with
their lead names and rate, ids and labels. A record that breaks what its
layout promises raises ``DataError`` naming the file/record and the problem
(``MissingSourceRecord`` for an absent one); the corpus builder refuses it, or
skips and counts it under ``--skip-bad`` / ``--skip-missing``. Nothing is
cached silently.

Trust rules, the same for every layout:

* Confinement: every file a reader opens (a header's signal file, a
  ``record_list.csv`` path, a CODE-15 part, an array file, a csv beside it) is
  resolved, symlinks included, and must lie inside the source folder; symlinks
  that stay inside are followed, any other path is refused with
  ``UnsafePathError`` (never skipped, even under ``--skip-bad``). A header's
  signal file must be a plain file name in the record's folder.
* Bounded memory: a record longer than ``MAX_RECORD_SAMPLES`` samples per lead
  (option ``max_record_samples``), a rate outside ``RATE_RANGE`` Hz, a gain that
  is zero, missing, negative or not finite, or a header over ``MAX_HEADER_BYTES``
  is refused before any sample is read; array files are read a block of rows at
  a time (``.npz`` members streamed, never loaded whole).
* Per-record errors: ``read_records(item)`` yields each record of an item, or
  the ``DataError`` of that record alone, so one bad row of an array file costs
  one record under ``--skip-bad``.
* Index records that no file holds (a CODE-15 exam in ``exams.csv`` absent from
  every part) are reported by ``absent()`` and counted as missing.

WFDB records (PTB-XL, CinC 2021, MIMIC-IV-ECG) are read by the one WFDB reader,
``ecgfast.data.records`` (``read_wfdb``, ``read_record_digital``): the header rules,
units and lead names (``ecgfast.data.leads``) are the ones inference applies.

Layouts (``ecgfast.data.sources.LAYOUTS``): ``ptbxl``, ``cinc2021``,
``mimic-iv-ecg``, ``code15``, ``numpy`` -- see ``ecgfast.data.sources.synthetic``
for each layout's files.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecgfast import CLASSES, LEADS
from ecgfast.base.errors import DataError
from ecgfast.data.errors import MissingSourceRecord, UnsafePathError  # noqa: F401  (MissingSourceRecord: re-exported)
from ecgfast.data.leads import LEAD_ALIASES, lead_order  # noqa: F401  (re-exported: the one lead table)
from ecgfast.data.records import (  # noqa: F401
    MAX_HEADER_BYTES,
    MAX_RECORD_SAMPLES,
    RATE_RANGE,
    WfdbHeader,
    check_length,
    check_rate,
    check_signal,
    parse_header,
    read_wfdb,
)
from ecgfast.data.sources.snomed import superclass_labels


@dataclass
class SourceRecord:
    source: str                 # e.g. "cinc2021/WFDB_Ga", "mimic-iv-ecg"
    record_id: str
    signal: np.ndarray          # float32 (n_leads, n) mV, rows named by ``leads``
    leads: tuple
    sampling_rate: float
    patient_id: int = -1        # -1: unknown
    labels: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES), np.uint8))
    has_label: bool = False
    fold: int = 0               # PTB-XL strat_fold where known, else 0
    age: float = float("nan")   # years, NaN unknown
    sex: str = ""               # "M", "F" or "" unknown
    where: str = ""             # the record and its file, for messages (e.g. "record /data/x/A1")


class Source:
    layout = ""

    def __init__(self, root, max_record_samples: int = MAX_RECORD_SAMPLES, **options):
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.root}: no such folder or file")
        if isinstance(max_record_samples, bool) or not isinstance(max_record_samples, (int, np.integer)) \
                or max_record_samples < 1:
            raise DataError(f"max_record_samples must be a positive integer, got {max_record_samples!r}")
        self.max_samples = int(max_record_samples)
        self.options = options
        # the folder every opened file must resolve into (a file source: its folder)
        self.base = self.root if self.root.is_dir() else self.root.parent
        self._real_base = os.path.realpath(self.base)

    def confine(self, path, where: str) -> Path:
        """``path`` itself; ``UnsafePathError`` unless it resolves (symlinks followed) inside the source folder.

        Links that stay inside are followed (a mirror may link shared files); anything resolving
        outside is refused, whatever the link or ``..`` chain, so a crafted header or csv cannot read
        (or probe) other files.
        """
        text = os.fspath(path)
        if not text or "\0" in text:
            raise UnsafePathError(f"{where}: empty or NUL-containing path {text!r}")
        real = os.path.realpath(text)
        if real != self._real_base and not real.startswith(self._real_base.rstrip(os.sep) + os.sep):
            raise UnsafePathError(f"{where}: path {text} resolves to {real}, outside the source folder "
                                  f"{self.base}; files a {self.layout} source reads must stay inside it")
        return Path(path)

    def absent(self) -> list[str]:
        """One message per record that the layout's index lists but no file holds (counted as missing)."""
        return []

    def read_records(self, item):
        """Each record of ``item`` as a ``SourceRecord``, or the ``DataError`` of that record alone.

        An error of the whole item (an unreadable file) is raised. Array layouts override this so a
        bad row costs one record; the default is ``read``'s records.
        """
        yield from self.read(item)

    def items(self) -> list:
        raise NotImplementedError

    def item_files(self, item) -> list[Path]:
        raise NotImplementedError

    def item_size(self, item) -> int:
        """Records in an item (1 unless it is a block of rows)."""
        return 1

    def read(self, item) -> list[SourceRecord]:
        raise NotImplementedError

    def index_files(self) -> list[Path]:
        """Files whose change invalidates the whole corpus (csvs)."""
        return []


class _RowBlockSource(Source):
    """A layout whose items are blocks of rows (array files, CODE-15 parts): ``read_records`` yields
    each row's record or its own error; ``read`` is all of them, or the first error."""

    def read(self, item) -> list[SourceRecord]:
        out = []
        for r in self.read_records(item):
            if isinstance(r, Exception):
                raise r
            out.append(r)
        return out


def _header_comments(header) -> dict:
    out = {}
    for c in header.comments or []:
        key, sep, value = c.lstrip("#").partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _float_or_nan(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) and v >= 0 else float("nan")


def _int_or(value, default=-1):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


class PTBXLSource(Source):
    """PTB-XL read by ``ecgfast.data.records`` at 100 or 500 Hz (``sampling_rate`` option)."""
    layout = "ptbxl"

    def __init__(self, root, sampling_rate: int = 500, **options):
        super().__init__(root, **options)
        from ecgfast.data.metadata import load_metadata

        self.rate = int(sampling_rate)
        self.meta = load_metadata(self.root)
        self.files = self.meta.filenames(self.rate)

    def index_files(self):
        return [self.root / "ptbxl_database.csv", self.root / "scp_statements.csv"]

    def items(self):
        return list(range(len(self.files)))

    def item_files(self, i):
        p = self.root / self.files[i]
        return [p.with_name(p.name + ".hea"), p.with_name(p.name + ".dat")]

    def read(self, i):
        from ecgfast.data.records import read_record_digital

        # root: the csv path and the header's .dat are confined to the PTB-XL folder
        adc, gain, baseline = read_record_digital(self.root / self.files[i], self.rate, root=self.root)
        mv = (adc.astype(np.float32) - baseline[:, None]) / gain[:, None]
        m = self.meta
        row = m.records.iloc[i]
        sex = {0: "M", 1: "F"}.get(_int_or(row.get("sex")), "")  # PTB-XL: 0 male, 1 female
        return [SourceRecord("ptbxl", str(int(m.ecg_ids[i])), mv, LEADS, self.rate, int(m.patient_ids[i]),
                             m.labels[i].astype(np.uint8), bool(m.has_label[i]), int(m.folds[i]),
                             age=_float_or_nan(row.get("age")), sex=sex, where=f"record {self.root / self.files[i]}")]


class CinC2021Source(Source):
    """PhysioNet/CinC Challenge 2021: ``WFDB_*/NAME.hea|.mat`` (format 16 at a byte offset in a MATLAB v4 file)."""
    layout = "cinc2021"

    def items(self):
        heas = sorted(self.root.rglob("*.hea"))
        if not heas:
            raise DataError(f"{self.root}: no .hea headers found: not a CinC 2021 folder")
        return [str(h.relative_to(self.root).with_suffix("")) for h in heas]

    def item_files(self, item):
        p = self.root / item
        return [p.with_name(p.name + ".hea"), p.with_name(p.name + ".mat")]

    def read(self, item):
        path = self.root / item
        mv, fs, header = read_wfdb(path, confine=self.confine, cap=self.max_samples)
        dat = set(header.file_name).pop()
        if not dat.endswith(".mat"):
            raise DataError(f"record {path}: signal file {dat}, expected a .mat (CinC 2021 layout)")
        info = _header_comments(header)
        if "dx" not in info:
            raise DataError(f"record {path}: header has no '#Dx:' line")
        codes = [c for c in info["dx"].replace(";", ",").split(",") if c.strip()]
        y = superclass_labels(codes)
        db = path.parent.name
        age = _float_or_nan(info.get("age"))
        sex = {"male": "M", "m": "M", "female": "F", "f": "F"}.get(info.get("sex", "").strip().lower(), "")
        return [SourceRecord(f"cinc2021/{db}", path.name, mv, LEADS, fs, -1, y, bool(y.any()), age=age, sex=sex,
                             where=f"record {path}")]


def _id_column(values, csv, name: str, missing: int | None = None) -> np.ndarray:
    """int64 ids of an index column: ``DataError`` naming ``csv`` and ``name`` for a value that is not a finite
    integer within int64 (an empty cell is ``missing`` where given) -- never a silent wrap or truncation."""
    n = pd.to_numeric(pd.Series(values), errors="coerce")
    if pd.api.types.is_integer_dtype(n.dtype):  # every cell an integer that fits: exact, as it was
        return n.to_numpy(np.int64)
    v = n.astype(np.float64)  # floats: exact integers only up to 2**53
    empty = pd.Series(values).isna() | (pd.Series(values).astype(str).str.strip() == "")
    if missing is not None:
        v[empty] = missing
    bad = ~np.isfinite(v) | (v != np.round(v)) | (np.abs(v) >= 2.0**53)
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raw = pd.Series(values).iloc[k]
        shown = f"{raw:g}" if isinstance(raw, float) else repr(raw)
        raise DataError(f"{csv}: {name} row {k + 1} holds {shown}, not an integer id")
    return v.to_numpy().astype(np.int64)


class MIMICSource(Source):
    """MIMIC-IV-ECG: ``record_list.csv`` and ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.hea|.dat``."""
    layout = "mimic-iv-ecg"

    def __init__(self, root, **options):
        super().__init__(root, **options)
        csv = self.root / "record_list.csv"
        if not csv.is_file():
            raise DataError(f"{self.root}: record_list.csv not found: not a MIMIC-IV-ECG folder")
        df = pd.read_csv(csv)
        need = {"subject_id", "study_id", "path"}
        if not need <= set(df.columns):
            raise DataError(f"{csv}: lacks column(s) {sorted(need - set(df.columns))}")
        if df["path"].isna().any():
            raise DataError(f"{csv}: {int(df['path'].isna().sum())} row(s) without a path")
        self.csv = csv
        self.paths = df["path"].astype(str).tolist()
        for k, rel in enumerate(self.paths):  # a path is relative to the folder; where it leads: read()
            if not rel.strip() or "\0" in rel or os.path.isabs(rel) or rel.startswith("\\"):
                raise UnsafePathError(f"{csv} row {k + 1}: path {rel!r} is empty or absolute; record paths are "
                                      f"relative to {self.root}")
        self.subjects = _id_column(df["subject_id"], csv, "subject_id")
        self.studies = _id_column(df["study_id"], csv, "study_id")

    def index_files(self):
        return [self.root / "record_list.csv"]

    def items(self):
        return list(range(len(self.paths)))

    def item_files(self, i):
        p = self.root / self.paths[i]
        return [p.with_name(p.name + ".hea"), p.with_name(p.name + ".dat")]

    def read(self, i):
        path = self.root / self.paths[i]
        where = f"record {path} (study {self.studies[i]}, {self.csv.name} row {i + 1})"
        mv, fs, _ = read_wfdb(path, where, confine=self.confine, cap=self.max_samples)
        return [SourceRecord("mimic-iv-ecg", str(self.studies[i]), mv, LEADS, fs, int(self.subjects[i]),
                             where=where)]


# --- array files ----------------------------------------------------------------------------

CODE15_RATE = 400
CODE15_LENGTH = 4096
CODE15_LABELS = {"1dAVb": "CD", "RBBB": "CD", "LBBB": "CD", "normal_ecg": "NORM"}  # SB, ST, AF: rhythms only


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0", "yes")


class Code15Source(_RowBlockSource):
    """CODE-15%: ``exams.csv`` and ``exams_partK.hdf5`` (``tracings`` (N, 4096, 12) mV at 400 Hz, ``exam_id``).

    Zero padding around a 7-10 s exam is cut off (leading and trailing samples
    zero in every lead). Labels: 1dAVb, RBBB, LBBB -> CD; normal_ecg -> NORM;
    SB, ST, AF are rhythms with no superclass. Rows of exam_id 0 (the all-zero
    row closing each real part file) are skipped; any other exam_id absent from
    exams.csv is a missing record (skipped, counted, with ``skip_missing``), and
    so is an exam of exams.csv that no part holds (``absent()``: a part not
    downloaded). A bad row (NaN, all zeros) costs that row alone.
    """
    layout = "code15"
    block = 512

    def __init__(self, root, **options):
        super().__init__(root, **options)
        import h5py

        csv = self.confine(self.root / "exams.csv", f"{self.root}")
        if not csv.is_file():
            raise DataError(f"{self.root}: exams.csv not found: not a CODE-15% folder")
        df = pd.read_csv(csv)
        need = {"exam_id", "patient_id", "trace_file", *CODE15_LABELS}
        if not need <= set(df.columns):
            raise DataError(f"{csv}: lacks column(s) {sorted(need - set(df.columns))}")
        exam = pd.to_numeric(df["exam_id"], errors="coerce")
        if exam.isna().any() or exam.duplicated().any() or (exam != exam.round()).any():
            raise DataError(f"{csv}: exam_id has empty, non-integer or repeated values")
        self.exam_ids = _id_column(df["exam_id"], csv, "exam_id")
        self.row_of = {int(e): i for i, e in enumerate(self.exam_ids)}
        self.patient = _id_column(df["patient_id"], csv, "patient_id", missing=-1)
        self.age = pd.to_numeric(df["age"], errors="coerce").to_numpy(np.float64) if "age" in df else None
        self.male = df["is_male"].map(_truthy).to_numpy() if "is_male" in df else None
        self.trace_file = df["trace_file"].astype(str).to_numpy()
        self.y = np.zeros((len(df), len(CLASSES)), np.uint8)
        for col, cls in CODE15_LABELS.items():
            self.y[:, CLASSES.index(cls)] |= df[col].map(_truthy).to_numpy(dtype=np.uint8)
        self.parts = sorted(self.root.glob("exams_part*.hdf5"), key=lambda p: _int_or(p.stem[10:], 0))
        if not self.parts:
            raise DataError(f"{self.root}: no exams_part*.hdf5 files")
        self.rows, held = {}, set()
        for p in self.parts:
            self.confine(p, f"part file {p}")
            try:
                with h5py.File(p, "r") as f:
                    tr, ids = f.get("tracings"), f.get("exam_id")
                    if tr is None or ids is None:
                        raise DataError(f"{p}: lacks dataset 'tracings' or 'exam_id'")
                    if tr.ndim != 3 or tr.shape[1:] != (CODE15_LENGTH, 12):
                        raise DataError(f"{p}: tracings of shape {tr.shape}, expected (N, {CODE15_LENGTH}, 12)")
                    if tr.dtype.kind != "f":
                        raise DataError(f"{p}: tracings of dtype {tr.dtype}, expected float")
                    if ids.shape != (tr.shape[0],) or ids.dtype.kind not in "iu":
                        raise DataError(f"{p}: exam_id of {ids.dtype} {ids.shape} for {tr.shape[0]} tracings, "
                                        "expected integers, one per tracing")
                    held.update(int(e) for e in ids[()])  # N integers: small beside the tracings
                    self.rows[p.name] = tr.shape[0]
            except OSError as exc:
                raise DataError(f"{p}: not a readable HDF5 file ({exc})") from exc
        self._absent = [i for i, e in enumerate(self.exam_ids) if int(e) not in held]

    def index_files(self):
        return [self.root / "exams.csv"]

    def absent(self):
        return [f"{self.root / 'exams.csv'}: exam_id {self.exam_ids[i]} (trace_file {self.trace_file[i]}) is in "
                "no exams_part*.hdf5 file" for i in self._absent]

    def items(self):
        return [(p.name, s, min(s + self.block, self.rows[p.name]))
                for p in self.parts for s in range(0, self.rows[p.name], self.block)]

    def item_files(self, item):
        return [self.root / item[0]]

    def item_size(self, item):
        return item[2] - item[1]

    def read_records(self, item):
        import h5py

        name, start, stop = item
        path = self.confine(self.root / name, f"part file {self.root / name}")
        try:
            with h5py.File(path, "r") as f:
                tr = f["tracings"][start:stop]
                ids = f["exam_id"][start:stop].astype(np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path} rows {start}-{stop - 1}: unreadable ({exc})") from exc
        for k, (x, exam) in enumerate(zip(tr, ids)):
            where = f"{path} row {start + k} (exam_id {exam})"
            if exam == 0 and not np.any(x):
                continue
            i = self.row_of.get(int(exam))
            if i is None:
                yield MissingSourceRecord(f"{where}: exam_id not in exams.csv")
                continue
            try:
                finite = np.isfinite(x)
                if not finite.all():
                    raise DataError(f"{where}: holds {int((~finite).sum())} NaN/infinite sample(s)")
                nz = np.flatnonzero(np.any(x != 0, axis=1))
                if nz.size == 0:
                    raise DataError(f"{where}: tracing is all zeros")
                sig = np.ascontiguousarray(x[nz[0]:nz[-1] + 1].T, dtype=np.float32)
                check_signal(sig, CODE15_RATE, where, self.max_samples)
            except DataError as exc:
                yield exc
                continue
            y = self.y[i].copy()
            age = _float_or_nan(self.age[i]) if self.age is not None else float("nan")
            sex = ("M" if self.male[i] else "F") if self.male is not None else ""
            yield SourceRecord("code15", str(exam), sig, LEADS, CODE15_RATE, int(self.patient[i]),
                               y, bool(y.any()), age=age, sex=sex, where=where)


class _NpzRows:
    """Rows of one array member of an ``.npz``, read a block at a time (the member is streamed, never loaded whole).

    ``np.load`` of an npz member decompresses all of it into memory; here the member's
    npy header is parsed and rows are read from the (possibly deflated) stream at their offset.
    """

    def __init__(self, file: Path, key: str):
        self.file, self.key = file, key
        try:
            with zipfile.ZipFile(file) as z:
                if f"{key}.npy" not in z.namelist():
                    raise DataError(f"{file}: no array {key!r} (holds {sorted(n[:-4] for n in z.namelist())})")
                with z.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read(f)
                    self.data_offset = f.tell()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DataError(f"{file}: not a readable .npz ({exc})") from exc
        if dtype.hasobject:
            raise DataError(f"{file}: array {key!r} holds Python objects (dtype {dtype}); save numbers")
        if fortran and len(shape) > 1:
            raise DataError(f"{file}: array {key!r} is Fortran-ordered; save it C-ordered (np.ascontiguousarray)")
        self.shape, self.dtype, self.ndim = tuple(shape), dtype, len(shape)

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with zipfile.ZipFile(self.file) as z, z.open(f"{self.key}.npy") as f:
            f.seek(self.data_offset + start * row_bytes)
            buf = f.read((stop - start) * row_bytes)
        if len(buf) != (stop - start) * row_bytes:
            raise DataError(f"{self.file}: array {self.key!r} is truncated")
        return np.frombuffer(buf, self.dtype).reshape((stop - start,) + self.shape[1:])


def _scalar(value, what: str, where) -> float:
    """A finite float from a metadata value; ``DataError`` for arrays, objects, text."""
    a = np.asarray(value)
    if a.dtype.hasobject or a.dtype.kind not in "iuf" or a.size != 1 or a.ndim > 1:
        raise DataError(f"{where}: {what} must be one number, got {a.dtype} array of shape {a.shape}")
    v = float(a.reshape(-1)[0])
    if not math.isfinite(v):
        raise DataError(f"{where}: {what} is {v}")
    return v


class NumpySource(_RowBlockSource):
    """Arrays: ``.npy`` / ``.npz`` (key ``signals``) of shape (N, 12, T), leads in standard order.

    Float arrays are millivolts; integer arrays are ADC counts and need ``adc_gain``
    (counts per mV, ``--adc-gain``): without it they are refused rather than taken
    as mV. ``adc_gain`` also rescales float arrays in other units (1000 for uV).
    The sampling rate comes from the ``sampling_rate`` option, an npz key
    ``sampling_rate`` or a ``sampling_rate.txt`` beside the file. An optional csv
    (``records.csv`` beside it, or the ``csv`` option) gives one row per record:
    ``id``, optionally ``patient_id`` and the class columns CD, HYP, MI, NORM, STTC
    (0/1). Rows are read a block at a time (``.npy`` memory-mapped, ``.npz``
    streamed); a bad row (NaN) costs that record alone.
    """
    layout = "numpy"
    block = 1024

    def __init__(self, root, sampling_rate=None, csv=None, adc_gain=None, **options):
        super().__init__(root, **options)
        root = self.root
        self.file = root if root.is_file() else next(
            (p for p in (root / "signals.npy", root / "signals.npz") if p.is_file()), None)
        if self.file is None:
            raise DataError(f"{root}: no signals.npy or signals.npz")
        self.confine(self.file, f"array file {self.file}")
        if self.file.suffix not in (".npy", ".npz"):
            raise DataError(f"{self.file}: expected a .npy or .npz file")
        arr = self._array()
        rate = sampling_rate
        if self.file.suffix == ".npz" and rate is None:
            try:
                with np.load(self.file, allow_pickle=False) as z:  # only this small member is read
                    if "sampling_rate" in z.files:
                        rate = _scalar(z["sampling_rate"], "key 'sampling_rate'", self.file)
            except DataError:
                raise
            except ValueError as exc:  # an object array: pickles are never loaded
                raise DataError(f"{self.file}: key 'sampling_rate' is not a plain number ({exc})") from None
        txt = self.file.parent / "sampling_rate.txt"
        if rate is None and txt.is_file():
            self.confine(txt, f"{txt}")
            try:
                rate = float(txt.read_text(errors="replace").strip())
            except ValueError:
                raise DataError(f"{txt}: expected one number (Hz), got {txt.read_text(errors='replace')[:40]!r}") \
                    from None
        if rate is None:
            raise DataError(f"{self.file}: sampling rate unknown: pass --source-rate")
        self.rate = check_rate(rate, f"{self.file}")
        if arr.ndim != 3 or arr.shape[1] != 12:
            raise DataError(f"{self.file}: array of shape {arr.shape}, expected (N, 12, T)")
        if arr.dtype.hasobject or arr.dtype.kind not in "fiu":
            raise DataError(f"{self.file}: array of dtype {arr.dtype}, expected float (mV) or integer (with "
                            "--adc-gain)")
        if adc_gain is not None:
            self.gain = _scalar(adc_gain, "adc_gain", self.file)
            if self.gain <= 0:
                raise DataError(f"{self.file}: adc_gain must be > 0, got {adc_gain}")
        elif arr.dtype.kind in "iu":  # counts are not millivolts: a silent guess would scale every sample
            raise DataError(f"{self.file}: array of integer dtype {arr.dtype} holds ADC counts, not mV: pass "
                            "--adc-gain COUNTS_PER_MV (or save float mV)")
        else:
            self.gain = None
        if arr.shape[2] < 1 or arr.shape[0] < 1:
            raise DataError(f"{self.file}: empty array of shape {arr.shape}")
        check_length(arr.shape[2], f"{self.file}", self.max_samples)
        self.n = arr.shape[0]
        self.block = max(1, min(self.block, (64 << 20) // max(1, 12 * arr.shape[2] * 4)))  # ~64 MB a block
        given = bool(csv)  # a csv the user named is trusted like --source; the one beside the file is confined
        csv = Path(csv) if csv else self.file.parent / "records.csv"
        self.csv = csv if csv.is_file() else None
        self.ids = np.array([str(i) for i in range(self.n)])
        self.patients = np.full(self.n, -1, np.int64)
        self.labels = np.zeros((self.n, len(CLASSES)), np.uint8)
        self.labelled = False
        if self.csv is not None:
            if not given:
                self.confine(self.csv, f"{self.csv}")
            df = pd.read_csv(self.csv)
            if len(df) != self.n:
                raise DataError(f"{self.csv}: {len(df)} rows for {self.n} records in {self.file.name}")
            if "id" in df:
                if df["id"].isna().any():
                    raise DataError(f"{self.csv}: {int(df['id'].isna().sum())} row(s) without an id")
                self.ids = df["id"].astype(str).to_numpy()
            if "patient_id" in df:
                pid = pd.to_numeric(df["patient_id"], errors="coerce")
                bad = pid.notna() & (pid != pid.round())
                if (df["patient_id"].notna() & pid.isna()).any() or bad.any():
                    raise DataError(f"{self.csv}: patient_id holds non-integer values")
                self.patients = _id_column(df["patient_id"], self.csv, "patient_id", missing=-1)
            cols = [c for c in CLASSES if c in df]
            if cols:
                self.labelled = True
                for c in cols:
                    v = pd.to_numeric(df[c].map(lambda x: {"True": 1, "False": 0, True: 1, False: 0}.get(x, x)),
                                      errors="coerce")
                    if (df[c].notna() & ~v.isin([0, 1])).any():
                        raise DataError(f"{self.csv}: label column {c} holds values other than 0/1")
                    self.labels[:, CLASSES.index(c)] = v.fillna(0).astype(bool).to_numpy()

    def _array(self):
        if self.file.suffix == ".npz":
            return _NpzRows(self.file, "signals")
        try:
            return np.load(self.file, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{self.file}: not a .npy array of numbers ({exc})") from exc
        except OSError as exc:
            raise DataError(f"{self.file}: unreadable ({exc})") from exc

    def index_files(self):
        return [self.csv] if self.csv else []

    def items(self):
        return [(s, min(s + self.block, self.n)) for s in range(0, self.n, self.block)]

    def item_files(self, item):
        return [self.file]

    def item_size(self, item):
        return item[1] - item[0]

    def read_records(self, item):
        start, stop = item
        try:
            arr = self._array()[start:stop]
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.file} records {start}-{stop - 1}: unreadable ({exc})") from exc
        for k in range(stop - start):
            i = start + k
            where = f"{self.file} record {i} (id {self.ids[i]})"
            sig = np.asarray(arr[k], dtype=np.float32)
            if self.gain is not None:
                sig = sig / np.float32(self.gain)
            try:
                check_signal(sig, self.rate, where, self.max_samples)
            except DataError as exc:
                yield exc
                continue
            yield SourceRecord("numpy", str(self.ids[i]), sig, LEADS, self.rate, int(self.patients[i]),
                               self.labels[i], bool(self.labelled and self.labels[i].any()), where=where)


SOURCES = {cls.layout: cls for cls in (PTBXLSource, CinC2021Source, MIMICSource, Code15Source, NumpySource)}


def open_source(layout: str, root, **options) -> Source:
    """The reader of ``layout`` over ``root`` (a folder, or a .npy/.npz file for ``numpy``)."""
    if layout not in SOURCES:
        raise DataError(f"unknown layout {layout!r}; choose from {', '.join(SOURCES)}")
    return SOURCES[layout](root, **options)
