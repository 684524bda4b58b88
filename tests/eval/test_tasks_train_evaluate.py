"""``--task``: the head follows the task's classes, the checkpoint names them, evaluation scores them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgfast import CLASSES, TASKS
from ecgfast.base.checkpoint import task_of
from ecgfast.base.errors import ConfigError
from ecgfast.cli.experiment import build_parser, from_args
from ecgfast.data import label_fraction_indices, open_cache
from ecgfast.eval.evaluate import evaluate
from ecgfast.study.experiment import ExperimentConfig, settings_key
from ecgfast.train.config import ClassifierConfig
from ecgfast.train_finetune import main as finetune_main
from ecgfast.train_supervised import main as supervised_main


@pytest.fixture(scope="module")
def all_ckpt(synthetic_cache_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("task") / "all.pt"
    assert supervised_main(["--cache", str(synthetic_cache_path), "--task", "all", "--epochs", "2",
                            "--signal-length", "256", "--label-fraction", "1.0", "--out", str(out),
                            "--no-progress"]) == 0
    return out


def test_the_head_and_the_checkpoint_follow_the_task(all_ckpt, synthetic_cache_path):
    ckpt = torch.load(all_ckpt, weights_only=True)
    with open_cache(synthetic_cache_path) as c:
        _, classes = c.task_labels("all")
    assert ckpt["spec"]["task"] == "all" and ckpt["spec"]["classes"] == list(classes) == ckpt["classes"]
    assert ckpt["classifier"]["head.weight"].shape[0] == len(classes) != len(CLASSES)
    assert ckpt["config"]["task"] == "all"
    assert task_of(ckpt) == ("all", list(classes))


def test_evaluate_scores_the_checkpoints_task_on_its_labelled_records(all_ckpt, synthetic_cache_path):
    r = evaluate(all_ckpt, cache_path=synthetic_cache_path, n_boot=20)
    with open_cache(synthetic_cache_path) as c:
        view = c.with_task("all")
        idx = view.split_indices("test", labelled_only=True)
        assert r["task"] == "all" and r["classes"] == list(view.classes)
        assert r["n_records"] == len(idx) and set(r["per_class"]) == set(view.classes)
        np.testing.assert_array_equal(np.array(r["y_true"]), view.labels[idx].astype(int))


def test_a_checkpoint_without_a_task_is_superdiagnostic(all_ckpt):
    ckpt = torch.load(all_ckpt, weights_only=True)
    for key in ("task", "classes"):
        del ckpt["spec"][key]
    assert task_of(ckpt) == ("superdiagnostic", ckpt["classes"])
    del ckpt["classes"]
    assert task_of(ckpt) == ("superdiagnostic", list(CLASSES))


def test_finetune_probe_with_a_task(synthetic_cache_path, tmp_path):
    from ecgfast.models import ECGEncoder1DCNN

    enc = tmp_path / "enc.pt"
    torch.save({"encoder": ECGEncoder1DCNN().state_dict()}, enc)
    out = tmp_path / "probe.pt"
    assert finetune_main(["--ssl-checkpoint", str(enc), "--cache", str(synthetic_cache_path), "--freeze-encoder",
                          "--task", "subdiagnostic", "--epochs", "2", "--signal-length", "256", "--out", str(out),
                          "--no-progress"]) == 0
    ckpt = torch.load(out, weights_only=True)
    with open_cache(synthetic_cache_path) as c:
        assert ckpt["spec"]["classes"] == list(c.task_labels("subdiagnostic")[1])
    assert ckpt["classifier"]["head.weight"].shape[0] == len(ckpt["spec"]["classes"])


def test_an_unknown_task_is_refused_with_the_valid_names(synthetic_cache_path, tmp_path, capsys):
    with pytest.raises(SystemExit):
        supervised_main(["--cache", str(synthetic_cache_path), "--task", "rythm", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert "--task: invalid choice: 'rythm'" in err and all(t in err for t in TASKS)
    with pytest.raises(ConfigError, match="--task rythm: must be one of " + ", ".join(TASKS)):
        ClassifierConfig(task="rythm").validate()
    with pytest.raises(ConfigError, match="expected one of " + ", ".join(TASKS)):
        ExperimentConfig(task="rythm").validate()


def test_experiment_task_reaches_the_runs_and_keys_only_when_not_the_seeds():
    cfg = from_args(build_parser().parse_args(["--task", "form"]))
    assert cfg.task == "form"
    assert from_args(build_parser().parse_args([])).task == "superdiagnostic"
    seed_key = settings_key({"task": "superdiagnostic", "lr": 1e-3})
    assert seed_key == {"lr": 1e-3}  # runs finished before --task keep their key
    assert settings_key({"task": "form", "lr": 1e-3}) == {"lr": 1e-3, "task": "form"}


def test_label_fractions_stratify_on_every_class_of_a_wide_task():
    """Classes past the eighth split strata too (a task may have 71): each combination keeps its share."""
    rng = np.random.default_rng(0)
    n = 400
    labels = np.zeros((n, 12), np.float32)
    labels[:, 0] = 1
    labels[: n // 4, 10] = 1  # a quarter also states class 10
    folds = rng.integers(1, 9, n)
    idx = label_fraction_indices(labels, folds, 0.5, seed=0)
    assert len(idx) == n // 2
    assert int(labels[idx, 10].sum()) == n // 8  # exactly its share, not left to chance
