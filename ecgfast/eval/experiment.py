"""``ecgfast experiment``: every arm x seed x label fraction, resumable, with statistics and plots.

Arms: ``simclr`` / ``byol`` (pretrain, then fine-tune), ``simclr-probe`` /
``byol-probe`` (pretrained encoder frozen, linear head), ``supervised`` (random
init, trained end to end), ``random-init-probe`` (random encoder frozen, linear
head). An encoder is pretrained once per (method, seed) and reused across
fractions; the supervised arm at 100 % of the labels is added as the reference.
Each finished run leaves its evaluation JSON keyed by its full settings and by
the fingerprint of the dataset it ran on, so a rerun skips it when neither
changed and runs it again (saying why) when either did: the experiment resumes
where it stopped, and another ``--data-root`` into the same ``--out`` reruns
everything rather than returning the other dataset's numbers. Outputs in ``--out``: results.csv/.json,
summary.md (mean +- SD and t-based 95 % CI per arm and fraction, paired tests
against the supervised baseline), roc_curves.png, auroc_vs_fraction.png.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgfast.errors import ConfigError
from ecgfast.models.backbones import DEFAULT_ENCODER, check_encoder_name
from ecgfast.train.config import ClassifierConfig, DataConfig, PretrainConfig, RunConfig

ARMS = ("simclr", "byol", "simclr-probe", "byol-probe", "supervised", "random-init-probe")
METRICS = ("macro_auroc", "macro_f1", "micro_sensitivity", "micro_specificity")
# Settings that do not change a run's result: left out of the key that recognises a finished run.
_NOT_IN_KEY = {"out", "log", "resume", "progress", "workers", "device", "compile", "data_root", "cache",
               "skip_missing", "checkpoint_every", "log_every"}


@dataclass
class ExperimentConfig:
    """Every arm x seed x label fraction (plus the 100 %-label supervised reference)."""

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = Path("runs/experiment")
    arms: tuple = ("simclr", "byol", "supervised", "random-init-probe")
    seeds: tuple = (42, 52, 62)
    label_fractions: tuple = (0.01, 0.05, 0.1, 0.25, 1.0)
    reference: bool = True
    pretrain_epochs: int = 20
    pretrain_batch_size: int = 256
    finetune_epochs: int = 30
    finetune_batch_size: int = 64
    probe_epochs: int = 100
    signal_length: int = 1000
    bootstrap: int = 1000
    encoder: str = DEFAULT_ENCODER  # the backbone of every arm (one --out per backbone)
    task: str = "superdiagnostic"  # the PTB-XL task every classifier learns (ecgfast.TASKS)

    def validate(self) -> None:
        from ecgfast.data.metadata import check_task

        check_encoder_name(self.encoder)
        check_task(self.task)
        self.data.validate()
        self.run.validate()
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            raise ConfigError(f"--arms {' '.join(bad) or '(none)'}: expected some of {', '.join(ARMS)}")
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed")
        for f in self.label_fractions:
            if not 0 < f <= 1:
                raise ConfigError(f"--label-fractions {f}: must be in (0, 1]")
        for name in ("pretrain_epochs", "pretrain_batch_size", "finetune_epochs", "finetune_batch_size",
                     "probe_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 1")
        if self.bootstrap < 0:
            raise ConfigError(f"--bootstrap {self.bootstrap}: must be >= 0")


def _pretrain_method(arm: str):
    return arm.split("-")[0] if arm.split("-")[0] in ("simclr", "byol") else None


def build_parser() -> argparse.ArgumentParser:
    from ecgfast.models.backbones import ENCODER_NAMES
    from ecgfast.train.common import non_negative_int, positive_int, unit_fraction
    from ecgfast.train.config import add_data_flags, add_encoder_flag, add_task_flag

    p = argparse.ArgumentParser(prog="ecgfast experiment", description=__doc__.split("\n\n")[0])
    add_data_flags(p)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["simclr", "byol", "supervised", "random-init-probe"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 52, 62])
    p.add_argument("--label-fractions", nargs="+", type=unit_fraction, default=[0.01, 0.05, 0.1, 0.25, 1.0])
    p.add_argument("--no-reference", action="store_true", help="skip the 100 %%-label supervised reference")
    p.add_argument("--pretrain-epochs", type=positive_int, default=20)
    p.add_argument("--pretrain-batch-size", type=positive_int, default=256)
    p.add_argument("--finetune-epochs", type=positive_int, default=30)
    p.add_argument("--finetune-batch-size", type=positive_int, default=64)
    p.add_argument("--probe-epochs", type=positive_int, default=100, help="epochs of the linear head on frozen features")
    p.add_argument("--signal-length", type=positive_int, default=1000)
    add_task_flag(p)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/experiment"))
    p.add_argument("--no-progress", action="store_true")
    add_encoder_flag(p, help=f"the encoder (backbone) of every arm: {', '.join(ENCODER_NAMES)} (default "
                             f"{DEFAULT_ENCODER}); use one --out per backbone")
    return p


def from_args(a: argparse.Namespace) -> ExperimentConfig:
    from ecgfast.train.config import data_from_args

    return ExperimentConfig(data=data_from_args(a), run=RunConfig(a.device, a.precision, a.compile, 0, not a.no_progress),
                            out=a.out, arms=tuple(a.arms), seeds=tuple(a.seeds), label_fractions=tuple(a.label_fractions),
                            reference=not a.no_reference, pretrain_epochs=a.pretrain_epochs,
                            pretrain_batch_size=a.pretrain_batch_size, finetune_epochs=a.finetune_epochs,
                            finetune_batch_size=a.finetune_batch_size, probe_epochs=a.probe_epochs,
                            signal_length=a.signal_length, bootstrap=a.bootstrap, encoder=a.encoder, task=a.task)


def plan(cfg: ExperimentConfig) -> list[tuple[str, int, float]]:
    runs = [(arm, seed, f) for seed in cfg.seeds for f in cfg.label_fractions for arm in cfg.arms]
    if cfg.reference and 1.0 not in cfg.label_fractions:
        runs += [("supervised", seed, 1.0) for seed in cfg.seeds]
    return runs


def run_dir(out: Path, arm: str, seed: int, fraction: float) -> Path:
    return out / "runs" / arm / f"seed{seed}" / f"frac{fraction:g}"


def settings_key(flat: dict) -> dict:
    """The settings that decide a run's result (paths, devices and logging left out).

    The backbone is keyed as ``backbone``, and only when it is not the seed's ``ecg1dcnn``:
    runs finished before backbones were selectable keep their key (and are not run again).
    """
    key = {k: v for k, v in sorted(flat.items()) if k not in _NOT_IN_KEY}
    backbone = key.pop("encoder", None) or DEFAULT_ENCODER
    if backbone != DEFAULT_ENCODER:
        key["backbone"] = backbone
    task = key.pop("task", None) or "superdiagnostic"  # likewise: runs from before --task keep their key
    if task != "superdiagnostic":
        key["task"] = task
    return key


def _digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _trained_on(ckpt: dict) -> str | None:
    """The dataset fingerprint (16 hex digits) a pretraining checkpoint records, or None (unknown)."""
    if isinstance(ckpt.get("dataset"), str):  # a resume file
        return ckpt["dataset"][:16]
    corpora = (ckpt.get("data") or {}).get("corpora") or []
    if len(corpora) == 1 and isinstance(corpora[0], dict) and isinstance(corpora[0].get("fingerprint"), str):
        return corpora[0]["fingerprint"][:16]
    return None


def dataset_fingerprint(cfg: ExperimentConfig) -> str:
    """The first 16 hex digits of the fingerprint of the PTB-XL cache every run trains and evaluates on
    (built first when absent or stale, as the runs would)."""
    from ecgfast.train.pretrain import dataset_digest

    with cfg.data.open(progress=cfg.run.progress) as cache:
        return dataset_digest(cache)[:16]


def _changed(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def pretrain(cfg: ExperimentConfig, method: str, seed: int, timings: dict, dataset: str) -> tuple[Path, str]:
    """The (method, seed) encoder, pretrained once (again when its settings or the ``dataset`` fingerprint
    changed); resumes when interrupted."""
    from ecgfast.train.checkpoint import load_checkpoint
    from ecgfast.train.pretrain import pretrain as run_pretrain
    from ecgfast.train.pretrain import resume_path

    out = cfg.out / "encoders" / f"{method}_seed{seed}.pt"
    pcfg = PretrainConfig(method=method, data=cfg.data, run=dataclasses.replace(cfg.run, seed=seed), out=out,
                          epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                          signal_length=cfg.signal_length, encoder=cfg.encoder)
    want = settings_key(pcfg.flat())
    for path in (out, resume_path(out)):
        if path.is_file():
            ckpt = load_checkpoint(path)
            stored = ckpt.get("config", {})
            have = settings_key({k: stored.get(k) for k in pcfg.flat()})
            if have != want:
                print(f"ecgfast experiment: {path} was made with other settings ({_changed(have, want)}); "
                      "pretraining again", file=sys.stderr)
                path.unlink()
            elif _trained_on(ckpt) != dataset:
                print(f"ecgfast experiment: {path} was trained on other data (dataset fingerprint "
                      f"{_trained_on(ckpt)} -> {dataset}); pretraining again", file=sys.stderr)
                path.unlink()
    if out.is_file():
        return out, _digest({**want, "dataset": dataset})
    pcfg.resume = resume_path(out).is_file()
    t0 = time.perf_counter()
    run_pretrain(pcfg)
    timings[f"pretrain {method} seed {seed}"] = time.perf_counter() - t0
    return out, _digest({**want, "dataset": dataset})


def train_and_evaluate(cfg: ExperimentConfig, arm: str, seed: int, fraction: float, encoder: tuple | None,
                       timings: dict, dataset: str) -> dict:
    from ecgfast.eval.evaluate import evaluate
    from ecgfast.train.checkpoint import atomic_write_text
    from ecgfast.train.classifier import train

    d = run_dir(cfg.out, arm, seed, fraction)
    probe = arm.endswith("probe")
    ccfg = ClassifierConfig(mode="supervised" if arm == "supervised" else "finetune",
                            ssl_checkpoint=encoder[0] if encoder else None, freeze_encoder=probe, data=cfg.data,
                            run=dataclasses.replace(cfg.run, seed=seed), out=d / "classifier.pt",
                            label_fraction=fraction, epochs=cfg.probe_epochs if probe else cfg.finetune_epochs,
                            batch_size=cfg.finetune_batch_size, signal_length=cfg.signal_length,
                            encoder=cfg.encoder, task=cfg.task)
    settings = {**settings_key(ccfg.flat()), "encoder": encoder[1] if encoder else None, "bootstrap": cfg.bootstrap,
                "arm": arm, "dataset": dataset}  # a finished run is reused on the same data only
    settings.pop("ssl_checkpoint", None)
    done = d / "eval.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("settings") == json.loads(json.dumps(settings, default=str)):
            return result
        print(f"ecgfast experiment: {arm} seed {seed} fraction {fraction:g} was run with other settings "
              f"({_changed(result.get('settings') or {}, settings)}); running it again", file=sys.stderr)
        done.unlink()
    t0 = time.perf_counter()
    train(ccfg)
    result = evaluate(d / "classifier.pt", cfg.data, n_boot=cfg.bootstrap, seed=seed, device=cfg.run.device)
    _card_with_metrics(d / "classifier.pt", result)
    timings[f"{arm} seed {seed} fraction {fraction:g}"] = time.perf_counter() - t0
    result.update(arm=arm, seed=seed, fraction=fraction, settings=json.loads(json.dumps(settings, default=str)))
    atomic_write_text(done, json.dumps(result))  # written last: its presence marks the run done
    return result


def _card_with_metrics(path: Path, result: dict) -> None:
    """Rewrite the run's model card with its fold-10 metrics and CIs."""
    from ecgfast.eval.card import write_model_card
    from ecgfast.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, kind="classifier")
    write_model_card(path, ckpt, wall_time_s=float(ckpt.get("wall_time_s", 0.0)), device=str(ckpt.get("device", "cpu")),
                     metrics=result)


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


