"""Reading WFDB records: the one reader, for the PTB-XL cache, the corpus readers and inference.

``read_header`` reads and checks a record's header, ``read_wfdb`` a whole record as
float32 mV (rows in the standard lead order, or as the file has them), and
``read_record_digital`` a PTB-XL record as stored (int16 ADC values, gain and baseline)
for the cache. All three accept and refuse the same headers, so a record that builds
into a corpus also embeds:

* the header: single segment, a sampling rate, for every signal a format, a positive
  finite ADC gain (WFDB reads a missing or zero gain as "uncalibrated, assume 200/mV"
  and a missing rate as 250 Hz: guesses at the scale of every sample, refused here),
  units from ``ecgfast.data.leads.UNITS`` (mV, uV, µV, V, nV; converted to mV), lead
  names matched through the lead table of ``ecgfast.data.leads`` (``DI``/``D1`` = I,
  ...), at most ``MAX_HEADER_BYTES`` bytes. It is read by this module's parser, which
  names the record and what is wrong where wfdb's would guess a default or fail with a
  regex error, and which costs microseconds where ``wfdb.rdheader`` costs milliseconds
  a header (the corpus builders read millions);
* the samples: every signal in one file named by a plain file name in the record's
  folder; format 16 (PTB-XL, CinC's ``.mat`` after a 24-byte offset, MIMIC-IV-ECG) is
  read with ``np.fromfile`` at the header's offset, every other WFDB format by
  ``wfdb.rdrecord`` (digital); the file size is checked against the header before any
  sample is read, and a WFDB invalid sample (NaN: -32768 in format 16, -2048 in 212,
  -128 in 80; ``wfdb``'s ``INVALID_SAMPLE_VALUE``) is refused with the count -- caching
  it as a voltage would corrupt the record and shift the normaliser; interpolating over
  the gaps was rejected: it would invent signal;
* bounded memory: a rate outside ``RATE_RANGE`` Hz or more than ``cap`` samples per lead
  (default ``MAX_RECORD_SAMPLES``) is refused before any sample is read.

PTB-XL adds what it promises (12 leads in the standard order, 10 s at the expected rate,
mV, format 16/80/212, a .dat of exactly the size its header implies, the header's per-lead
checksums), checked by ``read_record_digital``.

Paths are confined: a record path from the csv and the signal file named by its header
are resolved (symlinks included) and must lie inside the data root; otherwise
``UnsafePathError``. An empty record path is refused the same way.

``BadRecordError`` marks a record whose files are present but unusable (NaN samples,
truncated or corrupted .dat, a header that breaks the rules above), the kind that
``--skip-bad`` may skip; ``MissingRecordError`` an absent one (``--skip-missing``);
``UnsafePathError`` a path outside the data root, which is never skipped.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgfast import LEADS
from ecgfast.base.errors import DataError
from ecgfast.data.errors import BadRecordError, MissingRecordError, PTBXLError, UnsafePathError
from ecgfast.data.leads import UNITS_HELP, is_unit, lead_key, lead_order, unit_factor
from ecgfast.data.metadata import check_sampling_rate

RECORD_SECONDS = 10
# 2**21 samples per lead: 35 min at 1000 Hz, 2.3 h at 257 Hz (St Petersburg's 30-min records fit); at the
# cap one record costs ~0.2 GB as float64, so a worker stays well under 1 GB whatever a header claims
MAX_RECORD_SAMPLES = 2 ** 21
RATE_RANGE = (10.0, 20000.0)  # Hz: outside it a rate is a typo or a unit error (and resampling would explode)
MAX_HEADER_BYTES = 1 << 20    # a WFDB header of 12 signals is < 2 kB
# bytes per sample of the formats whose file size the header fixes exactly (others: wfdb checks what it reads)
_SIZE_OF = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5}
_PTBXL_FORMATS = ("16", "80", "212")  # formats whose values fit int16 (PTB-XL: 16)
try:  # wfdb's per-format NaN sentinel
    from wfdb.io._signal import INVALID_SAMPLE_VALUE as _INVALID
except ImportError:  # pragma: no cover - older/newer wfdb layout
    _INVALID = {"16": -32768, "80": -128, "212": -2048}
NAN_SENTINEL = {k: v for k, v in _INVALID.items() if v is not None}

__all__ = ["BadRecordError", "Confiner", "MAX_RECORD_SAMPLES", "MissingRecordError", "RATE_RANGE", "UnsafePathError",
           "WfdbHeader", "check_length", "check_rate", "check_signal", "confine", "expected_length", "parse_header",
           "read_header", "read_record", "read_record_digital", "read_wfdb", "record_path"]


def expected_length(sampling_rate: int) -> int:
    return RECORD_SECONDS * check_sampling_rate(sampling_rate)


def check_rate(fs, where: str) -> float:
    """``fs`` as a float; ``DataError`` unless it is a finite number in ``RATE_RANGE``."""
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)) or not math.isfinite(fs):
        raise DataError(f"{where}: invalid sampling rate {fs!r}")
    if not RATE_RANGE[0] <= fs <= RATE_RANGE[1]:
        raise DataError(f"{where}: sampling rate {fs:g} Hz is outside {RATE_RANGE[0]:g}-{RATE_RANGE[1]:g} Hz")
    return float(fs)


def check_length(n: int, where: str, cap: int = MAX_RECORD_SAMPLES) -> int:
    """``n`` samples per lead; ``DataError`` unless 1 <= n <= ``cap`` (checked before anything is read)."""
    if n < 1:
        raise DataError(f"{where}: header gives {n} samples per lead")
    if n > cap:
        raise DataError(f"{where}: {n} samples per lead exceeds the cap of {cap} (max_record_samples); "
                        "split the record or raise the cap")
    return int(n)


def check_signal(sig: np.ndarray, fs, where: str, cap: int = MAX_RECORD_SAMPLES) -> None:
    check_rate(fs, where)
    if sig.ndim != 2 or sig.shape[1] < 1:
        raise DataError(f"{where}: signal of shape {sig.shape}, expected (leads, samples) with samples > 0")
    check_length(sig.shape[1], where, cap)
    bad = ~np.isfinite(sig)
    if bad.any():
        raise DataError(f"{where}: holds {int(bad.sum())} NaN/infinite sample(s)")


class Confiner:
    """Checks that paths lie inside ``root`` once symlinks are resolved; folders are resolved once each."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.real_root = os.path.realpath(root)
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str | Path, what: str) -> str:
        """``path`` resolved; ``UnsafePathError`` naming ``what`` unless it lies inside the root."""
        parent, name = os.path.split(os.fspath(path))
        real_parent = self._dirs.get(parent)
        if real_parent is None:
            real_parent = self._dirs[parent] = os.path.realpath(parent or ".")
        real = os.path.join(real_parent, name)
        if name in ("", ".", "..") or os.path.islink(real):
            real = os.path.realpath(real)
        if real != self.real_root and not real.startswith(self.real_root.rstrip(os.sep) + os.sep):
            raise UnsafePathError(f"{what}: path {path} resolves to {real}, outside the data root {self.root}; "
                                  "fix the csv or header (record paths must stay inside the PTB-XL folder)")
        return real


