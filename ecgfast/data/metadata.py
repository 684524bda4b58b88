"""PTB-XL metadata: the records table, the labels of each benchmark task, and folds.

Labels follow DESIGN.md and the PTB-XL benchmark (Strodthoff et al. 2020,
``ecg_ptbxl_benchmarking``): a record's multi-hot label for a task is the set
of what its ``scp_codes`` state, whatever the likelihood attached to a code:

* ``all``: every code in ``scp_codes`` (71 on PTB-XL);
* ``diagnostic``: the codes whose statement has ``diagnostic == 1`` (44);
* ``subdiagnostic``: their ``diagnostic_subclass`` (23);
* ``superdiagnostic``: their ``diagnostic_class`` (5, ``CLASSES``: the seed's task);
* ``form``: the codes with ``form == 1`` (19); ``rhythm``: those with ``rhythm == 1`` (12).

A task's classes are those stated by more than ``min_count`` records (the
benchmark's ``min_samples``, 0 in all its experiments: every class present),
in alphabetical order (its ``MultiLabelBinarizer``); ``superdiagnostic``
keeps the fixed ``CLASSES``. Records whose set is empty have no label for the
task and are left out of its training and evaluation.

Both csvs are validated as they are read (integral ids and folds, folds 1..10,
unique ids, ``scp_codes`` dict literals of code -> number, the columns PTB-XL
has); a violation raises ``PTBXLError`` naming the csv, the record and the
column, never a pandas traceback or a silently truncated value.
"""
from __future__ import annotations

import ast
import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgfast import CLASSES, TASKS
from ecgfast.base.errors import ConfigError
from ecgfast.data.errors import PTBXLError, UnsafePathError

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
DATABASE_COLUMNS = ("patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
# The statement columns the tasks read; 0/1 flags and class names.
STATEMENT_FLAGS = ("diagnostic", "form", "rhythm")
STATEMENT_NAMES = ("diagnostic_class", "diagnostic_subclass")
DEFAULT_TASK = "superdiagnostic"
# task -> (the statement flag a code needs, the statement column naming its class; None: the code itself)
_TASK_RULES = {"all": (None, None), "diagnostic": ("diagnostic", None),
               "subdiagnostic": ("diagnostic", "diagnostic_subclass"),
               "superdiagnostic": ("diagnostic", "diagnostic_class"),
               "form": ("form", None), "rhythm": ("rhythm", None)}
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
    scp_codes: list | None = None  # per record, the parsed dict of SCP code -> likelihood
    statements: dict | None = None  # statement_table() of scp_statements.csv

    def __len__(self) -> int:
        return len(self.ecg_ids)

    def filenames(self, sampling_rate: int) -> list[str]:
        """Record paths relative to the root (no extension) at 100 or 500 Hz.

        An empty cell raises ``UnsafePathError``; where the paths lead is checked
        by ``records.record_path`` (they must stay inside the data root).
        """
        column = SAMPLING_RATES[check_sampling_rate(sampling_rate)]
        files = self.records[column].tolist()
        for ecg_id, f in zip(self.ecg_ids, files):
            if not isinstance(f, str) or not f.strip():
                raise UnsafePathError(f"{self.root / DATABASE_CSV}: record ecg_id={ecg_id}: {column} is empty; "
                                      "fix the csv")
        return files

    def label_counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(self.classes, self.labels.sum(0))}

    def task_labels(self, task: str, classes=None, min_count: int = 0) -> tuple[np.ndarray, tuple]:
        """(multi-hot float32 (n, C), classes) of ``task``; see ``task_labels``."""
        sets = task_code_sets(self.scp_codes, self.statements, task, where=str(self.root / STATEMENTS_CSV))
        return task_labels(sets, task, classes, min_count)


def check_sampling_rate(sampling_rate: int) -> int:
    if sampling_rate not in SAMPLING_RATES:
        raise PTBXLError(f"unsupported sampling rate {sampling_rate!r} Hz: PTB-XL has 100 and 500 Hz")
    return int(sampling_rate)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise PTBXLError(f"{path}: file not found (is this a PTB-XL folder?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mixed-type columns are checked below
            df = pd.read_csv(path, index_col=0)
    except Exception as exc:  # pandas raises parser, decoding, empty-data and value errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PTBXLError(f"{path}: not a readable csv ({first}); restore it from PTB-XL") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PTBXLError(f"{path}: missing column(s) {', '.join(missing)}; restore it from PTB-XL")
    return df


def _as_integers(values, path: Path, names: list[str], column: str, lo: int | None = None,
                 hi: int | None = None) -> np.ndarray:
    """int64 of a csv column, refusing empty, non-numeric, fractional and out-of-range cells.

    ``names[i]`` says which row cell ``i`` is in (``record ecg_id=5`` or ``line 7``).
    """
    values = pd.Series(values).reset_index(drop=True)
    if values.dtype == bool:
        raise PTBXLError(f"{path}: column {column} holds True/False, expected integers")
    num = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
    ok = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2.0 ** 62)
    if lo is not None:
        ok &= num >= lo
    if hi is not None:
        ok &= num <= hi
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        cell = values.iloc[i]
        shown = repr(cell if isinstance(cell, str) else str(cell))
        if cell is None or (isinstance(cell, float) and np.isnan(cell)) or (isinstance(cell, str) and not cell.strip()):
            problem = "is empty"
        elif not np.isfinite(num[i]) or num[i] != np.round(num[i]) or abs(num[i]) >= 2.0 ** 62:
            problem = f"{shown} is not an integer"
        else:
            problem = f"{shown} is not in {lo}..{hi}" if hi is not None else f"{shown} is below {lo}"
        raise PTBXLError(f"{path}: {names[i]}: {column} {problem}; fix the csv")
    return num.astype(np.int64)


