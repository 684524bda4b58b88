"""A synthetic PTB-XL in the real layout (``ecgfast synth``).

Both csvs with PTB-XL's columns, ``scp_codes`` as dict literals of real SCP
codes, ``strat_fold`` 1..10 with each patient in one fold, and WFDB format-16
records written by ``wfdb.wrsamp`` at 100 and/or 500 Hz.

Each ECG is built from a heart-vector model: every wave (P, Q, R, S, T and the
ST segment) is a Gaussian pulse along a 3-D dipole direction, projected onto
the 12 lead axes, so lead polarities and amplitudes relate as in a real ECG
(III = II - I, aVR = -(I + II)/2, ...). Beats follow a heart rate with
variability; noise and baseline wander are added. Diagnostic classes change
the model as a cardiologist would look for them -- MI: pathological Q waves
and ST elevation over one territory; STTC: ST depression and flattened or
inverted T; CD: wide QRS with a terminal R'; HYP: tall precordial QRS -- with
a random strength, so that a classifier can learn them but not trivially.
Each record is drawn from its own generator seeded by (seed, ecg_id): the same
seed writes the same bytes. Beside the diagnostic codes, each record states a
rhythm (sinus mostly; AFIB, STACH, SBRAD, SARRH) and sometimes a form statement
(PVC, LOWT, QWAVE, ABQRS, HVOLT), drawn from a second generator (seed, ecg_id, 1)
so the waveforms stay as they were: every PTB-XL task (``--task``) has classes
to learn the label rules on, though these extra statements do not shape the
signal.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecgfast import LEADS
from ecgfast.base.progress import progress_bar
from ecgfast.data.metadata import SAMPLING_RATES
from ecgfast.data.records import RECORD_SECONDS

STATEMENTS = Path(__file__).parent / "resources" / "scp_statements.csv"

# Heart-vector axes: x to the patient's left, y inferior, z anterior.
_V_AZIMUTH = np.deg2rad([115.0, 90.0, 75.0, 60.0, 30.0, 0.0])  # V1..V6 in the horizontal plane
_V_AXES = np.stack([np.cos(_V_AZIMUTH), np.zeros(6), np.sin(_V_AZIMUTH)], axis=1)
_LEAD_I = np.array([1.0, 0.0, 0.0])
_LEAD_II = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
# Independent leads: I, II and V1..V6; the other four are derived from I and II
# as an electrocardiograph does, so III = II - I holds exactly.
_INDEPENDENT = np.stack([_LEAD_I, _LEAD_II, *(1.4 * _V_AXES)])  # (8, 3); precordial leads sit closer
_DERIVE = np.zeros((12, 8))
_DERIVE[[0, 1], [0, 1]] = 1.0
_DERIVE[2, :2] = [-1.0, 1.0]  # III = II - I
_DERIVE[3, :2] = [-0.5, -0.5]  # aVR = -(I + II) / 2
_DERIVE[4, :2] = [1.0, -0.5]  # aVL = I - II / 2
_DERIVE[5, :2] = [-0.5, 1.0]  # aVF = II - I / 2
_DERIVE[6:, 2:] = np.eye(6)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# name: (direction, amplitude mV, offset from the R peak in s, width s)
_WAVES = {
    "P": (_unit([0.5, 0.8, 0.2]), 0.15, -0.16, 0.022),
    "Q": (_unit([-0.5, 0.2, 0.8]), 0.12, -0.028, 0.010),
    "R": (_unit([0.55, 0.7, -0.45]), 1.2, 0.0, 0.011),
    "S": (_unit([-0.4, -0.3, -0.85]), 0.45, 0.028, 0.011),
    "ST": (_unit([0.5, 0.6, 0.3]), 0.0, 0.12, 0.045),
    "T": (_unit([0.5, 0.6, 0.35]), 0.32, 0.26, 0.045),
}

# SCP codes whose statements (diagnostic == 1) map to each class.
_CODES = {
    "NORM": ["NORM"],
    "MI": ["IMI", "ASMI", "AMI", "ILMI"],
    "STTC": ["NDT", "NST_", "ISC_", "ISCAL"],
    "CD": ["CRBBB", "IRBBB", "CLBBB", "LAFB", "IVCD"],
    "HYP": ["LVH"],
}
_PRIMARY = ["NORM", "MI", "STTC", "CD", "HYP", None]
_PRIMARY_P = [0.42, 0.16, 0.14, 0.13, 0.08, 0.07]
_LIKELIHOOD = [15.0, 35.0, 50.0, 80.0, 100.0]
# Rhythm statements (rhythm == 1) and form-only statements (form == 1, not diagnostic).
_RHYTHMS, _RHYTHM_P = ["SR", "AFIB", "STACH", "SBRAD", "SARRH"], [0.72, 0.08, 0.08, 0.07, 0.05]
_FORMS, _FORM_P = ["PVC", "LOWT", "QWAVE", "ABQRS", "HVOLT"], 0.3


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    """A random rotation of up to ``degrees`` about each axis: anatomy varies."""
    a, b, c = np.deg2rad(rng.uniform(-degrees, degrees, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_record(rng: np.random.Generator) -> tuple[list[str], dict]:
    """Draw a record's classes and the SCP codes that state them."""
    primary = _PRIMARY[rng.choice(len(_PRIMARY), p=_PRIMARY_P)]
    classes = [] if primary is None else [primary]
    if primary not in (None, "NORM") and rng.random() < 0.18:  # comorbidity
        others = [c for c in ("MI", "STTC", "CD", "HYP") if c != primary]
        classes.append(others[rng.integers(len(others))])
    codes: dict = {}
    for c in classes:
        code = _CODES[c][rng.integers(len(_CODES[c]))]
        codes[code] = 100.0 if c == "NORM" else float(_LIKELIHOOD[rng.integers(len(_LIKELIHOOD))])
    if primary is None and rng.random() < 0.5:
        codes["LVOLT"] = 0.0  # a form statement only: no diagnostic label
    codes["SR"] = 0.0
    return classes, codes


