"""``ecgfast experiment``: every arm x seed x label fraction, resumable, with statistics and plots.

Axes of the study beside the arms: ``--encoders`` (backbones), ``--recipes`` (``seed``, ``field``:
ecgfast.train.recipe) and ``--tasks``; every combination runs every arm, and the table, the paired
tests (each recipe against the first one listed, each encoder against the first, each arm against
supervised: all paired over seeds within the same combination) and the plots group by them.

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

import csv
import dataclasses
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgfast import TASKS
from ecgfast.base.errors import ConfigError
from ecgfast.data.metadata import DEFAULT_TASK, check_task
from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES, check_encoder_name
from ecgfast.train.config import (
    AT_LEAST_ONE,
    FREE,
    METHODS,
    NON_NEGATIVE,
    UNIT,
    ClassifierConfig,
    DataConfig,
    PretrainConfig,
    RunConfig,
    Settings,
    default_of,
    leaf_fields,
    setting,
)
from ecgfast.train.recipe import RECIPES, SEED_VALUES, apply_recipe, check_recipe_name

log = logging.getLogger("ecgfast")
DEFAULT_RECIPE = RECIPES[0]  # the seed's
AXES = ("encoder", "recipe", "task")
ARMS = ("simclr", "byol", "simclr-probe", "byol-probe", "supervised", "random-init-probe")
METRICS = ("macro_auroc", "macro_f1", "micro_sensitivity", "micro_specificity")
# Settings that do not change a run's result: left out of the key that recognises a finished run.
# How a run is computed, not what it computes: the memory format changes the numbers no more than
# the device or compilation does (rounding), so it never makes a finished run run again.
_NOT_IN_KEY = {"out", "log", "resume", "progress", "workers", "device", "compile", "memory_format", "data_root",
               "cache", "skip_missing", "checkpoint_every", "log_every"}


def _as_in(cls, name: str, **override):
    """Field ``name`` of config ``cls`` declared again for the experiment: the same default, help and
    checks (one declaration), ``override`` changing what differs."""
    f = next(f for _, f in leaf_fields(cls) if f.name == name)
    meta = {k: v for k, v in f.metadata.items() if k not in ("defaults", "commands", "required", "part")}
    return setting(default_of(f), **{**meta, "resume": FREE, **override})


def _check_task(value, flag: str) -> None:
    check_task(value)


def _check_axis(values, flag: str) -> None:
    """An axis lists each value once, at least one."""
    if not values or len(set(values)) != len(values):
        raise ConfigError(f"{flag} {' '.join(map(str, values)) or '(none)'}: give each value once, at least one")


def _check_some_of(choices, allow_none: bool = False):
    def check(values, flag: str) -> None:
        bad = [v for v in values if v not in choices]
        if bad or not (values or allow_none):
            raise ConfigError(f"{flag} {' '.join(map(str, bad)) or '(none)'}: expected some of {', '.join(choices)}")
    return check


def _check_fractions(values, flag: str) -> None:
    if not values:
        raise ConfigError(f"{flag}: give at least one fraction")
    for f in values:
        if not (isinstance(f, (int, float)) and 0 < f <= 1):
            raise ConfigError(f"{flag} {f}: must be in (0, 1]")


def _check_seeds(values, flag: str) -> None:
    if not values:
        raise ConfigError(f"{flag}: give at least one seed")


def _check_encoders(values, flag: str) -> None:
    for name in values:
        check_encoder_name(name, flag)


def _check_recipes(values, flag: str) -> None:
    for name in values:
        check_recipe_name(name)


_PRETRAIN, _FINETUNE = "the pretraining runs: ", "the fine-tuning runs: "


@dataclass
class ExperimentConfig(Settings):
    """Every arm x seed x label fraction (plus the 100 %-label supervised reference).

    Its fields are declared once, like the training configs' (``ecgfast.train.config.setting``); those
    it shares with them (epochs, batch sizes, signal length, encoder, task) take their declaration
    and default from there."""

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = setting(Path("runs/experiment"), help="the study's folder (resumable: finished runs are kept)")
    arms: tuple[str, ...] = setting(("simclr", "byol", "supervised", "random-init-probe"), nargs="+", metavar="ARM",
                                    choices=ARMS, check=_check_some_of(ARMS), help="the arms compared")
    seeds: tuple[int, ...] = setting((42, 52, 62), nargs="+", check=_check_seeds, help="one run of every arm per seed")
    label_fractions: tuple[float, ...] = setting((0.01, 0.05, 0.1, 0.25, 1.0), nargs="+", range=UNIT,
                                                 check=_check_fractions,
                                                 help="shares of the labelled folds 1-8 the classifiers train on")
    reference: bool = setting(True, switch="off", help="skip the 100 %-label supervised reference")
    pretrain_epochs: int = _as_in(PretrainConfig, "epochs", flag="--pretrain-epochs",
                                  help=_PRETRAIN + "passes over folds 1-8")
    pretrain_batch_size: int = _as_in(PretrainConfig, "batch_size", flag="--pretrain-batch-size",
                                      help=_PRETRAIN + "ECG pairs per step")
    finetune_epochs: int = _as_in(ClassifierConfig, "epochs", flag="--finetune-epochs",
                                  help=_FINETUNE + "passes over the labelled records")
    finetune_batch_size: int = _as_in(ClassifierConfig, "batch_size", flag="--finetune-batch-size",
                                      help=_FINETUNE + "records per step")
    probe_epochs: int = setting(100, range=AT_LEAST_ONE, help="epochs of the linear head on frozen features")
    signal_length: int = _as_in(PretrainConfig, "signal_length")
    bootstrap: int = setting(1000, range=NON_NEGATIVE, help="bootstrap resamples of each fold-10 evaluation")
    encoder: str = _as_in(PretrainConfig, "encoder",
                          help="the encoder (backbone) of every arm when --encoders is not given: "
                               f"{', '.join(ENCODER_NAMES)}")
    encoders: tuple[str, ...] = setting((), nargs="+", choices=ENCODER_NAMES, metavar="NAME",
                                        check=_check_encoders,
                                        help="backbones to compare (an axis of the study; default: --encoder)")
    recipes: tuple[str, ...] = setting((DEFAULT_RECIPE,), nargs="+", choices=RECIPES, metavar="NAME",
                                       check=_check_recipes,
                                       help="recipes to compare (an axis); each applies to pretraining and to "
                                            "the classifiers (docs/recipes.md)")
    task: str = _as_in(ClassifierConfig, "task", check=_check_task,
                       help="the PTB-XL task every classifier learns when --tasks is not given")
    tasks: tuple[str, ...] = setting((), nargs="+", choices=TASKS, metavar="NAME",
                                     check=_check_some_of(TASKS, allow_none=True),
                                     help="PTB-XL tasks to compare (an axis; default: --task)")

    def axis(self, name: str) -> tuple:
        """The values of axis ``name`` (encoder, recipe or task), in the order given."""
        return {"encoder": tuple(self.encoders) or (self.encoder,), "recipe": tuple(self.recipes),
                "task": tuple(self.tasks) or (self.task,)}[name]

    def _validate_more(self) -> None:
        for name in AXES:
            _check_axis(self.axis(name), f"--{name}s")


def _pretrain_method(arm: str):
    return arm.split("-")[0] if arm.split("-")[0] in METHODS else None


@dataclass(frozen=True)
class Cell:
    """One combination of the study's axes."""

    encoder: str = DEFAULT_ENCODER
    recipe: str = DEFAULT_RECIPE
    task: str = DEFAULT_TASK

    def parts(self) -> list[str]:
        """Path segments of the non-default values: the seed's study keeps its layout."""
        return ([self.encoder] if self.encoder != DEFAULT_ENCODER else []) + \
            ([f"recipe-{self.recipe}"] if self.recipe != DEFAULT_RECIPE else []) + \
            ([f"task-{self.task}"] if self.task != DEFAULT_TASK else [])


