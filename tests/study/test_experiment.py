import json

import pytest

from ecgfast.cli import experiment


def test_experiment_runs_every_arm_and_resumes(synthetic_cache_path, synthetic_root, tmp_path, capsys):
    argv = ["--data-root", str(synthetic_root), "--cache", str(synthetic_cache_path),
            "--arms", "simclr", "supervised", "random-init-probe", "--seeds", "1", "2",
            "--label-fractions", "0.5", "--pretrain-epochs", "1", "--pretrain-batch-size", "32",
            "--finetune-epochs", "1", "--probe-epochs", "3", "--signal-length", "256", "--bootstrap", "50",
            "--out", str(tmp_path), "--no-progress", "--precision", "fp32"]
    assert experiment.main(argv) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    got = {(r["arm"], r["seed"], r["label_fraction"]) for r in runs}
    assert got == {(a, s, f) for a in ("simclr", "supervised", "random-init-probe") for s in (1, 2) for f in (0.5,)} \
        | {("supervised", 1, 1.0), ("supervised", 2, 1.0)}  # the 100 % reference
    summary = (tmp_path / "summary.md").read_text()
    assert "| simclr | 0.5 | 2 |" in summary and "simclr vs supervised" in summary
    assert (tmp_path / "roc_curves.png").stat().st_size > 0 and (tmp_path / "auroc_vs_fraction.png").is_file()
    # one encoder per (method, seed), reused across fractions
    encoders = sorted(p.name for p in (tmp_path / "encoders").glob("*.pt") if not p.name.endswith(".resume.pt"))
    assert encoders == ["simclr_seed1.pt", "simclr_seed2.pt"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("eval.json")}
    capsys.readouterr()
    assert experiment.main(argv) == 0  # a rerun resumes: nothing is trained again
    assert "saved the" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("eval.json")} == stamps
    # Changed settings: the affected runs are done again, and it says so; the rest are kept.
    changed = [a if a != "3" else "4" for a in argv]  # --probe-epochs 3 -> 4: only the probe arm
    assert experiment.main(changed) == 0
    err = capsys.readouterr().err
    assert "random-init-probe seed 1 fraction 0.5 was run with other settings (epochs: 3 -> 4)" in err
    assert "simclr seed 1" not in err and "pretraining again" not in err
    again = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("eval.json")}
    assert {p for p in stamps if again[p] != stamps[p]} == {p for p in stamps if "random-init-probe" in str(p)}
    longer = list(argv)
    longer[longer.index("--pretrain-epochs") + 1] = "2"
    assert experiment.main(longer) == 0
    err = capsys.readouterr().err
    assert "simclr_seed1.pt was made with other settings (epochs: 1 -> 2); pretraining again" in err


def test_another_dataset_into_the_same_out_reruns_instead_of_reusing(synthetic_cache_path, synthetic_root, tmp_path,
                                                                     capsys):
    """Finished runs are keyed by the dataset fingerprint too: another --data-root (and its cache) into the same
    --out pretrains and evaluates again, saying why, and never returns the first dataset's numbers."""
    from ecgfast.data import build_cache, open_cache, write_synthetic_ptbxl

    other_root = write_synthetic_ptbxl(tmp_path / "other" / "PTB-XL", n_records=400, seed=8, sampling_rates=(100,),
                                       progress=False)
    other_cache = build_cache(other_root, tmp_path / "other" / "c100.h5", 100, progress=False)
    out = tmp_path / "exp"

    def argv(root, cache):
        return ["--data-root", str(root), "--cache", str(cache), "--arms", "simclr-probe", "--seeds", "1",
                "--label-fractions", "1.0", "--no-reference", "--pretrain-epochs", "1", "--pretrain-batch-size",
                "32", "--probe-epochs", "1", "--signal-length", "256", "--bootstrap", "10", "--out", str(out),
                "--no-progress", "--precision", "fp32"]

    def fingerprint(cache):
        with open_cache(cache) as c:
            return c.fingerprint_digest[:16]

    a, b = fingerprint(synthetic_cache_path), fingerprint(other_cache)
    assert a != b
    done = out / "runs" / "simclr-probe" / "seed1" / "frac1" / "eval.json"
    assert experiment.main(argv(synthetic_root, synthetic_cache_path)) == 0
    first = json.loads(done.read_text())
    assert first["settings"]["dataset"] == a
    capsys.readouterr()
    assert experiment.main(argv(other_root, other_cache)) == 0
    err = capsys.readouterr().err
    assert f"simclr_seed1.pt was trained on other data (dataset fingerprint {a} -> {b}); pretraining again" in err
    assert f"simclr-probe seed 1 fraction 1 was run with other settings (dataset: '{a}' -> '{b}'" in err
    second = json.loads(done.read_text())
    assert second["settings"]["dataset"] == b and second["y_true"] != first["y_true"]  # the other data's fold 10
    stamp = done.stat().st_mtime_ns
    assert experiment.main(argv(other_root, other_cache)) == 0  # the same data again: reused
    assert "again" not in capsys.readouterr().err and done.stat().st_mtime_ns == stamp


def test_experiment_flags_are_its_config_fields_and_share_the_training_defaults():
    from ecgfast.cli.experiment import build_parser, from_args
    from ecgfast.study.experiment import ExperimentConfig
    from ecgfast.train.config import ClassifierConfig, PretrainConfig

    assert from_args(build_parser().parse_args([])) == ExperimentConfig()
    cfg = from_args(build_parser().parse_args(["--seeds", "1", "2", "--tasks", "form", "rhythm", "--no-reference",
                                               "--label-fractions", "0.5", "--pretrain-epochs", "3"]))
    assert (cfg.seeds, cfg.tasks, cfg.reference, cfg.label_fractions, cfg.pretrain_epochs) == (
        (1, 2), ("form", "rhythm"), False, (0.5,), 3)
    # one declaration: the experiment's defaults are the training configs' own
    pre, fine, exp = PretrainConfig(), ClassifierConfig(), ExperimentConfig()
    assert (exp.pretrain_epochs, exp.pretrain_batch_size, exp.signal_length, exp.encoder) == (
        pre.epochs, pre.batch_size, pre.signal_length, pre.encoder)
    assert (exp.finetune_epochs, exp.finetune_batch_size, exp.task) == (fine.epochs, fine.batch_size, fine.task)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--label-fractions", "1.5"])  # the field's range, at parse time
