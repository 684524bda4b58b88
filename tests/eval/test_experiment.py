import json

from ecgfast import experiment


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
