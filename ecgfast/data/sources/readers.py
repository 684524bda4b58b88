"""Readers of 12-lead ECG corpora: one ``Source`` per layout, every record validated.

A source lists its work ``items`` (a record, or a block of rows of a big array
file) and ``read(item)`` returns ``SourceRecord``s: float32 mV signals with
their lead names and rate, ids and labels. A record that breaks what its
layout promises raises ``DataError`` naming the file/record and the problem
(``MissingSourceRecord`` for an absent one); the corpus builder refuses it, or
skips and counts it under ``--skip-bad`` / ``--skip-missing``. Nothing is
cached silently.

Layouts: ``ptbxl`` (wraps ``ecgfast.data.records``), ``cinc2021``,
``mimic-iv-ecg``, ``code15``, ``numpy`` -- see ``ecgfast.data.sources.synthetic``
for each layout's files.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecgfast import CLASSES, LEADS
from ecgfast.errors import DataError
from ecgfast.data.sources.snomed import superclass_labels

LEAD_ALIASES = {"DI": "I", "DII": "II", "DIII": "III", "D1": "I", "D2": "II", "D3": "III"}
LAYOUTS = ("ptbxl", "cinc2021", "mimic-iv-ecg", "code15", "numpy")


class MissingSourceRecord(DataError):
    """A record the layout's index names is absent (a partial download)."""


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


def lead_order(names, where: str) -> np.ndarray:
    """Row index of each standard lead (I, II, ..., V6) in ``names``, matched case-insensitively.

    A record missing any of the 12 leads is refused (no masking: every window in
    a corpus has all 12 leads), as is one naming a lead twice.
    """
    upper = [LEAD_ALIASES.get(str(n).strip().upper(), str(n).strip().upper()) for n in names]
    if len(set(upper)) != len(upper):
        raise DataError(f"{where}: lead names {list(names)} repeat a lead")
    missing = [l for l in LEADS if l not in upper]
    if missing:
        raise DataError(f"{where}: lacks lead(s) {missing} of the standard 12 (has {list(names)})")
    return np.array([upper.index(l) for l in LEADS])


def check_signal(sig: np.ndarray, fs, where: str) -> None:
    if not (isinstance(fs, (int, float, np.integer, np.floating)) and math.isfinite(fs) and fs > 0):
        raise DataError(f"{where}: invalid sampling rate {fs!r}")
    if sig.ndim != 2 or sig.shape[1] < 1:
        raise DataError(f"{where}: signal of shape {sig.shape}, expected (leads, samples) with samples > 0")
    bad = ~np.isfinite(sig)
    if bad.any():
        raise DataError(f"{where}: holds {int(bad.sum())} NaN/infinite sample(s)")


class Source:
    layout = ""

    def __init__(self, root, **options):
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.root}: no such folder or file")
        self.options = options

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


# --- WFDB ---------------------------------------------------------------------------------

@dataclass
class WfdbHeader:
    """The parts of a WFDB header the readers use (the same names as ``wfdb.Record``'s)."""
    record_name: str
    n_sig: int
    fs: float
    sig_len: int
    file_name: list
    fmt: list
    byte_offset: list
    adc_gain: list
    baseline: list
    units: list
    sig_name: list
    comments: list


_SIG_FMT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")