def cells(cfg: ExperimentConfig) -> list[Cell]:
    return [Cell(e, r, t) for e in cfg.axis("encoder") for r in cfg.axis("recipe") for t in cfg.axis("task")]


def plan(cfg: ExperimentConfig) -> list[tuple[Cell, str, int, float]]:
    runs = []
    for cell in cells(cfg):
        runs += [(cell, arm, seed, f) for seed in cfg.seeds for f in cfg.label_fractions for arm in cfg.arms]
        if cfg.reference and 1.0 not in cfg.label_fractions:
            runs += [(cell, "supervised", seed, 1.0) for seed in cfg.seeds]
    return runs


def run_dir(out: Path, arm: str, seed: int, fraction: float, encoder: str = DEFAULT_ENCODER,
            recipe: str = DEFAULT_RECIPE, task: str = DEFAULT_TASK) -> Path:
    return out.joinpath("runs", *Cell(encoder, recipe, task).parts(), arm, f"seed{seed}", f"frac{fraction:g}")


# Settings keyed only when they differ from the seed's (None: a run from before they existed, the seed's).
_SEED_KEYS = {**SEED_VALUES, "task": DEFAULT_TASK}


def settings_key(flat: dict) -> dict:
    """The settings that decide a run's result (paths, devices and logging left out).

    The backbone is keyed as ``backbone``, and only when it is not the seed's ``ecg1dcnn``; the
    recipe, its parts and the task only when they are not the seed's: runs finished before these
    were selectable keep their key (and are not run again).
    """
    key = {k: v for k, v in sorted(flat.items()) if k not in _NOT_IN_KEY}
    backbone = key.pop("encoder", None) or DEFAULT_ENCODER
    if backbone != DEFAULT_ENCODER:
        key["backbone"] = backbone
    for k, default in _SEED_KEYS.items():
        if k in key and (key[k] is None or key[k] == default):
            del key[k]
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