def _save_png(fig, path: Path) -> Path:
    from ecgfast._fs import atomic_write

    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))


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
    paths.append(_save_png(fig, out / "roc_curves.png"))
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
    paths.append(_save_png(fig, out / "auroc_vs_fraction.png"))
    plt.close(fig)
    return paths


def write_outputs(rows: list[dict], arms: list[str], out: Path, timings: dict, encoder: str = DEFAULT_ENCODER) -> str:
    from ecgfast.train.checkpoint import atomic_write_text

    flat = [{"arm": r["arm"], "seed": r["seed"], "label_fraction": r["fraction"],
             **{m: r[m] for m in METRICS}, **{f"{m}_ci_low": r["ci95"][m][0] for m in METRICS},
             **{f"{m}_ci_high": r["ci95"][m][1] for m in METRICS}} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps({"encoder": encoder, "runs": flat, "timings_s": timings},
                                                       indent=1))
    all_arms = arms + (["supervised"] if "supervised" not in arms and any(r["arm"] == "supervised" for r in rows) else [])
    table, _ = summarize(rows, all_arms)
    atomic_write_text(out / "summary.md", f"# ecgfast experiment\n\nEncoder (backbone): {encoder}.\n\n" + table + "\n")
    plot(rows, all_arms, out)
    return table


