"""Synthetic corpora in the real layouts of the corpora the field pretrains on.

``ecgfast synth --layout L`` writes one; each reader in this package is tested
on its real layout. Signals come from the heart-vector generator of
``ecgfast.data.synthetic`` (seeded per record: the same seed writes the same
bytes).

* ``cinc2021`` -- PhysioNet/CinC Challenge 2021: one folder per source database
  (``WFDB_CPSC2018/A0001``, ``WFDB_StPetersburg/I0001``, ``WFDB_PTB/S0001``,
  ``WFDB_PTBXL/HR00001``, ``WFDB_Ga/E00001``, ``WFDB_ChapmanShaoxing/JS00001``,
  ...), a MATLAB v4 ``.mat`` holding the int16 matrix ``val`` (12 x n,
  column-major, so frames are interleaved as WFDB format 16 wants) after a
  24-byte header, and a ``.hea`` naming it as ``A0001.mat 16+24 1000/mV 16 0
  init checksum 0 I``; comments ``#Age: 54``, ``#Sex: Male``, ``#Dx: 426783006,...``,
  ``#Rx/#Hx/#Sx: Unknown``. Rates 257 / 500 / 1000 Hz, 6 s to 60 s (the real
  St Petersburg records last 30 min; 60 s keeps the test small).
* ``mimic-iv-ecg`` -- ``record_list.csv`` (subject_id, study_id, file_name,
  ecg_time, path) and ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.hea|.dat``,
  500 Hz, 10 s, format 16; leads in the machine's order (aVF before aVL).
* ``code15`` -- CODE-15%: ``exams.csv`` (exam_id, age, is_male, nn_predicted_age,
  1dAVb, RBBB, LBBB, SB, ST, AF, patient_id, death, timey, normal_ecg,
  trace_file) and ``exams_partK.hdf5`` with ``tracings`` (N, 4096, 12) float32
  mV (400 Hz, 7-10 s centred in zeros) and ``exam_id`` (N,); as in the real
  files each part ends with an all-zero tracing of exam_id 0.
* ``numpy`` -- ``signals.npy`` (N, 12, T) float32 mV, ``records.csv`` (id,
  patient_id, CD, HYP, MI, NORM, STTC) and ``sampling_rate.txt``.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd

from ecgfast import CLASSES, LEADS
from ecgfast.data.sources import LAYOUTS
from ecgfast.data.sources.snomed import CODES_OF_CLASS, RHYTHM_ONLY
from ecgfast.data.synthetic import draw_record, synthesize_ecg

CINC_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
MIMIC_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
# database folder: (record prefix, digits, rate Hz, (min s, max s), ADC gain per mV)
CINC_DATABASES = {
    "WFDB_CPSC2018": ("A", 4, 500, (6, 60), 1000),
    "WFDB_CPSC2018_2": ("Q", 4, 500, (6, 30), 1000),
    "WFDB_StPetersburg": ("I", 4, 257, (60, 60), 1000),
    "WFDB_PTB": ("S", 4, 1000, (30, 40), 2000),
    "WFDB_PTBXL": ("HR", 5, 500, (10, 10), 1000),
    "WFDB_Ga": ("E", 5, 500, (10, 10), 1000),
    "WFDB_ChapmanShaoxing": ("JS", 5, 500, (10, 10), 1000),
    "WFDB_Ningbo": ("JS", 5, 500, (10, 10), 1000),
}
TO_PTBXL_ORDER = {name: [n.upper() for n in order].index
                  for name, order in (("cinc", CINC_LEADS), ("mimic", MIMIC_LEADS))}


def _in_order(sig_ptbxl: np.ndarray, order) -> np.ndarray:
    """Rows of a PTB-XL-ordered (12, n) signal rearranged to ``order``'s lead names."""
    return sig_ptbxl[[LEADS.index(n.upper()) for n in order]]