def _parse_scp_codes(cells: pd.Series, path: Path) -> list[dict]:
    """Each cell a dict literal of SCP code (str) -> likelihood (a finite number)."""
    parsed = []
    for ecg_id, cell in cells.items():
        try:
            value = ast.literal_eval(cell) if isinstance(cell, str) else None
        except Exception:  # SyntaxError, ValueError, TypeError (unhashable key), MemoryError, RecursionError
            value = None
        if not isinstance(value, dict):
            shown = cell if not isinstance(cell, str) or len(cell) <= 80 else cell[:77] + "..."
            raise PTBXLError(
                f"{path}: record ecg_id={ecg_id}: scp_codes {shown!r} is not a dict literal "
                "such as {'NORM': 100.0}; fix the csv"
            )
        for code, likelihood in value.items():
            if (not isinstance(code, str) or isinstance(likelihood, bool)
                    or not isinstance(likelihood, (int, float)) or not math.isfinite(likelihood)):
                raise PTBXLError(f"{path}: record ecg_id={ecg_id}: scp_codes entry {code!r}: {likelihood!r} "
                                 "is not an SCP code mapped to a number such as {'NORM': 100.0}; fix the csv")
        parsed.append(value)
    return parsed


def _check_statements(statements: pd.DataFrame, path: Path) -> pd.DataFrame:
    if statements.index.has_duplicates:
        dup = statements.index[statements.index.duplicated()][0]
        raise PTBXLError(f"{path}: SCP code {dup!r} appears more than once; restore it from PTB-XL")
    statements = statements.copy()
    for column in (c for c in STATEMENT_FLAGS if c in statements.columns):
        values = pd.to_numeric(statements[column], errors="coerce")
        bad = values.isna() & statements[column].notna()
        if bad.any():
            code = statements.index[bad.to_numpy()][0]
            raise PTBXLError(f"{path}: SCP code {code!r}: {column} {statements[column][bad].iloc[0]!r} "
                             "is not a number (expected 1.0 or empty); restore it from PTB-XL")
        statements[column] = values
    return statements


def check_task(task: str) -> str:
    """``task`` if it is one of ``TASKS``, else a ``ConfigError`` listing them."""
    if task not in TASKS:
        raise ConfigError(f"--task {task!r} is not a PTB-XL task; expected one of {', '.join(TASKS)}")
    return task


def _flag(value) -> bool:
    return bool(value == 1) if value is not None and not pd.isna(value) else False


def _name(value) -> str | None:
    return None if value is None or pd.isna(value) or not str(value).strip() else str(value)


def statement_table(statements: pd.DataFrame) -> dict:
    """Per SCP code, what the tasks read of its statement: ``{code: {"diagnostic": 0/1, "form": 0/1,
    "rhythm": 0/1, "diagnostic_class": name or None, "diagnostic_subclass": name or None}}``.

    A column the csv lacks is left out of every entry (the tasks that need it then say so).
    """
    flags = [c for c in STATEMENT_FLAGS if c in statements.columns]
    names = [c for c in STATEMENT_NAMES if c in statements.columns]
    numeric = {c: pd.to_numeric(statements[c], errors="coerce") for c in flags}
    return {str(code): {**{c: int(_flag(numeric[c].iloc[i])) for c in flags},
                        **{c: _name(statements[c].iloc[i]) for c in names}}
            for i, code in enumerate(statements.index)}


