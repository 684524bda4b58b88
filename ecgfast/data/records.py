"""Reading single PTB-XL WFDB records through ``wfdb``, with validation.

wfdb parses the files; what is added here is checking a record against what
PTB-XL promises (12 leads in the standard order, 10 s at the expected rate,
mV, one .dat file of the size its header implies, the header's per-lead
checksums) so that a broken file fails with a message naming it instead of a
reshape error or a silently short or corrupted signal.

Paths are confined: a record path from the csv and the ``.dat`` file name from
its header are resolved (symlinks included) and must lie inside the data root;
otherwise ``UnsafePathError``. An empty record path is refused the same way.

NaN samples: WFDB marks a missing sample with its format's invalid value
(-32768 in format 16, -2048 in 212, -128 in 80; ``wfdb``'s
``INVALID_SAMPLE_VALUE``). Such a sample has no voltage: caching it as one
(-32.768 mV at PTB-XL's gain) would corrupt the record and shift the global
normaliser. A record holding any is refused with ``BadRecordError`` naming it
and the count; ``ecgfast cache --skip-bad`` skips (and counts) such records
instead. Interpolating over the gaps was rejected: it would invent signal.

``BadRecordError`` marks a record whose files are present but unusable (NaN
samples, truncated or corrupted .dat, header that disagrees with PTB-XL), the
kind that ``--skip-bad`` may skip; ``MissingRecordError`` an absent one
(``--skip-missing``); ``UnsafePathError`` a path outside the data root, which
is never skipped.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import wfdb

from ecgfast import LEADS
from ecgfast.data.errors import BadRecordError, MissingRecordError, PTBXLError, UnsafePathError
from ecgfast.data.metadata import check_sampling_rate

RECORD_SECONDS = 10
_BYTES_PER_SAMPLE = {"16": 2, "80": 1, "212": 1.5}  # formats whose values fit int16
try:  # wfdb's per-format NaN sentinel
    from wfdb.io._signal import INVALID_SAMPLE_VALUE as _INVALID
except ImportError:  # pragma: no cover - older/newer wfdb layout
    _INVALID = {}
NAN_SENTINEL = {"16": _INVALID.get("16", -32768), "80": _INVALID.get("80", -128),
                "212": _INVALID.get("212", -2048)}

__all__ = ["BadRecordError", "Confiner", "MissingRecordError", "UnsafePathError", "confine", "expected_length",
           "read_record", "read_record_digital", "record_path"]


def expected_length(sampling_rate: int) -> int:
    return RECORD_SECONDS * check_sampling_rate(sampling_rate)


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


def _header(path: Path, root: Path | None, sampling_rate: int):
    """Read and check a record's header; returns (header, .dat path)."""
    where = f"record {path}"
    hea = path.with_name(path.name + ".hea")
    if root is not None:
        confine(root, hea, where)
    if not hea.is_file():
        raise MissingRecordError(f"record {path}: header {hea.name} not found")
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises anything from ValueError to IndexError on a bad header
        raise BadRecordError(f"record {path}: unreadable header {hea.name} ({type(exc).__name__}: {exc}); "
                             "restore the record from PTB-XL") from exc
    T = expected_length(sampling_rate)
    try:
        n_sig, fs, sig_len = int(header.n_sig), float(header.fs), int(header.sig_len)
    except (TypeError, ValueError):
        raise BadRecordError(f"{where}: header lacks the number of signals, rate or length") from None
    if n_sig != len(LEADS):
        raise BadRecordError(f"{where}: has {n_sig} leads, expected {len(LEADS)}")
    fields = {k: getattr(header, k, None) for k in ("sig_name", "units", "file_name", "fmt", "adc_gain",
                                                    "baseline", "checksum", "samps_per_frame", "skew",
                                                    "byte_offset")}
    for k in ("sig_name", "units", "file_name", "fmt", "adc_gain", "baseline"):
        v = fields[k]
        if not isinstance(v, (list, tuple)) or len(v) != n_sig or any(x is None for x in v):
            raise BadRecordError(f"{where}: header field {k} is missing or incomplete")
    names = tuple(str(n).upper() for n in fields["sig_name"])
    if names != LEADS:
        raise BadRecordError(f"{where}: leads {names} differ from PTB-XL's {LEADS}")
    if not math.isfinite(fs) or int(round(fs)) != sampling_rate:
        raise BadRecordError(f"{where}: sampled at {fs:g} Hz, expected {sampling_rate} Hz")
    if sig_len != T:
        raise BadRecordError(f"{where}: has {sig_len} samples per lead, expected {T}")
    if any(str(u).lower() != "mv" for u in fields["units"]):
        raise BadRecordError(f"{where}: units {sorted(set(map(str, fields['units'])))}, expected mV")
    if any((x or 1) != 1 for x in fields["samps_per_frame"] or []) or any(x for x in fields["skew"] or []) \
            or any(x for x in fields["byte_offset"] or []):
        raise BadRecordError(f"{where}: uses multi-frequency, skew or byte offsets, which PTB-XL does not")
    fmts = set(map(str, fields["fmt"]))
    if len(fmts) != 1 or next(iter(fmts)) not in _BYTES_PER_SAMPLE:
        raise BadRecordError(f"{where}: signal format(s) {sorted(fmts)}, expected one of "
                             f"{', '.join(_BYTES_PER_SAMPLE)} (PTB-XL: 16)")
    dat_names = set(map(str, fields["file_name"]))
    if len(dat_names) != 1:
        raise BadRecordError(f"{where}: signals spread over {len(dat_names)} files, expected one .dat")
    dat_name = dat_names.pop()
    if not dat_name.strip() or "\0" in dat_name:
        raise UnsafePathError(f"{where}: header names an empty signal file; fix the header")
    dat = path.parent / dat_name
    if root is not None:
        confine(root, dat, where)
    elif os.path.isabs(dat_name) or ".." in Path(dat_name).parts:
        raise UnsafePathError(f"{where}: header names signal file {dat_name!r} outside the record's folder")
    return header, dat