def run(cfg: ExperimentConfig, timings: dict | None = None) -> str:
    from ecgfast.train.common import resolve_device, resolve_precision

    cfg.validate()
    # Resolved once, so that a finished run's settings say what really ran.
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(
        cfg.run, precision=resolve_precision(cfg.run.precision, resolve_device(cfg.run.device))))
    from ecgfast._fs import prepare_output_folder

    timings = {} if timings is None else timings
    prepare_output_folder(cfg.out)  # a read-only or full --out fails now, not after the first run
    dataset = dataset_fingerprint(cfg)
    rows, encoders = [], {}
    for arm, seed, fraction in plan(cfg):
        method = _pretrain_method(arm)
        if method and (method, seed) not in encoders:
            encoders[(method, seed)] = pretrain(cfg, method, seed, timings, dataset)
        rows.append(train_and_evaluate(cfg, arm, seed, fraction, encoders.get((method, seed)), timings, dataset))
    return write_outputs(rows, list(cfg.arms), cfg.out, timings, cfg.encoder)


def main(argv=None) -> int:
    from ecgfast.train.common import run_command

    cfg = from_args(build_parser().parse_args(argv))

    def go():
        print(run(cfg))
        print(f"\nresults in {cfg.out}: results.csv, results.json, summary.md, roc_curves.png, auroc_vs_fraction.png")

    return run_command("experiment", go)


if __name__ == "__main__":
    sys.exit(main())