def task_code_sets(scp_codes: list[dict], table: dict, task: str, where: str = STATEMENTS_CSV) -> list[list[str]]:
    """Per record, the sorted classes ``task`` states (the benchmark's ``compute_label_aggregations``).

    ``all`` takes every code of ``scp_codes``; the others only codes whose statement
    in ``table`` (``statement_table``) has the task's flag set, mapped to its class
    column where the task has one (a code without a class name adds nothing).
    """
    flag, column = _TASK_RULES[check_task(task)]
    if flag is not None:
        needed = [c for c in (flag, column) if c is not None]
        for c in needed:
            if table and not all(c in entry for entry in table.values()):
                raise PTBXLError(f"{where}: has no column {c}, which the {task} task needs; restore it from PTB-XL")
    out = []
    for codes in scp_codes:
        stated = set()
        for code in codes:
            if flag is None:
                stated.add(str(code))
                continue
            entry = table.get(code)
            if entry is None or not entry.get(flag):
                continue
            name = code if column is None else entry.get(column)
            if name is not None:
                stated.add(name)
        out.append(sorted(stated))
    return out


def task_labels(code_sets: list[list[str]], task: str, classes=None,
                min_count: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """Multi-hot float32 (n, C) of ``code_sets`` (``task_code_sets``) and its classes.

    ``classes`` fixes the columns (a checkpoint's: a class no record states is a zero
    column, a stated class not in it is ignored); by default they are the classes
    stated by more than ``min_count`` records, sorted (``superdiagnostic``: ``CLASSES``).
    """
    check_task(task)
    if classes is None:
        if task == DEFAULT_TASK:
            classes = CLASSES
        else:
            counts: dict[str, int] = {}
            for stated in code_sets:
                for c in stated:
                    counts[c] = counts.get(c, 0) + 1
            classes = tuple(sorted(c for c, k in counts.items() if k > min_count))
    classes = tuple(str(c) for c in classes)
    return _multi_hot(code_sets, {c: j for j, c in enumerate(classes)}, len(classes)), classes


def _multi_hot(rows: list, column: dict, width: int) -> np.ndarray:
    """(len(rows), width) float32: 1 where a row states a key that ``column`` maps to a column."""
    labels = np.zeros((len(rows), width), dtype=np.float32)
    for i, stated in enumerate(rows):
        for key in stated:
            j = column.get(key)
            if j is not None:
                labels[i, j] = 1.0
    return labels


def superdiagnostic_labels(scp_codes: list[dict], statements: pd.DataFrame,
                           classes: tuple = CLASSES) -> np.ndarray:
    """Multi-hot (n, len(classes)) float32 labels from parsed ``scp_codes`` dicts."""
    diagnostic = statements[statements["diagnostic"] == 1]["diagnostic_class"].dropna()
    code_to_class = {code: classes.index(c) for code, c in diagnostic.items() if c in classes}
    return _multi_hot(scp_codes, code_to_class, len(classes))


def load_metadata(root: str | Path) -> PTBXLMetadata:
    """Read and validate ``ptbxl_database.csv`` and ``scp_statements.csv`` of a PTB-XL folder.

    ``ecg_id``, ``patient_id`` and ``strat_fold`` must be integers (``3.0`` is, ``3.5`` and
    ``abc`` are not), ids unique and non-negative, folds in 1..10, ``scp_codes`` dict
    literals of code -> number; anything else raises ``PTBXLError`` naming the csv, the
    record and the column.
    """
    root = Path(root)
    if not root.is_dir():
        raise PTBXLError(f"{root}: PTB-XL folder not found")
    db_path, st_path = root / DATABASE_CSV, root / STATEMENTS_CSV
    db = _read_csv(db_path, DATABASE_COLUMNS)
    statements = _check_statements(_read_csv(st_path, STATEMENT_COLUMNS), st_path)
    if len(db) == 0:
        raise PTBXLError(f"{db_path}: holds no records; restore it from PTB-XL")
    lines = [f"line {i + 2}" for i in range(len(db))]
    ids = _as_integers(db.index.to_series(), db_path, lines, "ecg_id", lo=0)
    if len(np.unique(ids)) != len(ids):
        u, counts = np.unique(ids, return_counts=True)
        raise PTBXLError(f"{db_path}: ecg_id {int(u[counts > 1][0])} appears more than once; fix the csv")
    db.index = pd.Index(ids, name="ecg_id")
    db = db.sort_index()
    names = [f"record ecg_id={i}" for i in db.index]
    patient_ids = _as_integers(db["patient_id"], db_path, names, "patient_id", lo=0)
    folds = _as_integers(db["strat_fold"], db_path, names, "strat_fold", lo=1, hi=10)
    scp_codes = _parse_scp_codes(db["scp_codes"], db_path)
    labels = superdiagnostic_labels(scp_codes, statements)
    return PTBXLMetadata(
        root=root,
        records=db,
        ecg_ids=db.index.to_numpy().astype(np.int64),
        patient_ids=patient_ids,
        folds=folds,
        labels=labels,
        has_label=labels.any(axis=1),
        version=KNOWN_VERSIONS.get(len(db), "custom"),
        scp_codes=scp_codes,
        statements=statement_table(statements),
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