def draw_statements(rng: np.random.Generator, codes: dict) -> dict:
    """``codes`` with its rhythm (replacing the sinus ``SR``) and, sometimes, a form statement."""
    codes = {k: v for k, v in codes.items() if k != "SR"}
    codes[_RHYTHMS[rng.choice(len(_RHYTHMS), p=_RHYTHM_P)]] = 0.0
    if rng.random() < _FORM_P:
        codes[_FORMS[rng.integers(len(_FORMS))]] = 0.0
    return codes


def synthesize_ecg(rng: np.random.Generator, classes: list[str], sampling_rates=tuple(SAMPLING_RATES),
                   seconds: float = RECORD_SECONDS) -> dict:
    """A ``seconds``-long (10 s by default) 12-lead ECG in mV for each sampling rate, with the effects of ``classes``.

    Rows are in PTB-XL's lead order; any positive rate works (the corpus layouts use 257..1000 Hz).
    """
    waves = {k: [d.copy(), a * rng.uniform(0.65, 1.35), o, w * rng.uniform(0.8, 1.2)]
             for k, (d, a, o, w) in _WAVES.items()}
    qrs_scale = 1.0
    if "MI" in classes:
        s = rng.uniform(0.15, 1.0)
        territory = _unit([0.1, 1.0, 0.0]) if rng.random() < 0.5 else _unit([0.2, 0.0, 1.0])
        waves["Qpath"] = [-territory, 0.25 * s, -0.03, 0.016]
        st = waves["ST"]
        st[0], st[1] = territory, 0.10 * s
        waves["R"][1] *= 1 - 0.25 * s
    if "STTC" in classes:
        s = rng.uniform(0.15, 1.0)
        if "MI" not in classes:
            waves["ST"][0], waves["ST"][1] = -waves["R"][0], 0.07 * s
        waves["T"][1] *= 1.0 - 1.4 * s  # flattened, then inverted
    if "CD" in classes:
        s = rng.uniform(0.15, 1.0)
        qrs_scale = 1.15 + 0.75 * s
        waves["R'"] = [_unit([-0.3, 0.0, 0.95]), 0.35 * s, 0.07 * qrs_scale / 2, 0.014 * qrs_scale]
    if "HYP" in classes:
        s = rng.uniform(0.15, 1.0)
        waves["R"][1] *= 1.1 + 0.5 * s
        waves["S"][1] *= 1.2 + 0.7 * s
        waves["T"][1] *= 1.0 - 0.4 * s  # strain
    for k in ("Q", "R", "S"):
        waves[k][2] *= qrs_scale
        waves[k][3] *= qrs_scale

    rotation = _rotation(rng, 25.0)
    lead_gain = rng.uniform(0.85, 1.15, 8)
    heart_rate = rng.uniform(52, 100)
    n_rr = 40 if seconds <= RECORD_SECONDS else int(np.ceil(seconds * 2.2)) + 4  # 40 for 10 s: same draws
    rr = 60.0 / heart_rate * (1 + 0.04 * rng.standard_normal(n_rr))  # heart-rate variability
    beats = rng.uniform(-0.8, 0.2) + np.cumsum(rr)
    beats = beats[beats < seconds + 0.6]
    qt_stretch = np.sqrt(np.clip(rr[: len(beats)], 0.4, 1.6))  # Bazett: T follows RR
    noise_mv = rng.uniform(0.005, 0.025)
    wander = [(rng.uniform(0.05, 0.4, 2), rng.uniform(0.02, 0.12, (2, 8)), rng.uniform(0, 2 * np.pi, (2, 8)))]

    out = {}
    for fs in sampling_rates:
        t = np.arange(int(round(seconds * fs))) / fs
        dipole = np.zeros((3, t.size))
        for name, (direction, amp, offset, width) in waves.items():
            if amp == 0:
                continue
            scale = qt_stretch if name in ("ST", "T") else 1.0
            centres = beats + offset * scale  # (n_beats,)
            pulses = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / width) ** 2).sum(0)
            dipole += np.outer(rotation @ direction, amp * pulses)
        ecg = (_INDEPENDENT @ dipole) * lead_gain[:, None]
        (freqs, amps, phases), = wander
        ecg += (amps[:, :, None] * np.sin(2 * np.pi * freqs[:, None, None] * t + phases[:, :, None])).sum(0)
        noise_rng = np.random.default_rng(rng.integers(2**63) + fs)
        ecg += noise_mv * noise_rng.standard_normal(ecg.shape)
        out[fs] = np.clip(_DERIVE @ ecg, -32.0, 32.0)  # int16 at gain 1000
    return out


