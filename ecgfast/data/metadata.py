"""PTB-XL metadata: the records table, superdiagnostic labels and folds.

Labels follow DESIGN.md and the PTB-XL benchmark: a record's multi-hot label is
the set of ``diagnostic_class`` of every code in its ``scp_codes`` whose
statement has ``diagnostic == 1``, whatever the likelihood attached to it.
Records whose set is empty have no label (``has_label`` False).
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgfast import CLASSES
from ecgfast.data.errors import PTBXLError

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
DATABASE_COLUMNS = ("patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
SAMPLING_RATES = {100: "filename_lr", 500: "filename_hr"}
# Row counts of the official releases; anything else is reported as "custom".
KNOWN_VERSIONS = {21837: "1.0.1", 21799: "1.0.3"}


@dataclass
class PTBXLMetadata:
    """The records of a PTB-XL folder, in ``ecg_id`` order."""

    root: Path
    records: pd.DataFrame  # index ecg_id, the csv's columns
    ecg_ids: np.ndarray  # int64 (n,)
    patient_ids: np.ndarray  # int64 (n,)
    folds: np.ndarray  # int64 (n,), 1..10
    labels: np.ndarray  # float32 (n, 5) multi-hot in CLASSES order
    has_label: np.ndarray  # bool (n,)
    classes: tuple = CLASSES
    version: str = "custom"

    def __len__(self) -> int:
        return len(self.ecg_ids)

    def filenames(self, sampling_rate: int) -> list[str]:
        """Record paths relative to the root (no extension) at 100 or 500 Hz."""
        return self.records[SAMPLING_RATES[check_sampling_rate(sampling_rate)]].tolist()

    def label_counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(self.classes, self.labels.sum(0))}


def check_sampling_rate(sampling_rate: int) -> int:
    if sampling_rate not in SAMPLING_RATES:
        raise PTBXLError(f"unsupported sampling rate {sampling_rate!r} Hz: PTB-XL has 100 and 500 Hz")
    return int(sampling_rate)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise PTBXLError(f"{path}: file not found (is this a PTB-XL folder?)")
    try:
        df = pd.read_csv(path, index_col=0)
    except Exception as exc:
        raise PTBXLError(f"{path}: not a readable csv ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PTBXLError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _parse_scp_codes(cells: pd.Series, path: Path) -> list[dict]:
    parsed = []
    for ecg_id, cell in cells.items():
        try:
            value = ast.literal_eval(cell) if isinstance(cell, str) else None
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, dict):
            raise PTBXLError(
                f"{path}: record ecg_id={ecg_id}: scp_codes {cell!r} is not a dict literal "
                "such as {'NORM': 100.0}"
            )
        parsed.append(value)
    return parsed


def superdiagnostic_labels(scp_codes: list[dict], statements: pd.DataFrame,
                           classes: tuple = CLASSES) -> np.ndarray:
    """Multi-hot (n, len(classes)) float32 labels from parsed ``scp_codes`` dicts."""
    diagnostic = statements[statements["diagnostic"] == 1]["diagnostic_class"].dropna()
    code_to_class = {code: classes.index(c) for code, c in diagnostic.items() if c in classes}
    labels = np.zeros((len(scp_codes), len(classes)), dtype=np.float32)
    for i, codes in enumerate(scp_codes):
        for code in codes:
            j = code_to_class.get(code)
            if j is not None:
                labels[i, j] = 1.0
    return labels


def load_metadata(root: str | Path) -> PTBXLMetadata:
    """Read ``ptbxl_database.csv`` and ``scp_statements.csv`` of a PTB-XL folder."""
    root = Path(root)
    if not root.is_dir():
        raise PTBXLError(f"{root}: PTB-XL folder not found")
    db_path, st_path = root / DATABASE_CSV, root / STATEMENTS_CSV
    db = _read_csv(db_path, DATABASE_COLUMNS)
    statements = _read_csv(st_path, STATEMENT_COLUMNS)
    db.index = db.index.astype(np.int64)
    db.index.name = "ecg_id"
    db = db.sort_index()
    if db.index.has_duplicates:
        dup = db.index[db.index.duplicated()][0]
        raise PTBXLError(f"{db_path}: ecg_id {dup} appears more than once")
    for col in ("patient_id", "strat_fold"):
        if db[col].isna().any():
            bad = db.index[db[col].isna()][0]
            raise PTBXLError(f"{db_path}: record ecg_id={bad}: {col} is empty")
    folds = db["strat_fold"].to_numpy().astype(np.int64)
    bad = ~np.isin(folds, np.arange(1, 11))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PTBXLError(f"{db_path}: record ecg_id={db.index[i]}: strat_fold {folds[i]} is not in 1..10")
    labels = superdiagnostic_labels(_parse_scp_codes(db["scp_codes"], db_path), statements)
    return PTBXLMetadata(
        root=root,
        records=db,
        ecg_ids=db.index.to_numpy(),
        patient_ids=db["patient_id"].to_numpy().astype(np.int64),
        folds=folds,
        labels=labels,
        has_label=labels.any(axis=1),
        version=KNOWN_VERSIONS.get(len(db), "custom"),
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