def pretrain(cfg: ExperimentConfig, method: str, seed: int, timings: dict, dataset: str,
             cell: Cell = Cell()) -> tuple[Path, str]:
    """The (encoder, recipe, method, seed) encoder, pretrained once (again when its settings or the ``dataset``
    fingerprint changed); resumes when interrupted."""
    from ecgfast.base.checkpoint import load_checkpoint
    from ecgfast.train.pretrain import pretrain as run_pretrain
    from ecgfast.train.pretrain import resume_path

    out = cfg.out.joinpath("encoders", *Cell(cell.encoder, cell.recipe).parts(), f"{method}_seed{seed}.pt")
    pcfg = apply_recipe(PretrainConfig(method=method, data=cfg.data, run=dataclasses.replace(cfg.run, seed=seed),
                                       out=out, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                                       signal_length=cfg.signal_length, encoder=cell.encoder), cell.recipe)
    want = settings_key(pcfg.flat())
    for path in (out, resume_path(out)):
        if path.is_file():
            ckpt = load_checkpoint(path)
            stored = ckpt.get("config", {})
            have = settings_key({k: stored.get(k) for k in pcfg.flat()})
            if have != want:
                log.info(f"ecgfast experiment: {path} was made with other settings ({_changed(have, want)}); "
                         "pretraining again")
                path.unlink()
            elif _trained_on(ckpt) != dataset:
                log.info(f"ecgfast experiment: {path} was trained on other data (dataset fingerprint "
                         f"{_trained_on(ckpt)} -> {dataset}); pretraining again")
                path.unlink()
    if out.is_file():
        return out, _digest({**want, "dataset": dataset})
    pcfg.resume = resume_path(out).is_file()
    t0 = time.perf_counter()
    run_pretrain(pcfg)
    timings[f"pretrain {_label(cell)}{method} seed {seed}"] = time.perf_counter() - t0
    return out, _digest({**want, "dataset": dataset})