def _metadata_row(rng, ecg_id, patient_id, fold, codes) -> dict:
    sub = f"{(ecg_id // 1000) * 1000:05d}"
    day = pd.Timestamp("1985-01-01") + pd.Timedelta(seconds=int(rng.integers(0, 15 * 365 * 86400)))
    return {
        "ecg_id": ecg_id, "patient_id": float(patient_id), "age": float(rng.integers(18, 90)),
        "sex": int(rng.integers(0, 2)), "height": np.nan, "weight": float(rng.integers(50, 110)),
        "nurse": float(rng.integers(0, 12)), "site": float(rng.integers(0, 50)), "device": "CS-12   E",
        "recording_date": day.strftime("%Y-%m-%d %H:%M:%S"), "report": "synthetic ecg",
        "scp_codes": repr(codes), "heart_axis": np.nan, "infarction_stadium1": np.nan,
        "infarction_stadium2": np.nan, "validated_by": np.nan, "second_opinion": False,
        "initial_autogenerated_report": False, "validated_by_human": True, "baseline_drift": np.nan,
        "static_noise": np.nan, "burst_noise": np.nan, "electrodes_problems": np.nan,
        "extra_beats": np.nan, "pacemaker": np.nan, "strat_fold": fold,
        "filename_lr": f"records100/{sub}/{ecg_id:05d}_lr", "filename_hr": f"records500/{sub}/{ecg_id:05d}_hr",
    }


def _write_record(job) -> dict:
    out, seed, ecg_id, patient_id, fold, sampling_rates = job
    rec_rng = np.random.default_rng([seed, ecg_id])
    classes, codes = draw_record(rec_rng)
    signals = synthesize_ecg(rec_rng, classes, sampling_rates)
    codes = draw_statements(np.random.default_rng([seed, ecg_id, 1]), codes)
    row = _metadata_row(rec_rng, ecg_id, patient_id, fold, codes)
    for fs in sampling_rates:
        rel = Path(row["filename_lr" if fs == 100 else "filename_hr"])
        (out / rel.parent).mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(rel.name, fs=fs, units=["mV"] * 12, sig_name=list(LEADS),
                    p_signal=signals[fs].T, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                    baseline=[0] * 12, write_dir=str(out / rel.parent))
    return row


def write_synthetic_ptbxl(out: str | Path, n_records: int = 2000, seed: int = 0,
                          sampling_rates=tuple(SAMPLING_RATES), progress: bool = True,
                          workers: int | None = None) -> Path:
    """Write a synthetic PTB-XL of ``n_records`` records into ``out``; returns ``out``."""
    out = Path(out)
    sampling_rates = tuple(sorted(set(int(f) for f in sampling_rates)))
    if n_records < 1:
        raise ValueError(f"n_records must be positive, got {n_records}")
    if not sampling_rates or any(f not in SAMPLING_RATES for f in sampling_rates):
        raise ValueError(f"sampling rates must be among 100 and 500 Hz, got {sampling_rates}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STATEMENTS, out / "scp_statements.csv")

    # Patients: some have two or three ECGs; every patient's ECGs share one fold.
    rng = np.random.default_rng([seed, 0])
    visits = rng.choice([1, 2, 3], size=n_records, p=[0.8, 0.15, 0.05])
    patient_of = np.repeat(np.arange(len(visits)), visits)[:n_records]
    patient_ids = 10000 + rng.permutation(len(visits))[patient_of]
    patient_fold = rng.integers(1, 11, size=len(visits))
    folds = patient_fold[patient_of]

    jobs = [(out, seed, i + 1, int(patient_ids[i]), int(folds[i]), sampling_rates)
            for i in range(n_records)]
    workers = max(1, min(workers or os.cpu_count() or 1, n_records))
    bar = dict(total=n_records, desc="synthetic PTB-XL", unit="rec", enabled=progress)
    if workers == 1:
        rows = [_write_record(job) for job in progress_bar(jobs, **bar)]
    else:  # records are independent (own generator each): same bytes for any worker count
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rows = list(progress_bar(pool.imap(_write_record, jobs, chunksize=16), **bar))
    db = pd.DataFrame(rows).set_index("ecg_id")
    from ecgfast.base.fs import atomic_write

    atomic_write(out / "ptbxl_database.csv", lambda f: db.to_csv(f), mode="w")  # written last: marks it complete
    return out