def parse_header(text: str, where: str) -> WfdbHeader:
    """A single-segment WFDB header (the record line, one line per signal, ``#`` comments).

    wfdb's own parser costs ~50 ms a header (pandas per field); this one reads the
    fields the corpus readers need in microseconds, and refuses what it does not
    understand (multi-segment records, odd fields) with the record named.
    """
    lines, comments = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line.lstrip("#").strip())
        else:
            lines.append(line.split("#", 1)[0].split())
    if not lines or len(lines[0]) < 2:
        raise DataError(f"{where}: header has no record line")
    rec = lines[0]
    if "/" in rec[0]:
        raise DataError(f"{where}: multi-segment records are not supported")
    try:
        n_sig = int(rec[1])
        fs = float(rec[2].split("/")[0].split("(")[0]) if len(rec) > 2 else 250.0
        sig_len = int(rec[3]) if len(rec) > 3 else 0
    except ValueError as exc:
        raise DataError(f"{where}: malformed record line {' '.join(rec)!r}") from exc
    sigs = lines[1:]
    if len(sigs) != n_sig:
        raise DataError(f"{where}: header announces {n_sig} signals but describes {len(sigs)}")
    h = WfdbHeader(rec[0], n_sig, fs, sig_len, [], [], [], [], [], [], [], comments)
    for k, f in enumerate(sigs):
        m = _SIG_FMT.match(f[1]) if len(f) > 1 else None
        if not m:
            raise DataError(f"{where}: signal line {k + 1} has no valid format field")
        fmt, spf, skew, off = m.groups()
        if spf not in (None, "1") or skew not in (None, "0"):
            raise DataError(f"{where}: samples-per-frame / skew fields are not supported")
        gain, base, units = 200.0, None, "mV"
        if len(f) > 2:
            g = _GAIN.match(f[2])
            if not g:
                raise DataError(f"{where}: signal line {k + 1}: malformed gain field {f[2]!r}")
            gain = float(g.group(1)) or 200.0
            base = int(g.group(2)) if g.group(2) is not None else None
            units = g.group(3) or "mV"
        adc_zero = int(f[4]) if len(f) > 4 else 0
        h.file_name.append(f[0])
        h.fmt.append(fmt)
        h.byte_offset.append(int(off or 0))
        h.adc_gain.append(gain)
        h.baseline.append(adc_zero if base is None else base)
        h.units.append(units)
        h.sig_name.append(" ".join(f[8:]) if len(f) > 8 else f"sig{k}")
    return h


def read_wfdb(path: Path, where: str | None = None):
    """(float32 (12, n) mV in standard lead order, fs, header) of a WFDB format-16 record, validated.

    The header is parsed here and the samples read with ``np.fromfile`` at the
    header's byte offset (a CinC ``.mat`` is format 16 after its 24-byte MATLAB
    v4 header); the tests check the result against ``wfdb.rdrecord``.
    """
    where = where or f"record {path}"
    hea = path.with_name(path.name + ".hea")
    if not hea.is_file():
        raise MissingSourceRecord(f"{where}: header {hea.name} not found")
    try:
        header = parse_header(hea.read_text(errors="replace"), where)
    except OSError as exc:
        raise DataError(f"{where}: unreadable header ({exc})") from exc
    order = lead_order(header.sig_name, where)
    if not math.isfinite(header.fs) or header.fs <= 0:
        raise DataError(f"{where}: invalid sampling rate {header.fs!r}")
    if header.sig_len < 1:
        raise DataError(f"{where}: header gives {header.sig_len} samples")
    if set(header.fmt) != {"16"}:
        raise DataError(f"{where}: signal format {sorted(set(header.fmt))}, expected 16")
    files = set(header.file_name)
    if len(files) != 1 or len(set(header.byte_offset)) != 1:
        raise DataError(f"{where}: signals spread over {len(files)} files, expected one")
    dat = path.with_name(files.pop())
    if not dat.is_file():
        raise MissingSourceRecord(f"{where}: signal file {dat.name} not found")
    offset = header.byte_offset[0]
    count = header.sig_len * header.n_sig
    want = offset + count * 2
    have = dat.stat().st_size
    if have < want:
        raise DataError(f"{where}: {dat.name} is truncated ({have} bytes, header implies {want})")
    if any(u.lower() != "mv" for u in header.units):
        raise DataError(f"{where}: units {sorted(set(header.units))}, expected mV")
    gain = np.asarray(header.adc_gain, dtype=np.float64)
    if np.any(gain <= 0):
        raise DataError(f"{where}: non-positive ADC gain {gain.tolist()}")
    try:
        adc = np.fromfile(dat, dtype="<i2", count=count, offset=offset).reshape(header.sig_len, header.n_sig)
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: unreadable signal file {dat.name} ({exc})") from exc
    missing = adc == -32768  # WFDB format 16's "no sample"
    if missing.any():
        raise DataError(f"{where}: holds {int(missing.sum())} missing (NaN) sample(s)")
    base = np.asarray(header.baseline, np.float64)[order, None]
    mv = (adc.T[order] - base) / gain[order, None]
    return mv.astype(np.float32), float(header.fs), header


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
        from ecgfast.data.records import MissingRecordError, read_record_digital

        try:
            adc, gain, baseline = read_record_digital(self.root / self.files[i], self.rate)
        except MissingRecordError as exc:
            raise MissingSourceRecord(str(exc)) from exc
        mv = (adc.astype(np.float32) - baseline[:, None]) / gain[:, None]
        m = self.meta
        row = m.records.iloc[i]
        sex = {0: "M", 1: "F"}.get(_int_or(row.get("sex")), "")  # PTB-XL: 0 male, 1 female
        return [SourceRecord("ptbxl", str(int(m.ecg_ids[i])), mv, LEADS, self.rate, int(m.patient_ids[i]),
                             m.labels[i].astype(np.uint8), bool(m.has_label[i]), int(m.folds[i]),
                             age=_float_or_nan(row.get("age")), sex=sex)]


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
        mv, fs, header = read_wfdb(path)
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
        return [SourceRecord(f"cinc2021/{db}", path.name, mv, LEADS, fs, -1, y, bool(y.any()), age=age, sex=sex)]


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
        self.paths = df["path"].astype(str).tolist()
        self.subjects = df["subject_id"].astype(np.int64).to_numpy()
        self.studies = df["study_id"].astype(np.int64).to_numpy()

    def index_files(self):
        return [self.root / "record_list.csv"]

    def items(self):
        return list(range(len(self.paths)))

    def item_files(self, i):
        p = self.root / self.paths[i]
        return [p.with_name(p.name + ".hea"), p.with_name(p.name + ".dat")]

    def read(self, i):
        mv, fs, _ = read_wfdb(self.root / self.paths[i], f"record {self.paths[i]} (study {self.studies[i]})")
        return [SourceRecord("mimic-iv-ecg", str(self.studies[i]), mv, LEADS, fs, int(self.subjects[i]))]