def _label(cell: Cell) -> str:
    """``encoder/recipe/task `` for the non-default values (empty for the seed's study)."""
    parts = cell.parts()
    return "/".join(parts) + " " if parts else ""


def train_and_evaluate(cfg: ExperimentConfig, arm: str, seed: int, fraction: float, encoder: tuple | None,
                       timings: dict, dataset: str, cell: Cell = Cell()) -> dict:
    from ecgfast.base.checkpoint import atomic_write_text
    from ecgfast.eval.evaluate import evaluate
    from ecgfast.train.classifier import train

    d = run_dir(cfg.out, arm, seed, fraction, cell.encoder, cell.recipe, cell.task)
    probe = arm.endswith("probe")
    ccfg = ClassifierConfig(mode="supervised" if arm == "supervised" else "finetune",
                            ssl_checkpoint=encoder[0] if encoder else None, freeze_encoder=probe, data=cfg.data,
                            run=dataclasses.replace(cfg.run, seed=seed), out=d / "classifier.pt",
                            label_fraction=fraction, epochs=cfg.probe_epochs if probe else cfg.finetune_epochs,
                            batch_size=cfg.finetune_batch_size, signal_length=cfg.signal_length,
                            encoder=cell.encoder, task=cell.task)
    ccfg = apply_recipe(ccfg, cell.recipe)
    settings = {**settings_key(ccfg.flat()), "encoder": encoder[1] if encoder else None, "bootstrap": cfg.bootstrap,
                "arm": arm, "dataset": dataset}  # a finished run is reused on the same data only
    settings.pop("ssl_checkpoint", None)
    done = d / "eval.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("settings") == json.loads(json.dumps(settings, default=str)):
            return result
        log.info(f"ecgfast experiment: {_label(cell)}{arm} seed {seed} fraction {fraction:g} was run with other "
                 f"settings ({_changed(result.get('settings') or {}, settings)}); running it again")
        done.unlink()
    t0 = time.perf_counter()
    train(ccfg)
    result = evaluate(d / "classifier.pt", cfg.data, n_boot=cfg.bootstrap, seed=seed, device=cfg.run.device)
    _card_with_metrics(d / "classifier.pt", result)
    timings[f"{_label(cell)}{arm} seed {seed} fraction {fraction:g}"] = time.perf_counter() - t0
    result.update(arm=arm, seed=seed, fraction=fraction, settings=json.loads(json.dumps(settings, default=str)),
                  encoder=cell.encoder, recipe=cell.recipe, task=cell.task)
    atomic_write_text(done, json.dumps(result))  # written last: its presence marks the run done
    return result


def _card_with_metrics(path: Path, result: dict) -> None:
    """Rewrite the run's model card with its fold-10 metrics and CIs."""
    from ecgfast.base.checkpoint import load_checkpoint
    from ecgfast.report.card import write_model_card

    ckpt = load_checkpoint(path, kind="classifier")
    write_model_card(path, ckpt, wall_time_s=float(ckpt.get("wall_time_s", 0.0)), device=str(ckpt.get("device", "cpu")),
                     metrics=result)


def _axis_of(row: dict, name: str) -> str:
    """A row's value on axis ``name`` (rows of results written before the axes existed: the seed's)."""
    return row.get(name) or {"encoder": DEFAULT_ENCODER, "recipe": DEFAULT_RECIPE, "task": DEFAULT_TASK}[name]


def _varying(rows: list[dict], axes: dict | None = None) -> list[str]:
    """The axes with more than one value in the study: the ones its table and plots group by."""
    return [n for n in AXES if len((axes or {}).get(n) or {_axis_of(r, n) for r in rows}) > 1]


def _group(row: dict, varying: list[str]) -> tuple:
    return tuple(_axis_of(row, n) for n in varying)


