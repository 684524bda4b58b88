"""The PTB-XL benchmark's label tasks (Strodthoff et al. 2020): rules, class counts, and the cache's API."""
from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest

from ecgfast import CLASSES, TASKS
from ecgfast.base.errors import ConfigError
from ecgfast.data import build_cache, load_metadata, open_cache
from ecgfast.data.errors import PTBXLError
from ecgfast.data.metadata import task_code_sets, task_labels

# The benchmark paper's Table 1 (PTB-XL 1.0.1): classes per task, every class present (min_samples 0).
BENCHMARK_CLASSES = {"all": 71, "diagnostic": 44, "subdiagnostic": 23, "superdiagnostic": 5, "form": 19, "rhythm": 12}


@pytest.fixture(scope="module")
def sample_meta(ptbxl_sample_root):
    return load_metadata(ptbxl_sample_root)


@pytest.fixture(scope="module")
def sample_cache(ptbxl_sample_root, tmp_path_factory):
    """The 200 records of the real sample present at 100 Hz."""
    path = build_cache(ptbxl_sample_root, tmp_path_factory.mktemp("real") / "c.h5", 100, skip_missing=True,
                       progress=False)
    with open_cache(path) as c:
        yield c


def test_full_ptbxl_csv_gives_the_benchmarks_class_counts(sample_meta):
    for task, k in BENCHMARK_CLASSES.items():
        labels, classes = sample_meta.task_labels(task)
        assert len(classes) == k, task
        assert list(classes) == sorted(classes) and labels.shape == (len(sample_meta), k)
        assert (labels.sum(0) > 0).all()  # min_count 0: every class kept is stated by some record
    assert sample_meta.task_labels("superdiagnostic")[1] == CLASSES


def test_superdiagnostic_is_the_seeds_labels_exactly(sample_meta):
    labels, classes = sample_meta.task_labels("superdiagnostic")
    assert classes == sample_meta.classes
    np.testing.assert_array_equal(labels, sample_meta.labels)


def test_every_task_follows_its_rule_row_by_row(sample_meta, ptbxl_sample_root):
    """An independent re-derivation from the two csvs, on every 97th record."""
    st = pd.read_csv(ptbxl_sample_root / "scp_statements.csv", index_col=0)
    diag = st[st.diagnostic == 1]
    rules = {
        "all": lambda codes: set(codes),
        "diagnostic": lambda codes: {c for c in codes if c in diag.index},
        "subdiagnostic": lambda codes: {diag.diagnostic_subclass[c] for c in codes if c in diag.index
                                        and isinstance(diag.diagnostic_subclass[c], str)},
        "superdiagnostic": lambda codes: {diag.diagnostic_class[c] for c in codes if c in diag.index},
        "form": lambda codes: {c for c in codes if c in st.index and st.form[c] == 1},
        "rhythm": lambda codes: {c for c in codes if c in st.index and st.rhythm[c] == 1},
    }
    for task, rule in rules.items():
        labels, classes = sample_meta.task_labels(task)
        for i in range(0, len(sample_meta), 97):
            codes = ast.literal_eval(sample_meta.records.scp_codes.iloc[i])
            got = {c for c, v in zip(classes, labels[i]) if v}
            assert got == rule(codes), (task, int(sample_meta.ecg_ids[i]))


def test_the_cache_gives_the_metadatas_labels_for_its_rows(sample_meta, sample_cache):
    rows = np.searchsorted(sample_meta.ecg_ids, sample_cache.ecg_ids)
    counts = {}
    for task in TASKS:
        labels, classes = sample_cache.task_labels(task)
        want, _ = sample_meta.task_labels(task, classes=classes)
        np.testing.assert_array_equal(labels, want[rows], err_msg=task)
        counts[task] = (len(classes), int(labels.any(axis=1).sum()))
    # The cache's classes are those its 200 records state: fewer than the full PTB-XL's.
    assert all(0 < counts[t][0] <= BENCHMARK_CLASSES[t] for t in TASKS)
    assert counts["superdiagnostic"] == (5, int(sample_cache.has_label.sum()))


