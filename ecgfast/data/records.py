"""Reading single PTB-XL WFDB records through ``wfdb``, with validation.

wfdb parses the files; what is added here is checking a record against what
PTB-XL promises (12 leads in the standard order, 10 s at the expected rate,
mV, a .dat file of the size its header implies) so that a broken file fails
with a message naming it instead of a reshape error or a silently short signal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

from ecgfast import LEADS
from ecgfast.data.errors import PTBXLError
from ecgfast.data.metadata import check_sampling_rate

RECORD_SECONDS = 10
_BYTES_PER_SAMPLE = {"16": 2, "80": 1, "212": 1.5, "24": 3, "32": 4}


class MissingRecordError(PTBXLError):
    """A record the csv names is absent from the folder (a partial download)."""


def expected_length(sampling_rate: int) -> int:
    return RECORD_SECONDS * check_sampling_rate(sampling_rate)


def read_record_digital(path: str | Path, sampling_rate: int):
    """Read one record as stored: (int16 (12, T) ADC values, gain (12,), baseline (12,)).

    ``path`` is the record path without extension. mV = (adc - baseline) / gain.
    """
    path = Path(path)
    T = expected_length(sampling_rate)
    hea = path.with_name(path.name + ".hea")
    if not hea.is_file():
        raise MissingRecordError(f"record {path}: header {hea.name} not found")
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:
        raise PTBXLError(f"record {path}: unreadable header ({exc})") from exc
    where = f"record {path}"
    if header.n_sig != len(LEADS):
        raise PTBXLError(f"{where}: has {header.n_sig} leads, expected {len(LEADS)}")
    names = tuple(n.upper() for n in header.sig_name)
    if names != LEADS:
        raise PTBXLError(f"{where}: leads {names} differ from PTB-XL's {LEADS}")
    if int(round(header.fs)) != sampling_rate:
        raise PTBXLError(f"{where}: sampled at {header.fs:g} Hz, expected {sampling_rate} Hz")
    if header.sig_len != T:
        raise PTBXLError(f"{where}: has {header.sig_len} samples per lead, expected {T}")
    if any(u.lower() != "mv" for u in header.units):
        raise PTBXLError(f"{where}: units {sorted(set(header.units))}, expected mV")
    dat_names = set(header.file_name)
    if len(dat_names) != 1:
        raise PTBXLError(f"{where}: signals spread over {len(dat_names)} files, expected one .dat")
    dat = path.with_name(dat_names.pop())
    if not dat.is_file():
        raise MissingRecordError(f"{where}: signal file {dat.name} not found")
    fmt = header.fmt[0]
    if fmt in _BYTES_PER_SAMPLE and len(set(header.fmt)) == 1 and not any(header.byte_offset or []):
        want = int(np.ceil(T * header.n_sig * _BYTES_PER_SAMPLE[fmt]))
        have = dat.stat().st_size
        if have < want:
            raise PTBXLError(f"{where}: {dat.name} is truncated ({have} bytes, header implies {want})")
        if have > want:
            raise PTBXLError(f"{where}: {dat.name} holds {have} bytes but its header implies {want}: "
                             "header and .dat disagree")
    try:
        rec = wfdb.rdrecord(str(path), physical=False, return_res=16)
    except Exception as exc:
        raise PTBXLError(f"{where}: unreadable signal file {dat.name} ({exc})") from exc
    adc = rec.d_signal
    if adc.shape != (T, len(LEADS)):
        raise PTBXLError(f"{where}: read {adc.shape} samples x leads, expected ({T}, {len(LEADS)})")
    if adc.min() < -32768 or adc.max() > 32767:
        raise PTBXLError(f"{where}: ADC values exceed int16")
    gain = np.asarray(rec.adc_gain, dtype=np.float32)
    if np.any(gain <= 0):
        raise PTBXLError(f"{where}: non-positive ADC gain {gain.tolist()}")
    baseline = np.asarray(rec.baseline, dtype=np.float32)
    return np.ascontiguousarray(adc.T, dtype=np.int16), gain, baseline


def read_record(root: str | Path, record, sampling_rate: int = 100) -> np.ndarray:
    """One record as float32 (12, T) in mV.

    ``record`` is a path relative to ``root`` as in the csv (``records100/00000/00001_lr``)
    or an ``ecg_id`` (looked up in ``root``'s ``ptbxl_database.csv``).
    """
    root = Path(root)
    if isinstance(record, (int, np.integer)):
        from ecgfast.data.metadata import SAMPLING_RATES, load_metadata

        meta = load_metadata(root)
        if int(record) not in meta.records.index:
            raise PTBXLError(f"{root}: no record with ecg_id={record}")
        record = meta.records.loc[int(record), SAMPLING_RATES[check_sampling_rate(sampling_rate)]]
    adc, gain, baseline = read_record_digital(root / record, sampling_rate)
    return ((adc.astype(np.float32) - baseline[:, None]) / gain[:, None]).astype(np.float32)


def read_indexed_record(job):
    """``(i, path, sampling_rate) -> (i, adc, gain, baseline)``: the cache builder's worker task."""
    i, path, sampling_rate = job
    return (i,) + read_record_digital(path, sampling_rate)