def summarize(rows: list[dict], arms: list[str], axes: dict | None = None) -> tuple[str, dict]:
    """Markdown: mean +- SD and t-based 95 % CI per (varying axes, arm, fraction); paired tests over seeds:
    each arm vs supervised, each recipe vs the first recipe and each encoder vs the first encoder
    (within the same values of the other axes)."""
    from ecgfast.report.stats import mean_sd_ci

    varying = _varying(rows, axes)
    order = {n: list((axes or {}).get(n) or dict.fromkeys(_axis_of(r, n) for r in rows)) for n in AXES}
    groups = sorted({_group(r, varying) for r in rows},
                    key=lambda g: [order[n].index(v) if v in order[n] else len(order[n]) for n, v in zip(varying, g)])
    fractions = sorted({r["fraction"] for r in rows})
    stats = {}
    head = "".join(f"| {n} " for n in varying)
    lines = [head + "| arm | label fraction | seeds | macro AUROC mean ± SD | 95% CI (t) | macro F1 mean ± SD |",
             "|---" * (len(varying) + 6) + "|"]
    for g in groups:
        cells_ = "".join(f"| {v} " for v in g)
        for arm in arms:
            for f in fractions:
                sel = [r for r in rows if r["arm"] == arm and r["fraction"] == f and _group(r, varying) == g]
                if not sel:
                    continue
                a = mean_sd_ci([r["macro_auroc"] for r in sel])
                f1 = mean_sd_ci([r["macro_f1"] for r in sel])
                stats[(*g, arm, f)] = a
                sd = f"{a['sd']:.4f}" if a["n"] > 1 else "–"
                ci = f"[{a['ci_low']:.4f}, {a['ci_high']:.4f}]" if a["n"] > 1 else "–"
                f1sd = f"{f1['sd']:.4f}" if f1["n"] > 1 else "–"
                lines.append(f"{cells_}| {arm} | {f:g} | {a['n']} | {a['mean']:.4f} ± {sd} | {ci} | "
                             f"{f1['mean']:.4f} ± {f1sd} |")
    tests = []
    for g in groups:  # every arm against supervised, within a combination of the axes
        where = "".join(f"{v} " for v in g)
        for arm in arms:
            if arm == "supervised":
                continue
            for f in fractions:
                a = _by_seed(rows, varying, g, arm, f)
                b = _by_seed(rows, varying, g, "supervised", f)
                tests += _paired_line(f"{where}{arm} vs supervised", f, a, b)
    for axis in ("recipe", "encoder"):  # every value of an axis against its first, the rest held
        if axis not in varying:
            continue
        i = varying.index(axis)
        first = order[axis][0]
        for g in groups:
            if g[i] == first:
                continue
            base = g[:i] + (first,) + g[i + 1:]
            others = "".join(f"{v} " for k, v in enumerate(g) if k != i)
            for arm in arms:
                for f in fractions:
                    tests += _paired_line(f"{others}{arm}: {g[i]} vs {first}", f,
                                          _by_seed(rows, varying, g, arm, f), _by_seed(rows, varying, base, arm, f))
    if tests:
        lines += ["", "Paired over seeds (macro AUROC; difference = first named minus second):", "",
                  "| comparison | label fraction | seeds | mean difference | 95% CI (t) | paired t p | Wilcoxon p |",
                  "|---|---|---|---|---|---|---|", *tests]
    return "\n".join(lines), stats


def _by_seed(rows, varying, group, arm, fraction) -> dict:
    return {r["seed"]: r["macro_auroc"] for r in rows
            if r["arm"] == arm and r["fraction"] == fraction and _group(r, varying) == group}


def _paired_line(name: str, fraction: float, a: dict, b: dict) -> list[str]:
    from ecgfast.report.stats import mean_sd_ci, paired_test

    seeds = sorted(set(a) & set(b))
    if not seeds:
        return []
    t = paired_test([a[s] for s in seeds], [b[s] for s in seeds])
    d = mean_sd_ci([a[s] - b[s] for s in seeds])
    ci = f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]" if d["n"] > 1 else "–"
    return [f"| {name} | {fraction:g} | {t['n']} | {t['mean_difference']:+.4f} | {ci} | {_p(t['t_p_value'])} | "
            f"{_p(t['wilcoxon_p_value'])} |"]


