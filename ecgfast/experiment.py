"""``ecgfast experiment``: every arm x seed x label fraction, resumable, with statistics and plots.

Arms: ``simclr`` / ``byol`` (pretrain, then fine-tune), ``simclr-probe`` /
``byol-probe`` (pretrained encoder frozen, linear head), ``supervised`` (random
init, trained end to end), ``random-init-probe`` (random encoder frozen, linear
head). An encoder is pretrained once per (method, seed) and reused across
fractions; the supervised arm at 100 % of the labels is added as the reference.
Each finished run leaves its evaluation JSON, so a rerun skips it: the
experiment resumes where it stopped. Outputs in ``--out``: results.csv/.json,
summary.md (mean +- SD and t-based 95 % CI per arm and fraction, paired tests
against the supervised baseline), roc_curves.png, auroc_vs_fraction.png.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

ARMS = ("simclr", "byol", "simclr-probe", "byol-probe", "supervised", "random-init-probe")
METRICS = ("macro_auroc", "macro_f1", "micro_sensitivity", "micro_specificity")


def _pretrain_method(arm: str):
    return arm.split("-")[0] if arm.split("-")[0] in ("simclr", "byol") else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecgfast experiment", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"))
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--sampling-rate", type=int, default=100, choices=[100, 500])
    p.add_argument("--skip-missing", action="store_true")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["simclr", "byol", "supervised", "random-init-probe"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 52, 62])
    p.add_argument("--label-fractions", nargs="+", type=float, default=[0.01, 0.05, 0.1, 0.25, 1.0])
    p.add_argument("--no-reference", action="store_true", help="skip the 100 %%-label supervised reference")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--pretrain-batch-size", type=int, default=256)
    p.add_argument("--finetune-epochs", type=int, default=30)
    p.add_argument("--finetune-batch-size", type=int, default=64)
    p.add_argument("--probe-epochs", type=int, default=100, help="epochs of the linear head on frozen features")
    p.add_argument("--signal-length", type=int, default=1000)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/experiment"))
    p.add_argument("--no-progress", action="store_true")
    return p


def plan(args) -> list[tuple[str, int, float]]:
    runs = [(arm, seed, f) for seed in args.seeds for f in args.label_fractions for arm in args.arms]
    if not args.no_reference and 1.0 not in args.label_fractions:
        runs += [("supervised", seed, 1.0) for seed in args.seeds]
    return runs


def run_dir(out: Path, arm: str, seed: int, fraction: float) -> Path:
    return out / "runs" / arm / f"seed{seed}" / f"frac{fraction:g}"


def _shared_argv(args, seed: int) -> list[str]:
    """The flags every training entry point of an experiment gets: data, length, seed, precision."""
    argv = ["--data-root", str(args.data_root), "--sampling-rate", str(args.sampling_rate),
            "--signal-length", str(args.signal_length), "--seed", str(seed), "--precision", args.precision]
    if args.cache:
        argv += ["--cache", str(args.cache)]
    if args.skip_missing:
        argv.append("--skip-missing")
    if args.no_progress:
        argv.append("--no-progress")
    return argv


def pretrain(args, method: str, seed: int, timings: dict) -> Path:
    """The (method, seed) encoder, pretrained once; an interrupted pretraining resumes."""
    from ecgfast.train.pretrain import main_for, resume_path

    out = args.out / "encoders" / f"{method}_seed{seed}.pt"
    if out.is_file():
        return out
    argv = _shared_argv(args, seed) + ["--epochs", str(args.pretrain_epochs),
                                       "--batch-size", str(args.pretrain_batch_size), "--out", str(out)]
    if resume_path(out).is_file():
        argv.append("--resume")
    t0 = time.perf_counter()
    if main_for(method, argv) != 0:
        raise RuntimeError(f"pretraining {method} (seed {seed}) failed; see the message above")
    timings[f"pretrain {method} seed {seed}"] = time.perf_counter() - t0
    return out


def train_and_evaluate(args, arm: str, seed: int, fraction: float, encoder: Path | None, timings: dict) -> dict:
    from ecgfast.evaluate import evaluate
    from ecgfast.train.checkpoint import atomic_write_text
    from ecgfast.train.classifier import cli

    d = run_dir(args.out, arm, seed, fraction)
    done = d / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    probe = arm.endswith("probe")
    argv = _shared_argv(args, seed) + ["--label-fraction", str(fraction),
                                       "--epochs", str(args.probe_epochs if probe else args.finetune_epochs),
                                       "--batch-size", str(args.finetune_batch_size),
                                       "--out", str(d / "classifier.pt")]
    if arm == "supervised":
        mode = "supervised"
    else:
        mode = "finetune"
        argv += ["--ssl-checkpoint", str(encoder) if encoder else "none"]
        if probe:
            argv.append("--freeze-encoder")
    t0 = time.perf_counter()
    if cli(argv, mode) != 0:
        raise RuntimeError(f"training {arm} (seed {seed}, fraction {fraction:g}) failed; see the message above")
    result = evaluate(d / "classifier.pt", args.data_root, args.cache, args.sampling_rate, args.bootstrap, seed,
                      skip_missing=args.skip_missing)
    timings[f"{arm} seed {seed} fraction {fraction:g}"] = time.perf_counter() - t0
    result.update(arm=arm, seed=seed, fraction=fraction)
    atomic_write_text(done, json.dumps(result))  # written last: its presence marks the run done
    return result


def summarize(rows: list[dict], arms: list[str]) -> tuple[str, dict]:
    """Markdown: mean +- SD and t-based 95 % CI per arm and fraction; paired tests vs supervised."""
    from ecgfast.eval.stats import mean_sd_ci, paired_test

    fractions = sorted({r["fraction"] for r in rows})
    stats = {}
    lines = ["| arm | label fraction | seeds | macro AUROC mean ± SD | 95% CI (t) | macro F1 mean ± SD |",
             "|---|---|---|---|---|---|"]
    for arm in arms:
        for f in fractions:
            sel = [r for r in rows if r["arm"] == arm and r["fraction"] == f]
            if not sel:
                continue
            a = mean_sd_ci([r["macro_auroc"] for r in sel])
            f1 = mean_sd_ci([r["macro_f1"] for r in sel])
            stats[(arm, f)] = a
            sd = f"{a['sd']:.4f}" if a["n"] > 1 else "–"
            ci = f"[{a['ci_low']:.4f}, {a['ci_high']:.4f}]" if a["n"] > 1 else "–"
            f1sd = f"{f1['sd']:.4f}" if f1["n"] > 1 else "–"
            lines.append(f"| {arm} | {f:g} | {a['n']} | {a['mean']:.4f} ± {sd} | {ci} | {f1['mean']:.4f} ± {f1sd} |")
    tests = []
    for arm in arms:
        if arm == "supervised":
            continue
        for f in fractions:
            a = {r["seed"]: r["macro_auroc"] for r in rows if r["arm"] == arm and r["fraction"] == f}
            b = {r["seed"]: r["macro_auroc"] for r in rows if r["arm"] == "supervised" and r["fraction"] == f}
            seeds = sorted(set(a) & set(b))
            if seeds:
                t = paired_test([a[s] for s in seeds], [b[s] for s in seeds])
                tests.append(f"| {arm} vs supervised | {f:g} | {t['n']} | {t['mean_difference']:+.4f} | "
                             f"{_p(t['t_p_value'])} | {_p(t['wilcoxon_p_value'])} |")
    if tests:
        lines += ["", "Paired over seeds (macro AUROC):", "",
                  "| comparison | label fraction | seeds | mean difference | paired t p | Wilcoxon p |",
                  "|---|---|---|---|---|---|", *tests]
    return "\n".join(lines), stats


def _p(v):
    return "–" if v != v else f"{v:.3g}"


def plot(rows: list[dict], arms: list[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from ecgfast.eval.stats import mean_sd_ci

    paths = []
    chosen = max(rows, key=lambda r: (r["arm"] == arms[0], r["fraction"] == 0.1, -r["seed"]))
    y, p = np.asarray(chosen["y_true"]), np.asarray(chosen["y_prob"])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for j, c in enumerate(chosen["classes"]):
        if 0 < y[:, j].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, j], p[:, j])
            ax.plot(fpr, tpr, label=f"{c} (AUROC {chosen['per_class'][c]['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"ROC on fold 10: {chosen['arm']}, seed {chosen['seed']}, {chosen['fraction']:g} of labels")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(out / "roc_curves.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for arm in arms:
        fs = sorted({r["fraction"] for r in rows if r["arm"] == arm})
        s = [mean_sd_ci([r["macro_auroc"] for r in rows if r["arm"] == arm and r["fraction"] == f]) for f in fs]
        mean = np.array([x["mean"] for x in s])
        ax.plot(fs, mean, marker="o", label=arm)
        lo = np.array([x["ci_low"] if x["n"] > 1 else x["mean"] for x in s])
        hi = np.array([x["ci_high"] if x["n"] > 1 else x["mean"] for x in s])
        ax.fill_between(fs, lo, hi, alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel="label fraction (folds 1-8)", ylabel="macro AUROC on fold 10 (mean, 95% CI)",
           title="Label efficiency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "auroc_vs_fraction.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def write_outputs(rows: list[dict], arms: list[str], out: Path, timings: dict) -> str:
    from ecgfast.train.checkpoint import atomic_write_text

    flat = [{"arm": r["arm"], "seed": r["seed"], "label_fraction": r["fraction"],
             **{m: r[m] for m in METRICS}, **{f"{m}_ci_low": r["ci95"][m][0] for m in METRICS},
             **{f"{m}_ci_high": r["ci95"][m][1] for m in METRICS}} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps({"runs": flat, "timings_s": timings}, indent=1))
    all_arms = arms + (["supervised"] if "supervised" not in arms and any(r["arm"] == "supervised" for r in rows) else [])
    table, _ = summarize(rows, all_arms)
    atomic_write_text(out / "summary.md", "# ecgfast experiment\n\n" + table + "\n")
    plot(rows, all_arms, out)
    return table


def run(args, timings: dict | None = None) -> str:
    timings = {} if timings is None else timings
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for arm, seed, fraction in plan(args):
        method = _pretrain_method(arm)
        encoder = pretrain(args, method, seed, timings) if method else None
        rows.append(train_and_evaluate(args, arm, seed, fraction, encoder, timings))
    return write_outputs(rows, list(args.arms), args.out, timings)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        table = run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"ecgfast experiment: error: {exc}", file=sys.stderr)
        return 1
    print(table)
    print(f"\nresults in {args.out}: results.csv, results.json, summary.md, roc_curves.png, auroc_vs_fraction.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