def test_with_task_sets_labels_classes_and_labelled_records(sample_cache):
    view = sample_cache.with_task("form")
    labels, classes = sample_cache.task_labels("form")
    assert view.task == "form" and view.classes == classes and view.path == sample_cache.path
    np.testing.assert_array_equal(view.labels, labels)
    test = view.split_indices("test", labelled_only=True)
    np.testing.assert_array_equal(test, np.flatnonzero(np.isin(view.folds, [10]) & labels.any(axis=1)))
    assert sample_cache.classes == CLASSES and sample_cache.task == "superdiagnostic"  # the original is unchanged
    np.testing.assert_array_equal(view.signals([0]), sample_cache.signals([0]))


def test_fixed_classes_give_a_checkpoints_columns(sample_cache):
    labels, classes = sample_cache.task_labels("rhythm")
    asked = ("TRIGU",) + classes[::-1]  # a class no record here states, then the others reversed
    fixed, got = sample_cache.task_labels("rhythm", classes=asked)
    assert got == asked
    np.testing.assert_array_equal(fixed[:, 0], 0)
    np.testing.assert_array_equal(fixed[:, 1:], labels[:, ::-1])


def test_min_count_drops_rare_classes_and_the_records_left_without_one():
    sets = [["A", "B"], ["A"], ["A", "C"], ["B"], ["C"], ["D"]]
    labels, classes = task_labels(sets, "all", min_count=1)
    assert classes == ("A", "B", "C")  # D is stated once: not more than once
    np.testing.assert_array_equal(labels.any(axis=1), [1, 1, 1, 1, 1, 0])
    assert task_labels(sets, "all")[1] == ("A", "B", "C", "D")


def test_codes_of_any_likelihood_count_and_unknown_codes_only_in_all():
    table = {"NORM": {"diagnostic": 1, "form": 0, "rhythm": 0, "diagnostic_class": "NORM",
                      "diagnostic_subclass": "NORM"},
             "SR": {"diagnostic": 0, "form": 0, "rhythm": 1, "diagnostic_class": None, "diagnostic_subclass": None}}
    codes = [{"NORM": 0.0, "SR": 0.0, "XYZ": 50.0}]
    assert task_code_sets(codes, table, "all") == [["NORM", "SR", "XYZ"]]
    assert task_code_sets(codes, table, "diagnostic") == [["NORM"]]
    assert task_code_sets(codes, table, "rhythm") == [["SR"]]
    assert task_code_sets(codes, table, "form") == [[]]


def test_an_unknown_task_lists_the_valid_names(sample_cache):
    names = ", ".join(TASKS)
    with pytest.raises(ConfigError, match=rf"--task 'rythm' is not a PTB-XL task; expected one of {names}"):
        sample_cache.task_labels("rythm")
    with pytest.raises(ConfigError, match="expected one of all, diagnostic"):
        task_labels([], "superdiagnostics")


def test_a_statements_csv_without_the_tasks_column_says_so(mini_root):
    st = pd.read_csv(mini_root / "scp_statements.csv", index_col=0).drop(columns=["rhythm"])
    st.to_csv(mini_root / "scp_statements.csv")
    meta = load_metadata(mini_root)
    with pytest.raises(PTBXLError, match=r"scp_statements\.csv: has no column rhythm, which the rhythm task needs"):
        meta.task_labels("rhythm")
    assert meta.task_labels("form")[1]  # the other tasks still work


def test_the_synthetic_ptbxl_gives_every_task_classes(synthetic_cache_path):
    with open_cache(synthetic_cache_path) as c:
        for task in TASKS:
            labels, classes = c.task_labels(task)
            common = int((labels.sum(0) >= 5).sum())
            assert common >= 3, (task, classes, labels.sum(0))