def _p(v):
    return "–" if v != v else f"{v:.3g}"


def _save_png(fig, path: Path) -> Path:
    from ecgfast.base.fs import atomic_write

    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))


def _series_label(group: tuple, varying: list[str], arm: str) -> str:
    return " ".join([*group, arm]) if varying else arm


def plot(rows: list[dict], arms: list[str], out: Path, axes: dict | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from ecgfast.report.stats import mean_sd_ci

    varying = _varying(rows, axes)
    groups = list(dict.fromkeys(_group(r, varying) for r in rows))
    paths = []
    chosen = max(rows, key=lambda r: (r["arm"] == arms[0], r["fraction"] == 0.1, -r["seed"]))
    y, p = np.asarray(chosen["y_true"]), np.asarray(chosen["y_prob"])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for j, c in enumerate(chosen["classes"]):
        if 0 < y[:, j].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, j], p[:, j])
            ax.plot(fpr, tpr, label=f"{c} (AUROC {chosen['per_class'][c]['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    where = " ".join(_group(chosen, varying))
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"ROC on fold 10: {where + ' ' if where else ''}{chosen['arm']}, seed {chosen['seed']}, "
                 f"{chosen['fraction']:g} of labels")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(_save_png(fig, out / "roc_curves.png"))
    plt.close(fig)

    def series(g, arm):
        sel = [r for r in rows if r["arm"] == arm and _group(r, varying) == g]
        fs = sorted({r["fraction"] for r in sel})
        return fs, [mean_sd_ci([r["macro_auroc"] for r in sel if r["fraction"] == f]) for f in fs]

    fig, ax = plt.subplots(figsize=(6 + 2 * bool(varying), 4.5))
    for g in groups:
        for arm in arms:
            fs, s = series(g, arm)
            if not fs:
                continue
            mean = np.array([x["mean"] for x in s])
            ax.plot(fs, mean, marker="o", label=_series_label(g, varying, arm))
            lo = np.array([x["ci_low"] if x["n"] > 1 else x["mean"] for x in s])
            hi = np.array([x["ci_high"] if x["n"] > 1 else x["mean"] for x in s])
            ax.fill_between(fs, lo, hi, alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel="label fraction (folds 1-8)", ylabel="macro AUROC on fold 10 (mean, 95% CI)",
           title="Label efficiency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save_png(fig, out / "auroc_vs_fraction.png"))
    plt.close(fig)
    if varying:
        paths.append(_plot_axes(rows, arms, out, varying, groups))
    return paths


def _plot_axes(rows, arms, out: Path, varying: list[str], groups: list[tuple]) -> Path:
    """axes.png: per label fraction, bars of macro AUROC (mean, 95 % CI) per arm, one bar per
    combination of the varying axes, side by side: seed vs field recipe, backbone by backbone."""
    import matplotlib.pyplot as plt

    from ecgfast.report.stats import mean_sd_ci

    fractions = sorted({r["fraction"] for r in rows})
    fig, axs = plt.subplots(1, len(fractions), figsize=(max(4.5, 1.2 * len(arms) * len(groups) ** 0.5 + 3)
                                                        * len(fractions), 4.5), squeeze=False)
    width = 0.8 / len(groups)
    for ax, f in zip(axs[0], fractions):
        for k, g in enumerate(groups):
            xs, means, errs = [], [], [[], []]
            for i, arm in enumerate(arms):
                vals = [r["macro_auroc"] for r in rows if r["arm"] == arm and r["fraction"] == f
                        and _group(r, varying) == g]
                if not vals:
                    continue
                s = mean_sd_ci(vals)
                xs.append(i + (k - (len(groups) - 1) / 2) * width)
                means.append(s["mean"])
                errs[0].append(s["mean"] - s["ci_low"] if s["n"] > 1 else 0)
                errs[1].append(s["ci_high"] - s["mean"] if s["n"] > 1 else 0)
            if xs:
                ax.bar(xs, means, width, yerr=errs, capsize=3, label=" ".join(g))
        ax.set_xticks(range(len(arms)), arms, rotation=20, fontsize=8)
        ax.set_ylim(0.4, 1.0)
        ax.set(ylabel="macro AUROC on fold 10 (mean, 95% CI)", title=f"{f:g} of labels")
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
    axs[0][0].legend(fontsize=7, title=" / ".join(varying), title_fontsize=7)
    fig.tight_layout()
    path = _save_png(fig, out / "axes.png")
    plt.close(fig)
    return path


def write_outputs(rows: list[dict], arms: list[str], out: Path, timings: dict, encoder: str = DEFAULT_ENCODER,
                  axes: dict | None = None) -> str:
    from ecgfast.base.checkpoint import atomic_write_text

    axes = axes or {"encoder": [encoder], "recipe": [DEFAULT_RECIPE], "task": [DEFAULT_TASK]}
    flat = [{**{n: _axis_of(r, n) for n in AXES}, "arm": r["arm"], "seed": r["seed"], "label_fraction": r["fraction"],
             **{m: r[m] for m in METRICS}, **{f"{m}_ci_low": r["ci95"][m][0] for m in METRICS},
             **{f"{m}_ci_high": r["ci95"][m][1] for m in METRICS}} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(out / "results.csv", buf.getvalue())
    encoders = axes.get("encoder") or [encoder]
    atomic_write_text(out / "results.json", json.dumps({
        "encoder": encoders[0] if len(encoders) == 1 else None, "encoders": encoders,
        "recipes": axes.get("recipe"), "tasks": axes.get("task"), "runs": flat, "timings_s": timings}, indent=1))
    baseline_only = "supervised" not in arms and any(r["arm"] == "supervised" for r in rows)
    all_arms = arms + (["supervised"] if baseline_only else [])
    table, _ = summarize(rows, all_arms, axes)
    head = (f"Encoder (backbone): {encoders[0]}." if len(encoders) == 1 else
            f"Encoders (backbones): {', '.join(encoders)}.")
    head += f" Recipes: {', '.join(axes.get('recipe') or [DEFAULT_RECIPE])}." \
            f" Tasks: {', '.join(axes.get('task') or [DEFAULT_TASK])}."
    atomic_write_text(out / "summary.md", f"# ecgfast experiment\n\n{head}\n\n" + table + "\n")
    plot(rows, all_arms, out, axes)
    return table


def run(cfg: ExperimentConfig, timings: dict | None = None) -> str:
    from ecgfast.base.runtime import resolve_device, resolve_precision

    cfg.validate()
    # Resolved once, so that a finished run's settings say what really ran.
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(
        cfg.run, precision=resolve_precision(cfg.run.precision, resolve_device(cfg.run.device))))
    from ecgfast.base.fs import prepare_output_folder

    timings = {} if timings is None else timings
    prepare_output_folder(cfg.out)  # a read-only or full --out fails now, not after the first run
    dataset = dataset_fingerprint(cfg)
    rows, encoders = [], {}
    for cell, arm, seed, fraction in plan(cfg):
        method = _pretrain_method(arm)
        key = (cell.encoder, cell.recipe, method, seed)  # the task does not change pretraining
        if method and key not in encoders:
            encoders[key] = pretrain(cfg, method, seed, timings, dataset, cell)
        rows.append(train_and_evaluate(cfg, arm, seed, fraction, encoders.get(key), timings, dataset, cell))
    return write_outputs(rows, list(cfg.arms), cfg.out, timings, cfg.encoder,
                         axes={name: list(cfg.axis(name)) for name in AXES})