def confine(root: str | Path, path: str | Path, what: str) -> str:
    """``path`` resolved (symlinks followed); ``UnsafePathError`` unless it lies inside ``root``."""
    return Confiner(root)(path, what)


def record_path(root: str | Path, rel, where: str, confiner: Confiner | None = None) -> str:
    """``root/rel`` (a str) for a csv record path, refused when empty, absolute or escaping ``root``."""
    if not isinstance(rel, str) or not rel.strip():
        raise UnsafePathError(f"{where}: record path {rel!r} is empty; fix the csv")
    if "\0" in rel or os.path.isabs(rel):
        raise UnsafePathError(f"{where}: record path {rel!r} is absolute, outside the data root {root}; "
                              "fix the csv (record paths are relative to the PTB-XL folder)")
    path = os.path.join(root, rel)
    (confiner or Confiner(root))(path + ".hea", where)
    return path


def _file_digest(path: Path) -> tuple[int, int, bytes]:
    """(size, mtime_ns, sha256 digest) of a file, stat taken before reading."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return st.st_size, st.st_mtime_ns, h.digest()


def record_digest(hea: Path, dat: Path) -> tuple[list[int], list[int], bytes]:
    """Sizes, mtimes (ns) and one SHA-256 over both files of a record (header, then .dat)."""
    s1, m1, d1 = _file_digest(hea)
    s2, m2, d2 = _file_digest(dat)
    return [s1, s2], [m1, m2], hashlib.sha256(d1 + d2).digest()


# --- the one WFDB reader -----------------------------------------------------------------------

@dataclass
class WfdbHeader:
    """The parts of a WFDB header the readers use (the same names as ``wfdb.Record``'s)."""
    record_name: str
    n_sig: int
    fs: float
    sig_len: int | None  # None: not in the header (``read_wfdb`` takes it from the signal file's size)
    file_name: list
    fmt: list
    byte_offset: list
    adc_gain: list
    baseline: list
    units: list
    sig_name: list
    comments: list
    checksum: list     # int per signal, None where the header gives none


_SIG_FMT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")
Confine = Callable[[Path, str], object]  # (path, where): raises UnsafePathError unless the path may be read


def _int_or_none(text: str | None):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def parse_header(text: str, where: str) -> WfdbHeader:
    """A single-segment WFDB header (the record line, one line per signal, ``#`` comments), checked.

    ``BadRecordError`` naming ``where`` for what it does not understand (multi-segment
    records, samples per frame, skew, malformed numbers) and for what WFDB would only guess:
    no sampling rate (250 Hz), no or a zero ADC gain (200/mV).
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
        raise BadRecordError(f"{where}: header has no record line")
    rec = lines[0]
    if "/" in rec[0]:
        raise BadRecordError(f"{where}: multi-segment records are not supported")
    try:
        n_sig = int(rec[1])
        fs = float(rec[2].split("/")[0].split("(")[0]) if len(rec) > 2 else 250.0
        sig_len = int(rec[3]) if len(rec) > 3 else None  # None: the signal file's size says (WFDB)
    except ValueError as exc:
        raise BadRecordError(f"{where}: malformed record line {' '.join(rec)!r}") from exc
    if len(rec) <= 2:  # WFDB's default 250 Hz is a guess, not a calibration
        raise BadRecordError(f"{where}: header gives no sampling rate")
    sigs = lines[1:]
    if len(sigs) != n_sig:
        raise BadRecordError(f"{where}: header announces {n_sig} signals but describes {len(sigs)}")
    h = WfdbHeader(rec[0], n_sig, fs, sig_len, [], [], [], [], [], [], [], comments, [])
    for k, f in enumerate(sigs):
        m = _SIG_FMT.match(f[1]) if len(f) > 1 else None
        if not m:
            raise BadRecordError(f"{where}: signal line {k + 1} has no valid format field")
        fmt, spf, skew, off = m.groups()
        if spf not in (None, "1") or skew not in (None, "0"):
            raise BadRecordError(f"{where}: samples-per-frame / skew fields are not supported")
        # WFDB reads a missing or zero gain as "uncalibrated, assume 200/mV": a guess at the scale of
        # every sample, so it is refused here rather than silently stored as millivolts
        if len(f) <= 2:
            raise BadRecordError(f"{where}: signal line {k + 1} gives no ADC gain (uncalibrated signal)")
        g = _GAIN.match(f[2])
        if not g:
            raise BadRecordError(f"{where}: signal line {k + 1}: malformed gain field {f[2]!r}")
        try:
            gain = float(g.group(1))
            base = int(g.group(2)) if g.group(2) is not None else None
            adc_zero = int(f[4]) if len(f) > 4 else 0
        except ValueError:
            raise BadRecordError(f"{where}: signal line {k + 1}: malformed gain, baseline or ADC zero "
                                 f"{' '.join(f[2:5])!r}") from None
        if not math.isfinite(gain) or gain <= 0:
            raise BadRecordError(f"{where}: signal line {k + 1}: ADC gain {g.group(1)} is not a positive finite "
                                 "number (0 means uncalibrated in WFDB)")
        h.file_name.append(f[0])
        h.fmt.append(fmt)
        h.byte_offset.append(int(off or 0))
        h.adc_gain.append(gain)
        h.baseline.append(adc_zero if base is None else base)
        h.units.append(g.group(3) or "mV")
        h.checksum.append(_int_or_none(f[6]) if len(f) > 6 else None)
        h.sig_name.append(" ".join(f[8:]) if len(f) > 8 else f"sig{k}")
    return h


def record_base(path: str | os.PathLike) -> Path:
    """A record's path without extension (``A1.hea`` and ``A1.dat`` name record ``A1``)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".hea", ".dat") else p


def read_header(path: str | os.PathLike, where: str | None = None,
                confine: Confine | None = None) -> tuple[WfdbHeader, Path]:
    """(parsed header, header file) of record ``path`` (without extension).

    ``MissingRecordError`` when the header is absent; ``BadRecordError`` when it is over
    ``MAX_HEADER_BYTES``, unreadable or breaks ``parse_header``'s rules; with ``confine``,
    the header file must pass it (``UnsafePathError``).
    """
    path = Path(path)
    where = where or f"record {path}"
    hea = path.with_name(path.name + ".hea")
    if confine is not None:
        confine(hea, where)
    if not hea.is_file():
        raise MissingRecordError(f"{where}: header {hea} not found")
    try:
        size = hea.stat().st_size
        if size > MAX_HEADER_BYTES:
            raise BadRecordError(f"{where}: header {hea} holds {size} bytes (more than {MAX_HEADER_BYTES}): not a "
                                 "WFDB header")
        text = hea.read_text(errors="replace")
    except OSError as exc:
        raise BadRecordError(f"{where}: unreadable header {hea} ({exc})") from exc
    return parse_header(text, where), hea


def signal_files(header: WfdbHeader, path: Path, hea: Path, where: str, confine: Confine | None = None,
                 must_exist: bool = True) -> list[Path]:
    """The record's signal files, in header order: plain file names in the record's folder, confined,
    present (``MissingRecordError`` unless, with ``must_exist=False``, the caller checks)."""
    out = []
    for name in dict.fromkeys(header.file_name):
        # a signal file is named relative to the record's folder: a bare file name, never a path
        if name in ("", ".", "..", "~") or "/" in name or "\\" in name or "\0" in name:
            raise UnsafePathError(f"{where}: header {hea} names signal file {name!r}, not a file in the record's "
                                  "folder; fix the header")
        dat = path.with_name(name)
        if confine is not None:
            confine(dat, where)
        if must_exist and not dat.is_file():
            raise MissingRecordError(f"{where}: signal file {dat} not found")
        out.append(dat)
    return out


def _one_file(header: WfdbHeader) -> bool:
    return len(set(header.file_name)) == 1 and len(set(header.byte_offset)) == 1 and len(set(header.fmt)) == 1


def _check_size(header: WfdbHeader, dat: Path, where: str, exact: bool, size: int | None = None) -> None:
    """The signal file holds what the header implies: refused when shorter (or, ``exact``, longer)."""
    fmt = header.fmt[0]
    if fmt not in _SIZE_OF or not _one_file(header):
        return  # packed or compressed formats, several files: wfdb checks what it reads
    want = header.byte_offset[0] + int(np.ceil(header.sig_len * header.n_sig * _SIZE_OF[fmt]))
    have = dat.stat().st_size if size is None else size
    if have < want:
        raise BadRecordError(f"{where}: {dat} is truncated ({have} bytes, header implies {want})")
    if exact and have > want:
        raise BadRecordError(f"{where}: {dat.name} holds {have} bytes but its header implies {want}: "
                             "header and .dat disagree")


def _length_from_size(header: WfdbHeader, dat: Path, where: str) -> int:
    """Samples per signal that the one signal file holds, for a header that gives no length."""
    fmt = header.fmt[0]
    if fmt not in _SIZE_OF or not _one_file(header):
        raise BadRecordError(f"{where}: header gives no length, and its signal format(s) {sorted(set(header.fmt))} "
                             "do not fix it from the file size")
    return int((dat.stat().st_size - header.byte_offset[0]) // (header.n_sig * _SIZE_OF[fmt]))


def read_digital(header: WfdbHeader, path: Path, dat: Path, where: str, nan_hint: str = "") -> np.ndarray:
    """The record's ADC values, (sig_len, n_sig) integers; ``BadRecordError`` for NaN samples or a bad file.

    Format 16 in one file is read with ``np.fromfile`` at the header's byte offset (the tests check
    it against ``wfdb.rdrecord``); every other format, or several files, by ``wfdb.rdrecord(physical=False)``.
    ``dat``: the (first) signal file, for messages.
    """
    fmts = set(header.fmt)
    shape = (header.sig_len, header.n_sig)
    try:
        if fmts == {"16"} and _one_file(header):
            adc = np.fromfile(dat, dtype="<i2", count=shape[0] * shape[1],
                              offset=header.byte_offset[0]).reshape(shape)
        else:
            import wfdb

            adc = wfdb.rdrecord(str(path), physical=False, return_res=64).d_signal
    except Exception as exc:  # wfdb raises anything from ValueError to IndexError on a bad file
        raise BadRecordError(f"{where}: unreadable signal file {dat} ({type(exc).__name__}: {exc})") from exc
    if adc is None or adc.shape != shape:
        raise BadRecordError(f"{where}: read {None if adc is None else adc.shape} samples x leads, expected {shape}")
    n_nan = 0
    for fmt in fmts:
        if fmt in NAN_SENTINEL:
            cols = [k for k, f in enumerate(header.fmt) if f == fmt]
            n_nan += int(np.count_nonzero(adc[:, cols] == NAN_SENTINEL[fmt]))
    if n_nan:
        sentinels = sorted({NAN_SENTINEL[f] for f in fmts if f in NAN_SENTINEL})
        raise BadRecordError(f"{where}: {n_nan} NaN sample(s) (WFDB invalid value "
                             f"{', '.join(map(str, sentinels))}){nan_hint}")
    return adc


def read_wfdb(path: str | os.PathLike, where: str | None = None, *, confine: Confine | None = None,
              cap: int | None = MAX_RECORD_SAMPLES, leads=LEADS):
    """(float32 (C, n) mV, sampling rate, header) of any WFDB record, validated (see the module doc).

    ``leads``: the rows to return, matched by name through ``ecgfast.data.leads`` (default the
    standard 12 in their order; a record lacking one or naming one twice is refused); ``None``
    keeps the file's channels in its order (``header.sig_name`` names them). Units are
    converted to mV. ``confine`` checks both files (a corpus ``Source.confine``: inside the
    source folder). ``cap``: the most samples per lead (``None``: no cap).
    """
    path = record_base(path)
    where = where or f"record {path}"
    header, hea = read_header(path, where, confine)
    order = np.arange(header.n_sig) if leads is None else lead_order(header.sig_name, where, leads)
    check_rate(header.fs, where)
    bad = sorted({u for u in header.units if not is_unit(u)})
    if bad:
        raise BadRecordError(f"{where}: units {bad}, expected {UNITS_HELP}")
    dat = signal_files(header, path, hea, where, confine)[0]
    if header.sig_len is None:  # as WFDB does: the length the signal file holds
        header.sig_len = _length_from_size(header, dat, where)
    check_length(header.sig_len, where, cap if cap is not None else 2 ** 62)
    _check_size(header, dat, where, exact=False)
    adc = read_digital(header, path, dat, where)
    gain = np.asarray(header.adc_gain, np.float64)
    base = np.asarray(header.baseline, np.float64)
    scale = np.asarray([unit_factor(u) for u in header.units], np.float64)
    mv = np.empty((len(order), header.sig_len), np.float32)
    for j, k in enumerate(order):  # one lead at a time: no (n, C) float64 temporaries
        mv[j] = (adc[:, k] - base[k]) / gain[k] if scale[k] == 1 else (adc[:, k] - base[k]) / gain[k] * scale[k]
    return mv, float(header.fs), header


# --- PTB-XL on top: what PTB-XL promises -------------------------------------------------------

def _header(path: Path, root: Path | None, sampling_rate: int):
    """Read a PTB-XL record's header and check it against PTB-XL; returns (header, .dat path)."""
    where = f"record {path}"
    confiner = Confiner(root) if root is not None else None
    header, hea = read_header(path, where, confiner)
    T = expected_length(sampling_rate)
    n_sig, fs, sig_len = header.n_sig, header.fs, header.sig_len
    if n_sig != len(LEADS):
        raise BadRecordError(f"{where}: has {n_sig} leads, expected {len(LEADS)}")
    names = tuple(lead_key(n) for n in header.sig_name)
    if names != LEADS:
        raise BadRecordError(f"{where}: leads {names} differ from PTB-XL's {LEADS}")
    if not math.isfinite(fs) or int(round(fs)) != sampling_rate:
        raise BadRecordError(f"{where}: sampled at {fs:g} Hz, expected {sampling_rate} Hz")
    if sig_len is None:
        raise BadRecordError(f"{where}: header gives no length, expected {T} samples per lead")
    if sig_len != T:
        raise BadRecordError(f"{where}: has {sig_len} samples per lead, expected {T}")
    if any(str(u).lower() != "mv" for u in header.units):
        raise BadRecordError(f"{where}: units {sorted(set(map(str, header.units)))}, expected mV")
    if any(header.byte_offset):
        raise BadRecordError(f"{where}: uses byte offsets, which PTB-XL does not")
    fmts = set(map(str, header.fmt))
    if len(fmts) != 1 or next(iter(fmts)) not in _PTBXL_FORMATS:
        raise BadRecordError(f"{where}: signal format(s) {sorted(fmts)}, expected one of "
                             f"{', '.join(_PTBXL_FORMATS)} (PTB-XL: 16)")
    if len(set(header.file_name)) != 1:
        raise BadRecordError(f"{where}: signals spread over {len(set(header.file_name))} files, expected one .dat")
    return header, signal_files(header, path, hea, where, confiner, must_exist=False)[0]


def read_record_digital(path: str | Path, sampling_rate: int, root: str | Path | None = None,
                        with_digest: bool = False):
    """Read one PTB-XL record as stored: (int16 (12, T) ADC values, gain (12,), baseline (12,)).

    ``path`` is the record path without extension. mV = (adc - baseline) / gain.
    With ``root``, the header and .dat must lie inside it. With ``with_digest``,
    a fourth item ``(sizes, mtimes_ns, sha256, dat path)`` describes the files read.
    """
    path = Path(path)
    sampling_rate = check_sampling_rate(sampling_rate)
    where = f"record {path}"
    header, dat = _header(path, None if root is None else Path(root), sampling_rate)
    if not dat.is_file():
        raise MissingRecordError(f"{where}: signal file {dat.name} not found")
    digest = record_digest(path.with_name(path.name + ".hea"), dat) if with_digest else None
    _check_size(header, dat, where, exact=True, size=digest[0][1] if digest else None)
    adc = read_digital(header, path, dat, where, "; pass --skip-bad to cache the other records without it")
    if adc.min() < -32768 or adc.max() > 32767:
        raise BadRecordError(f"{where}: ADC values exceed int16")
    checksum = header.checksum
    if len(checksum) == len(LEADS) and all(c is not None for c in checksum):
        got = adc.astype(np.int64).sum(axis=0) & 0xFFFF
        bad = np.flatnonzero(got != (np.asarray(checksum, dtype=np.int64) & 0xFFFF))
        if bad.size:
            raise BadRecordError(f"{where}: {dat.name} fails its header checksum on lead(s) "
                                 f"{', '.join(LEADS[i] for i in bad)}: the file is corrupted; "
                                 "restore it from PTB-XL")
    gain = np.asarray(header.adc_gain, dtype=np.float64)
    baseline = np.asarray(header.baseline, dtype=np.float64)
    if np.any(gain > 1e9):
        raise BadRecordError(f"{where}: ADC gain {gain.tolist()} is not a positive number")
    if np.any(np.abs(baseline) > 1e9):
        raise BadRecordError(f"{where}: ADC baseline {baseline.tolist()} is not a finite number")
    out = (np.ascontiguousarray(adc.T, dtype=np.int16), gain.astype(np.float32), baseline.astype(np.float32))
    if with_digest:
        out += ((digest[0], digest[1], digest[2], dat),)
    return out


def read_record(root: str | Path, record, sampling_rate: int = 100) -> np.ndarray:
    """One record as float32 (12, T) in mV.

    ``record`` is a path relative to ``root`` as in the csv (``records100/00000/00001_lr``)
    or an ``ecg_id`` (looked up in ``root``'s ``ptbxl_database.csv``).
    """
    root = Path(root)
    where = f"{root}: record {record!r}"
    if isinstance(record, (int, np.integer)):
        from ecgfast.data.metadata import load_metadata

        meta = load_metadata(root)
        if int(record) not in meta.records.index:
            raise PTBXLError(f"{root}: no record with ecg_id={record}")
        where = f"{root}: record ecg_id={int(record)}"
        record = meta.filenames(sampling_rate)[int(np.searchsorted(meta.ecg_ids, int(record)))]
    path = record_path(root, record, where)
    adc, gain, baseline = read_record_digital(path, sampling_rate, root=root)
    return ((adc.astype(np.float32) - baseline[:, None]) / gain[:, None]).astype(np.float32)


def read_indexed_record(job):
    """The cache builder's worker task.

    ``(i, root, rel, sampling_rate, skip_bad) -> (i, adc, gain, baseline, digest, None)``, or
    ``(i, None, None, None, digest_or_None, message)`` for a bad record when ``skip_bad``.
    """
    i, root, rel, sampling_rate, skip_bad = job
    path = Path(root) / rel
    try:
        try:
            adc, gain, baseline, (sizes, mtimes, sha, dat) = read_record_digital(path, sampling_rate, root,
                                                                                 with_digest=True)
        except OSError as exc:  # unreadable file (permissions, I/O error): a bad record, named
            from ecgfast.base.fs import os_error_message

            raise BadRecordError(f"record {path}: {os_error_message(exc, exc.filename or path, 'read')}") from exc
    except BadRecordError as exc:
        if not skip_bad:
            raise
        # Still fingerprint the bad record's files, so that a repaired record makes the cache stale.
        try:
            dat = _header(path, Path(root), sampling_rate)[1]
        except PTBXLError:
            dat = path.with_name(path.name + ".dat")
        try:
            sizes, mtimes, sha = record_digest(path.with_name(path.name + ".hea"), dat)
            digest = (sizes, mtimes, sha, _relative(root, dat))
        except OSError:
            digest = None
        return i, None, None, None, digest, str(exc)
    return i, adc, gain, baseline, (sizes, mtimes, sha, _relative(root, dat)), None


def _relative(root, path: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")