def mat_v4_bytes(val: np.ndarray) -> bytes:
    """A MATLAB v4 file holding int16 matrix ``val`` (rows x cols), little-endian, column-major."""
    val = np.asarray(val, dtype="<i2")
    rows, cols = val.shape
    header = struct.pack("<5i", 30, rows, cols, 0, 4) + b"val\x00"  # MOPT 30: LE, int16, full matrix
    return header + np.asfortranarray(val).tobytes(order="F")


def _checksum(x: np.ndarray) -> int:
    c = int(x.astype(np.int64).sum()) & 0xFFFF
    return c - 0x10000 if c >= 0x8000 else c


def write_cinc_record(folder: Path, name: str, mv: np.ndarray, fs: int, gain: float, age, sex: str,
                      codes: list[str], leads=CINC_LEADS) -> Path:
    """One CinC 2021 record (``.mat`` + ``.hea``) from a (12, n) mV signal whose rows are ``leads``."""
    folder.mkdir(parents=True, exist_ok=True)
    adc = np.clip(np.round(mv * gain), -32768, 32767).astype(np.int16)
    (folder / f"{name}.mat").write_bytes(mat_v4_bytes(adc))
    n = adc.shape[1]
    lines = [f"{name} {len(leads)} {fs} {n} 05-Feb-2020 11:39:16"]
    for i, lead in enumerate(leads):
        lines.append(f"{name}.mat 16+24 {gain:g}/mV 16 0 {int(adc[i, 0])} {_checksum(adc[i])} 0 {lead}")
    lines += [f"#Age: {age}", f"#Sex: {sex}", f"#Dx: {','.join(codes)}", "#Rx: Unknown", "#Hx: Unknown",
              "#Sx: Unknown"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / name


def _codes_for(rng, classes) -> list[str]:
    codes = []
    for c in classes or []:
        options = CODES_OF_CLASS[c]
        codes.append(options[int(rng.integers(len(options)))])
    if not classes or rng.random() < 0.3:
        codes.append(RHYTHM_ONLY[int(rng.integers(len(RHYTHM_ONLY)))])
    if "NORM" not in (classes or []) and rng.random() < 0.5:
        codes.append(CODES_OF_CLASS["NORM"][0])  # sinus rhythm beside an abnormality
    return list(dict.fromkeys(codes))


def write_synthetic_cinc2021(out, n_records: int = 80, seed: int = 0, databases=None) -> dict:
    out = Path(out)
    dbs = list(databases or CINC_DATABASES)
    counts = {}
    for i in range(n_records):
        db = dbs[i % len(dbs)]
        prefix, digits, fs, (lo, hi), gain = CINC_DATABASES[db]
        k = i // len(dbs) + 1 + (10646 if db == "WFDB_Ningbo" else 0)  # Ningbo goes on from Chapman's JS10646
        rng = np.random.default_rng([seed, 2021, i])
        classes, _ = draw_record(rng)
        seconds = float(rng.integers(lo, hi + 1))
        mv = synthesize_ecg(rng, classes, (fs,), seconds)[fs]
        write_cinc_record(out / db, f"{prefix}{k:0{digits}d}", _in_order(mv, CINC_LEADS), fs, gain,
                          int(rng.integers(18, 90)), "Male" if rng.random() < 0.5 else "Female",
                          _codes_for(rng, classes))
        counts[db] = counts.get(db, 0) + 1
    return counts


def write_synthetic_mimic(out, n_records: int = 50, seed: int = 0) -> dict:
    import wfdb

    out = Path(out)
    rows = []
    for i in range(n_records):
        rng = np.random.default_rng([seed, 4, i])
        subject = 10000000 + int(rng.integers(0, 99999)) * 10 + i % 10
        study = 40000000 + i * 7919 % 9999991
        rel = Path("files") / f"p{str(subject)[:4]}" / f"p{subject}" / f"s{study}"
        (out / rel).mkdir(parents=True, exist_ok=True)
        classes, _ = draw_record(rng)
        mv = _in_order(synthesize_ecg(rng, classes, (500,), 10)[500], MIMIC_LEADS)
        wfdb.wrsamp(str(study), fs=500, units=["mV"] * 12, sig_name=list(MIMIC_LEADS), p_signal=mv.T,
                    fmt=["16"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(out / rel))
        t = pd.Timestamp("2180-01-01") + pd.Timedelta(minutes=int(rng.integers(0, 10**6)))
        rows.append({"subject_id": subject, "study_id": study, "file_name": str(study),
                     "ecg_time": t.strftime("%Y-%m-%d %H:%M:%S"), "path": str(rel / str(study))})
    pd.DataFrame(rows).to_csv(out / "record_list.csv", index=False)
    return {"records": n_records}


def write_synthetic_code15(out, n_records: int = 60, seed: int = 0, per_part: int = 25) -> dict:
    import h5py

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, parts = [], []
    for i in range(n_records):
        rng = np.random.default_rng([seed, 15, i])
        classes, _ = draw_record(rng)
        seconds = 10 if rng.random() < 0.7 else 7
        mv = synthesize_ecg(rng, classes, (400,), seconds)[400]
        trace = np.zeros((4096, 12), dtype=np.float32)
        start = (4096 - mv.shape[1]) // 2
        trace[start:start + mv.shape[1]] = mv.T
        exam_id = 100000 + i * 13
        part = i // per_part
        if part == len(parts):
            parts.append(([], []))
        parts[part][0].append(exam_id)
        parts[part][1].append(trace)
        rows.append({"exam_id": exam_id, "age": int(rng.integers(18, 90)), "is_male": bool(rng.random() < 0.5),
                     "nn_predicted_age": float(rng.uniform(18, 90)), "1dAVb": "CD" in classes and rng.random() < 0.3,
                     "RBBB": "CD" in classes and rng.random() < 0.5, "LBBB": False, "SB": bool(rng.random() < 0.05),
                     "ST": bool(rng.random() < 0.05), "AF": bool(rng.random() < 0.05),
                     "patient_id": 500000 + i // 2, "death": False, "timey": float(rng.uniform(0, 8)),
                     "normal_ecg": classes == ["NORM"], "trace_file": f"exams_part{part}.hdf5"})
    for k, (ids, traces) in enumerate(parts):
        with h5py.File(out / f"exams_part{k}.hdf5", "w") as f:
            f.create_dataset("tracings", data=np.stack(traces + [np.zeros((4096, 12), np.float32)]))
            f.create_dataset("exam_id", data=np.array(ids + [0], dtype=np.int64))
    pd.DataFrame(rows).to_csv(out / "exams.csv", index=False)
    return {"records": n_records, "parts": len(parts)}


def write_synthetic_numpy(out, n_records: int = 100, seed: int = 0, sampling_rate: int = 250,
                          seconds: float = 10) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    T = int(round(seconds * sampling_rate))
    sig = np.empty((n_records, 12, T), dtype=np.float32)
    rows = []
    for i in range(n_records):
        rng = np.random.default_rng([seed, 99, i])
        classes, _ = draw_record(rng)
        sig[i] = synthesize_ecg(rng, classes, (sampling_rate,), seconds)[sampling_rate]
        rows.append({"id": f"rec{i:06d}", "patient_id": 7000 + i, **{c: int(c in classes) for c in CLASSES}})
    np.save(out / "signals.npy", sig)
    pd.DataFrame(rows).to_csv(out / "records.csv", index=False)
    (out / "sampling_rate.txt").write_text(f"{sampling_rate}\n")
    return {"records": n_records, "sampling_rate": sampling_rate}


def write_layout(layout: str, out, n_records: int, seed: int = 0) -> dict:
    """Write a synthetic corpus of ``n_records`` in ``layout``; returns a summary."""
    writers = {"cinc2021": write_synthetic_cinc2021, "mimic-iv-ecg": write_synthetic_mimic,
               "code15": write_synthetic_code15, "numpy": write_synthetic_numpy}
    if layout == "ptbxl":
        from ecgfast.data.synthetic import write_synthetic_ptbxl

        write_synthetic_ptbxl(out, n_records, seed, progress=False)
        return {"records": n_records}
    if layout not in writers:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return writers[layout](out, n_records, seed)