# --- array files ----------------------------------------------------------------------------

CODE15_RATE = 400
CODE15_LENGTH = 4096
CODE15_LABELS = {"1dAVb": "CD", "RBBB": "CD", "LBBB": "CD", "normal_ecg": "NORM"}  # SB, ST, AF: rhythms only


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0", "yes")


class Code15Source(Source):
    """CODE-15%: ``exams.csv`` and ``exams_partK.hdf5`` (``tracings`` (N, 4096, 12) mV at 400 Hz, ``exam_id``).

    Zero padding around a 7-10 s exam is cut off (leading and trailing samples
    zero in every lead). Labels: 1dAVb, RBBB, LBBB -> CD; normal_ecg -> NORM;
    SB, ST, AF are rhythms with no superclass. Rows of exam_id 0 (the all-zero
    row closing each real part file) are skipped; any other exam_id absent from
    exams.csv is an error (or skipped, counted, with ``skip_missing``).
    """
    layout = "code15"
    block = 512

    def __init__(self, root, **options):
        super().__init__(root, **options)
        import h5py

        csv = self.root / "exams.csv"
        if not csv.is_file():
            raise DataError(f"{self.root}: exams.csv not found: not a CODE-15% folder")
        df = pd.read_csv(csv)
        need = {"exam_id", "patient_id", "trace_file", *CODE15_LABELS}
        if not need <= set(df.columns):
            raise DataError(f"{csv}: lacks column(s) {sorted(need - set(df.columns))}")
        if df["exam_id"].isna().any() or df["exam_id"].duplicated().any():
            raise DataError(f"{csv}: exam_id has empty or repeated values")
        self.row_of = {int(e): i for i, e in enumerate(df["exam_id"].to_numpy())}
        self.patient = df["patient_id"].fillna(-1).astype(np.int64).to_numpy()
        self.age = pd.to_numeric(df["age"], errors="coerce").to_numpy(np.float64) if "age" in df else None
        self.male = df["is_male"].map(_truthy).to_numpy() if "is_male" in df else None
        self.y = np.zeros((len(df), len(CLASSES)), np.uint8)
        for col, cls in CODE15_LABELS.items():
            self.y[:, CLASSES.index(cls)] |= df[col].map(_truthy).to_numpy(dtype=np.uint8)
        self.parts = sorted(self.root.glob("exams_part*.hdf5"), key=lambda p: _int_or(p.stem[10:], 0))
        if not self.parts:
            raise DataError(f"{self.root}: no exams_part*.hdf5 files")
        self.rows = {}
        for p in self.parts:
            try:
                with h5py.File(p, "r") as f:
                    tr, ids = f.get("tracings"), f.get("exam_id")
                    if tr is None or ids is None:
                        raise DataError(f"{p}: lacks dataset 'tracings' or 'exam_id'")
                    if tr.ndim != 3 or tr.shape[1:] != (CODE15_LENGTH, 12):
                        raise DataError(f"{p}: tracings of shape {tr.shape}, expected (N, {CODE15_LENGTH}, 12)")
                    if tr.dtype.kind != "f":
                        raise DataError(f"{p}: tracings of dtype {tr.dtype}, expected float")
                    if ids.shape != (tr.shape[0],):
                        raise DataError(f"{p}: exam_id of shape {ids.shape} for {tr.shape[0]} tracings")
                    self.rows[p.name] = tr.shape[0]
            except OSError as exc:
                raise DataError(f"{p}: not a readable HDF5 file ({exc})") from exc

    def index_files(self):
        return [self.root / "exams.csv"]

    def items(self):
        return [(p.name, s, min(s + self.block, self.rows[p.name]))
                for p in self.parts for s in range(0, self.rows[p.name], self.block)]

    def item_files(self, item):
        return [self.root / item[0]]

    def item_size(self, item):
        return item[2] - item[1]

    def read(self, item):
        import h5py

        name, start, stop = item
        with h5py.File(self.root / name, "r") as f:
            tr = f["tracings"][start:stop]
            ids = f["exam_id"][start:stop].astype(np.int64)
        out = []
        for k, (x, exam) in enumerate(zip(tr, ids)):
            where = f"{name} row {start + k} (exam_id {exam})"
            if exam == 0 and not np.any(x):
                continue
            i = self.row_of.get(int(exam))
            if i is None:
                raise MissingSourceRecord(f"{where}: exam_id not in exams.csv")
            nz = np.flatnonzero(np.any(x != 0, axis=1))
            if nz.size == 0:
                raise DataError(f"{where}: tracing is all zeros")
            sig = np.ascontiguousarray(x[nz[0]:nz[-1] + 1].T, dtype=np.float32)
            check_signal(sig, CODE15_RATE, where)
            y = self.y[i].copy()
            age = _float_or_nan(self.age[i]) if self.age is not None else float("nan")
            sex = ("M" if self.male[i] else "F") if self.male is not None else ""
            out.append(SourceRecord("code15", str(exam), sig, LEADS, CODE15_RATE, int(self.patient[i]),
                                    y, bool(y.any()), age=age, sex=sex))
        return out