def read_record_digital(path: str | Path, sampling_rate: int, root: str | Path | None = None,
                        with_digest: bool = False):
    """Read one record as stored: (int16 (12, T) ADC values, gain (12,), baseline (12,)).

    ``path`` is the record path without extension. mV = (adc - baseline) / gain.
    With ``root``, the header and .dat must lie inside it. With ``with_digest``,
    a fourth item ``(sizes, mtimes_ns, sha256, dat path)`` describes the files read.
    """
    path = Path(path)
    sampling_rate = check_sampling_rate(sampling_rate)
    T = expected_length(sampling_rate)
    where = f"record {path}"
    header, dat = _header(path, None if root is None else Path(root), sampling_rate)
    if not dat.is_file():
        raise MissingRecordError(f"{where}: signal file {dat.name} not found")
    fmt = str(header.fmt[0])
    want = int(np.ceil(T * len(LEADS) * _BYTES_PER_SAMPLE[fmt]))
    digest = record_digest(path.with_name(path.name + ".hea"), dat) if with_digest else None
    have = digest[0][1] if digest else dat.stat().st_size
    if have < want:
        raise BadRecordError(f"{where}: {dat.name} is truncated ({have} bytes, header implies {want})")
    if have > want:
        raise BadRecordError(f"{where}: {dat.name} holds {have} bytes but its header implies {want}: "
                             "header and .dat disagree")
    try:
        rec = wfdb.rdrecord(str(path), physical=False, return_res=16)
    except Exception as exc:
        raise BadRecordError(f"{where}: unreadable signal file {dat.name} ({type(exc).__name__}: {exc})") from exc
    adc = rec.d_signal
    if adc is None or adc.shape != (T, len(LEADS)):
        shape = None if adc is None else adc.shape
        raise BadRecordError(f"{where}: read {shape} samples x leads, expected ({T}, {len(LEADS)})")
    n_nan = int(np.count_nonzero(adc == NAN_SENTINEL[fmt]))
    if n_nan:
        raise BadRecordError(f"{where}: {n_nan} NaN sample(s) (WFDB invalid value {NAN_SENTINEL[fmt]}); "
                             "pass --skip-bad to cache the other records without it")
    if adc.min() < -32768 or adc.max() > 32767:
        raise BadRecordError(f"{where}: ADC values exceed int16")
    checksum = getattr(header, "checksum", None)
    if isinstance(checksum, (list, tuple)) and len(checksum) == len(LEADS) and all(
            isinstance(c, (int, np.integer)) for c in checksum):
        got = adc.astype(np.int64).sum(axis=0) & 0xFFFF
        bad = np.flatnonzero(got != (np.asarray(checksum, dtype=np.int64) & 0xFFFF))
        if bad.size:
            raise BadRecordError(f"{where}: {dat.name} fails its header checksum on lead(s) "
                                 f"{', '.join(LEADS[i] for i in bad)}: the file is corrupted; "
                                 "restore it from PTB-XL")
    gain = np.asarray(rec.adc_gain, dtype=np.float64)
    baseline = np.asarray(rec.baseline, dtype=np.float64)
    if not np.all(np.isfinite(gain)) or np.any(gain <= 0) or np.any(gain > 1e9):
        raise BadRecordError(f"{where}: ADC gain {gain.tolist()} is not a positive number")
    if not np.all(np.isfinite(baseline)) or np.any(np.abs(baseline) > 1e9):
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