class NumpySource(Source):
    """Arrays: ``.npy`` / ``.npz`` (key ``signals``) of shape (N, 12, T) in mV, leads in standard order.

    The sampling rate comes from the ``sampling_rate`` option, an npz key
    ``sampling_rate`` or a ``sampling_rate.txt`` beside the file. An optional csv
    (``records.csv`` beside it, or the ``csv`` option) gives one row per record:
    ``id``, optionally ``patient_id`` and the class columns CD, HYP, MI, NORM, STTC.
    """
    layout = "numpy"
    block = 1024

    def __init__(self, root, sampling_rate=None, csv=None, **options):
        super().__init__(root, **options)
        root = self.root
        self.file = root if root.is_file() else next(
            (p for p in (root / "signals.npy", root / "signals.npz") if p.is_file()), None)
        if self.file is None:
            raise DataError(f"{root}: no signals.npy or signals.npz")
        rate = sampling_rate
        arr = self._array()
        if self.file.suffix == ".npz" and rate is None:
            with np.load(self.file) as z:
                rate = float(z["sampling_rate"]) if "sampling_rate" in z else None
        txt = self.file.parent / "sampling_rate.txt"
        if rate is None and txt.is_file():
            rate = float(txt.read_text().strip())
        if rate is None:
            raise DataError(f"{self.file}: sampling rate unknown: pass --source-rate")
        self.rate = float(rate)
        if arr.ndim != 3 or arr.shape[1] != 12:
            raise DataError(f"{self.file}: array of shape {arr.shape}, expected (N, 12, T)")
        if arr.dtype.kind not in "fi":
            raise DataError(f"{self.file}: array of dtype {arr.dtype}, expected float or int")
        if arr.shape[2] < 1 or arr.shape[0] < 1:
            raise DataError(f"{self.file}: empty array of shape {arr.shape}")
        self.n = arr.shape[0]
        csv = Path(csv) if csv else self.file.parent / "records.csv"
        self.csv = csv if csv.is_file() else None
        self.ids = np.array([str(i) for i in range(self.n)])
        self.patients = np.full(self.n, -1, np.int64)
        self.labels = np.zeros((self.n, len(CLASSES)), np.uint8)
        self.labelled = False
        if self.csv is not None:
            df = pd.read_csv(self.csv)
            if len(df) != self.n:
                raise DataError(f"{self.csv}: {len(df)} rows for {self.n} records in {self.file.name}")
            if "id" in df:
                if df["id"].isna().any():
                    raise DataError(f"{self.csv}: {int(df['id'].isna().sum())} row(s) without an id")
                self.ids = df["id"].astype(str).to_numpy()
            if "patient_id" in df:
                self.patients = df["patient_id"].fillna(-1).astype(np.int64).to_numpy()
            cols = [c for c in CLASSES if c in df]
            if cols:
                self.labelled = True
                for c in cols:
                    self.labels[:, CLASSES.index(c)] = df[c].fillna(0).astype(bool).to_numpy()

    def _array(self):
        if self.file.suffix == ".npz":
            z = np.load(self.file)
            if "signals" not in z:
                raise DataError(f"{self.file}: no array 'signals'")
            return z["signals"]
        try:
            return np.load(self.file, mmap_mode="r")
        except ValueError as exc:
            raise DataError(f"{self.file}: not a .npy array ({exc})") from exc

    def index_files(self):
        return [self.csv] if self.csv else []

    def items(self):
        return [(s, min(s + self.block, self.n)) for s in range(0, self.n, self.block)]

    def item_files(self, item):
        return [self.file]

    def item_size(self, item):
        return item[1] - item[0]

    def read(self, item):
        start, stop = item
        arr = self._array()[start:stop]
        out = []
        for k in range(stop - start):
            i = start + k
            sig = np.asarray(arr[k], dtype=np.float32)
            check_signal(sig, self.rate, f"{self.file.name} record {i} (id {self.ids[i]})")
            out.append(SourceRecord("numpy", str(self.ids[i]), sig, LEADS, self.rate, int(self.patients[i]),
                                    self.labels[i], bool(self.labelled and self.labels[i].any())))
        return out


SOURCES = {"ptbxl": PTBXLSource, "cinc2021": CinC2021Source, "mimic-iv-ecg": MIMICSource,
           "code15": Code15Source, "numpy": NumpySource}


def open_source(layout: str, root, **options) -> Source:
    """The reader of ``layout`` over ``root`` (a folder, or a .npy/.npz file for ``numpy``)."""
    if layout not in SOURCES:
        raise DataError(f"unknown layout {layout!r}; choose from {', '.join(SOURCES)}")
    return SOURCES[layout](root, **options)
