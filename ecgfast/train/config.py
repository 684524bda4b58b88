"""Run configurations: one dataclass per engine, one shared set of data flags.

The engines (``ecgfast.train.pretrain.pretrain``, ``ecgfast.train.classifier.train``,
``ecgfast.eval.evaluate.evaluate``) take these objects; the command lines only
build them (``*.from_args``). ``experiment`` and ``demo`` construct them directly.
Every numeric field is range-checked by ``validate()`` (the command lines also
check at parse time), so a bad value fails before any work with the flag named.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ecgfast import TASKS
from ecgfast.base.errors import ConfigError
from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES, check_encoder_name
from ecgfast.models.layout import MEMORY_FORMATS, check_memory_format
from ecgfast.base.runtime import COMPILE_MODES, PRECISIONS
from ecgfast.cli.types import (non_negative_float, non_negative_int, open_unit, positive_float, positive_int,
                               unit_fraction)

SAMPLING_RATES = (100, 500)
LOSSES = ("bce", "focal", "weighted", "class_balanced")
SAMPLINGS = ("standard", "oversample")
METHODS = ("simclr", "byol")
MIN_SIGNAL_LENGTH = 64  # the band-pass needs > 30 samples; the encoder's stride-8 pyramid a few more


def _check(ok: bool, flag: str, value, need: str) -> None:
    if not ok:
        raise ConfigError(f"{flag} {value}: must be {need}")


def _check_views(cfg) -> None:
    """``--crop-seconds`` within the ``--signal-length`` record window; ``--resized-crop`` in (0, 1]."""
    from ecgfast.augment.params import check_resized_crop_min, view_samples

    try:
        if cfg.crop_seconds is not None:
            view_samples(cfg.crop_seconds, cfg.data.sampling_rate, cfg.signal_length, flag="--crop-seconds")
        check_resized_crop_min(cfg.resized_crop_min, flag="--resized-crop")
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclass
class DataConfig:
    """Where the PTB-XL records and their cache are."""

    data_root: Path | None = Path("data/PTB-XL")
    cache: Path | None = None
    sampling_rate: int = 100
    skip_missing: bool = False
    workers: int = 1
    skip_bad: bool = False

    def validate(self) -> None:
        _check(self.sampling_rate in SAMPLING_RATES, "--sampling-rate", self.sampling_rate, "100 or 500")
        _check(self.workers >= 1, "--workers", self.workers, ">= 1")
        if self.data_root is None and self.cache is None:
            raise ConfigError("give --data-root or --cache")

    def cache_path(self) -> Path:
        from ecgfast.data.cache import default_cache_path

        return Path(self.cache) if self.cache else default_cache_path(self.data_root, self.sampling_rate)

    def open(self, progress: bool = True):
        """The cache, built from ``data_root`` when missing or stale."""
        from ecgfast.data import ensure_cache

        return ensure_cache(self.data_root, self.cache, self.sampling_rate, self.skip_missing, self.workers,
                            progress=progress, skip_bad=self.skip_bad)


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"), help="PTB-XL folder")
    p.add_argument("--cache", type=Path, default=None,
                   help="HDF5 cache (built from --data-root when missing; default DATA_ROOT/ecgfast_cache_<rate>hz.h5)")
    p.add_argument("--sampling-rate", type=int, default=100, choices=SAMPLING_RATES)
    p.add_argument("--skip-missing", action="store_true", help="cache a partial PTB-XL")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip (and count) records that fail validation, e.g. NaN samples, instead of refusing")
    p.add_argument("--workers", type=positive_int, default=1, help="processes that build the cache")


def data_from_args(a: argparse.Namespace) -> DataConfig:
    return DataConfig(a.data_root, a.cache, a.sampling_rate, a.skip_missing, a.workers, a.skip_bad)


def add_encoder_flag(p: argparse.ArgumentParser, default: str | None = DEFAULT_ENCODER, help: str = "") -> None:
    """``--encoder NAME``: the backbone (``ecgfast.models.backbones``); an unknown name is a usage error
    listing the valid ones."""
    p.add_argument("--encoder", choices=ENCODER_NAMES, default=default, metavar="NAME",
                   help=help or f"the encoder (backbone): {', '.join(ENCODER_NAMES)} (default {default})")


def add_run_flags(p: argparse.ArgumentParser, precision_help: str = "") -> None:
    """Flags of every training run: device, precision, compile, seed, progress."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast precision; auto = bf16 on GPUs (fp16 + GradScaler where a GPU lacks bf16) and on CPUs "
                        "with native bf16 (AVX512-BF16/AMX), fp32 on other CPUs" + precision_help)
    p.add_argument("--compile", choices=COMPILE_MODES, default="auto", nargs="?", const="on",
                   help="torch.compile the encoder: auto = on CUDA only (no gain measured on the CPU)")
    p.add_argument("--memory-format", choices=MEMORY_FORMATS, default="auto",
                   help="layout of the encoder's convolutions: channels-last or contiguous (NCW); auto = the one "
                        "measured faster for the device and precision (BENCHMARKS.md); a resumed run keeps its own")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class RunConfig:
    device: str = "auto"
    precision: str = "auto"
    compile: str = "auto"
    seed: int = 42
    progress: bool = True
    memory_format: str = "auto"  # "auto" | "channels-last" | "contiguous" (ecgfast.models.layout)

    def validate(self) -> None:
        check_memory_format(self.memory_format)
        _check(self.precision in PRECISIONS, "--precision", self.precision, "one of " + ", ".join(PRECISIONS))
        _check(self.compile in COMPILE_MODES, "--compile", self.compile, "one of " + ", ".join(COMPILE_MODES))


def run_from_args(a: argparse.Namespace) -> RunConfig:
    return RunConfig(a.device, a.precision, a.compile, a.seed, not a.no_progress, a.memory_format)


@dataclass
class PretrainConfig:
    """One SimCLR or BYOL pretraining run (the seed's flags and defaults)."""

    method: str = "simclr"
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = Path("checkpoints/ssl_simclr.pt")
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    signal_length: int = 1000
    temperature: float = 0.07
    projection_dim: int = 128
    tau: float = 0.999
    augment: str = "full"
    resume: bool = False
    checkpoint_every: int = 50
    log_every: int = 10
    log: Path | None = None
    corpus: tuple = ()  # "MANIFEST[:WEIGHT]" entries: pretrain on these corpora instead of PTB-XL folds 1-8
    epoch_samples: int | None = None  # with corpora: samples per epoch (default: all their windows)
    memory_budget_mb: float = 256.0  # with corpora: the streaming loader's buffers
    encoder: str = DEFAULT_ENCODER  # the backbone (ecgfast.models.backbones)
    crop_seconds: float | None = None  # views of S seconds of the record window; None: the whole window
    resized_crop_min: float | None = None  # random-resized-crop keeping a fraction in [MIN, 1]; None: off
    # Optimiser and schedule (ecgfast.train.recipe: the recipe sets them, explicit values win).
    schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    optimizer: str = "adam"
    recipe: str = "seed"

    def validate(self) -> None:
        from ecgfast.augment import CONFIGS

        check_encoder_name(self.encoder)
        _check_optimisation(self)
        for entry in self.corpus:
            parse_corpus(entry)
        _check(self.epoch_samples is None or self.epoch_samples >= 1, "--epoch-samples", self.epoch_samples, ">= 1")
        _check(self.memory_budget_mb > 0, "--memory-budget-mb", self.memory_budget_mb, "> 0")
        self.data.validate()
        self.run.validate()
        _check(self.method in METHODS, "method", self.method, "simclr or byol")
        _check(self.epochs >= 1, "--epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 2, "--batch-size", self.batch_size, ">= 2")
        _check(math.isfinite(self.lr) and self.lr > 0, "--lr", self.lr, "a positive number")
        _check(self.signal_length >= MIN_SIGNAL_LENGTH, "--signal-length", self.signal_length,
               f">= {MIN_SIGNAL_LENGTH}")
        _check(self.temperature > 0, "--temperature", self.temperature, "positive (temperature must be positive)")
        _check(self.projection_dim >= 1, "--projection-dim", self.projection_dim, ">= 1")
        _check(0 < self.tau < 1, "--tau", self.tau, "in (0, 1) (--tau must be in (0, 1))")
        _check(self.augment in CONFIGS, "--config", self.augment, "one of " + ", ".join(CONFIGS))
        _check_views(self)
        _check(self.checkpoint_every >= 1, "--checkpoint-every", self.checkpoint_every, ">= 1")
        _check(self.log_every >= 1, "--log-every", self.log_every, ">= 1")

    def flat(self) -> dict:
        """The run's settings as one flat dict of plain values (stored in checkpoints)."""
        return flatten(self)


@dataclass
class ClassifierConfig:
    """Fine-tuning, linear probing (``freeze_encoder``) or the supervised baseline (``ssl_checkpoint`` None)."""

    mode: str = "supervised"
    ssl_checkpoint: Path | None = None
    freeze_encoder: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = Path("checkpoints/supervised.pt")
    label_fraction: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    signal_length: int = 1000
    loss: str = "bce"
    sampling: str = "standard"
    encoder: str | None = None  # the backbone; None: the --ssl-checkpoint's, else the seed's ecg1dcnn
    task: str = "superdiagnostic"  # the PTB-XL benchmark task whose labels train the head (TASKS)
    # Train on random crops of S seconds, score a record by the mean over its crops (window averaging);
    # None: the --ssl-checkpoint's (spec["crop_seconds"]), else the whole window.
    crop_seconds: float | None = None
    resized_crop_min: float | None = None  # fine-tune on random-resized-crops (--resized-crop MIN); None: off
    schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    optimizer: str = "adam"
    recipe: str = "seed"
    probe: str = "head"  # with freeze_encoder: "head" (a trained Linear) or "logistic" (L2-tuned, sklearn)
    layer_lr_decay: float | None = None  # fine-tuning: the encoder's blocks at lr x d, d^2, ... from the top

    def validate(self) -> None:
        from ecgfast.train.recipe import PROBES

        if self.encoder is not None:
            check_encoder_name(self.encoder)
        _check_optimisation(self)
        _check(self.probe in PROBES, "--probe", self.probe, "one of " + ", ".join(PROBES))
        _check(self.layer_lr_decay is None or 0 < self.layer_lr_decay <= 1, "--layer-lr-decay",
               self.layer_lr_decay, "in (0, 1]")
        _check(self.task in TASKS, "--task", self.task, "one of " + ", ".join(TASKS))
        self.data.validate()
        self.run.validate()
        _check(self.mode in ("finetune", "supervised"), "mode", self.mode, "finetune or supervised")
        _check(0 < self.label_fraction <= 1, "--label-fraction", self.label_fraction, "in (0, 1]")
        _check(self.epochs >= 1, "--epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 1, "--batch-size", self.batch_size, ">= 1")
        _check(math.isfinite(self.lr) and self.lr > 0, "--lr", self.lr, "a positive number")
        _check(self.signal_length >= MIN_SIGNAL_LENGTH, "--signal-length", self.signal_length,
               f">= {MIN_SIGNAL_LENGTH}")
        _check(self.loss in LOSSES, "--loss", self.loss, "one of " + ", ".join(LOSSES))
        _check(self.sampling in SAMPLINGS, "--sampling", self.sampling, "one of " + ", ".join(SAMPLINGS))
        _check_views(self)

    def flat(self) -> dict:
        return flatten(self)


def _check_optimisation(cfg) -> None:
    """The recipe, optimiser and schedule settings of a pretraining or classifier config."""
    from ecgfast.train.common import OPTIMIZERS, SCHEDULES
    from ecgfast.train.recipe import check_recipe_name

    check_recipe_name(cfg.recipe)
    _check(cfg.optimizer in OPTIMIZERS, "--optimizer", cfg.optimizer, "one of " + ", ".join(OPTIMIZERS))
    _check(cfg.schedule in SCHEDULES, "--schedule", cfg.schedule, "one of " + ", ".join(SCHEDULES))
    _check(math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0, "--weight-decay", cfg.weight_decay, ">= 0")
    _check(cfg.warmup_epochs >= 0, "--warmup-epochs", cfg.warmup_epochs, ">= 0")
    _check(cfg.warmup_epochs == 0 or cfg.warmup_epochs < cfg.epochs, "--warmup-epochs", cfg.warmup_epochs,
           f"fewer than the {cfg.epochs} --epochs")


def add_optimisation_flags(p: argparse.ArgumentParser) -> None:
    """``--recipe`` and its parts; a part given explicitly overrides the recipe's value
    (defaults are SUPPRESS: ``ecgfast.train.recipe.explicit_parts`` sees only what was given)."""
    from ecgfast.train.common import OPTIMIZERS, SCHEDULES
    from ecgfast.train.recipe import RECIPES

    S = argparse.SUPPRESS
    p.add_argument("--recipe", choices=RECIPES, default="seed",
                   help="seed (constant-lr Adam, whole-window views: the seed's) or field (2.5 s crop views with "
                        "random-resized-crop, AdamW + weight decay or LARS from batch 1024, warm-up then cosine, "
                        "logistic probe; docs/recipes.md); the flags below override its parts")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=S, help="default: the recipe's (seed: adam)")
    p.add_argument("--weight-decay", type=non_negative_float, default=S,
                   help="default: the recipe's (seed: 0); never on biases and normalisation parameters")
    p.add_argument("--schedule", choices=SCHEDULES, default=S, help="learning-rate schedule (default: the recipe's)")
    p.add_argument("--warmup-epochs", type=non_negative_int, default=S,
                   help="linear warm-up epochs (default: the recipe's: seed 0, field 10 %% of --epochs)")


def flatten(cfg) -> dict:
    """Nested config dataclasses as one flat dict of JSON/checkpoint-safe values (paths as strings)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update(flatten(v))
        elif isinstance(v, Path):
            out[f.name] = str(v)
        elif isinstance(v, (list, tuple)):
            out[f.name] = [str(x) if isinstance(x, Path) else x for x in v]
        else:
            out[f.name] = v
    return out


def add_pretrain_flags(p: argparse.ArgumentParser, method: str) -> None:
    add_data_flags(p)
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=_at_least_two, default=256, help="ECG pairs per step (global, over all ranks)")
    p.add_argument("--lr", type=positive_float, default=argparse.SUPPRESS,
                   help="default 1e-3 (field recipe with LARS: 0.3 x batch / 256)")
    p.add_argument("--signal-length", type=_signal_length, default=1000, help="samples per lead (the first ones are kept)")
    p.add_argument("--out", type=Path, default=Path(f"checkpoints/ssl_{method}.pt"))
    if method == "simclr":
        p.add_argument("--temperature", type=positive_float, default=0.07)
        p.add_argument("--projection-dim", type=positive_int, default=128)
    else:
        p.add_argument("--tau", type=open_unit, default=0.999, help="EMA rate of the target network, in (0, 1)")
    add_run_flags(p)
    from ecgfast.augment import CONFIGS

    p.add_argument("--config", choices=CONFIGS, default="full", help="augmentations: full or an ablation")
    add_crop_flag(p, "views of S seconds cut at random from the --signal-length window (default: the whole window)")
    add_resized_crop_flag(p, "random-resized-crop: each view keeps a fraction drawn in [MIN, 1] of its crop, "
                             "resampled back to the view's length (MIN in (0, 1]; default off)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the periodic checkpoint (a lower --lr or another --precision may be given)")
    p.add_argument("--checkpoint-every", type=positive_int, default=50, help="steps between periodic checkpoints")
    p.add_argument("--log-every", type=positive_int, default=10,
                   help="steps between progress updates and divergence checks (the only host syncs of a step)")
    p.add_argument("--log", type=Path, default=None, help="JSON-lines log (default: OUT with .jsonl)")
    p.add_argument("--corpus", action="append", default=[], metavar="MANIFEST[:WEIGHT]",
                   help="pretrain on a corpus built by `ecgfast corpus build` instead of PTB-XL folds 1-8; repeat "
                        "for a weighted mix, e.g. --corpus mimic/manifest.json:0.7 --corpus code15/manifest.json:0.3")
    p.add_argument("--epoch-samples", type=positive_int, default=None,
                   help="with --corpus: samples per epoch (default: every window once)")
    p.add_argument("--memory-budget-mb", type=positive_float, default=256.0,
                   help="with --corpus: memory of the streaming loader's buffers")
    add_encoder_flag(p)
    add_optimisation_flags(p)


def pretrain_from_args(a: argparse.Namespace, method: str) -> PretrainConfig:
    from ecgfast.train.recipe import apply_recipe, explicit_parts

    cfg = PretrainConfig(method=method, data=data_from_args(a), run=run_from_args(a), out=a.out, epochs=a.epochs,
                          batch_size=a.batch_size, signal_length=a.signal_length,
                          temperature=getattr(a, "temperature", 0.07), projection_dim=getattr(a, "projection_dim", 128),
                          tau=getattr(a, "tau", 0.999), augment=a.config, resume=a.resume,
                          checkpoint_every=a.checkpoint_every, log_every=a.log_every, log=a.log,
                          corpus=tuple(a.corpus), epoch_samples=a.epoch_samples, memory_budget_mb=a.memory_budget_mb,
                          encoder=a.encoder)
    return apply_recipe(cfg, a.recipe, **explicit_parts(a))


def add_crop_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--crop-seconds", type=positive_float, default=None, metavar="S", help=help)


def add_resized_crop_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--resized-crop", type=positive_float, default=None, metavar="MIN", dest="resized_crop_min",
                   help=help)


def parse_corpus(entry: str) -> tuple[Path, float]:
    """``path/to/manifest.json[:weight]`` -> (path, weight); weight 1 when omitted."""
    path, sep, weight = str(entry).rpartition(":")
    if not sep or not weight.replace(".", "", 1).replace("e-", "", 1).isdigit():
        return Path(entry), 1.0
    try:
        w = float(weight)
    except ValueError:
        raise ConfigError(f"--corpus {entry}: the weight after ':' must be a number") from None
    if not (math.isfinite(w) and w > 0):
        raise ConfigError(f"--corpus {entry}: the weight must be positive")
    return Path(path), w


def add_classifier_flags(p: argparse.ArgumentParser, mode: str) -> None:
    add_data_flags(p)
    p.add_argument("--label-fraction", type=unit_fraction, default=0.1,
                   help="share of the labelled records of folds 1-8 to train on (stratified, by seed)")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=argparse.SUPPRESS, help="default 1e-3")
    p.add_argument("--signal-length", type=_signal_length, default=1000)
    p.add_argument("--loss", choices=LOSSES, default="bce")
    p.add_argument("--sampling", choices=SAMPLINGS, default="standard")
    add_task_flag(p)
    p.add_argument("--out", type=Path, default=Path(f"checkpoints/{mode}.pt"))
    if mode == "finetune":
        add_encoder_flag(p, None, f"the encoder (backbone): {', '.join(ENCODER_NAMES)}; default the "
                                  "--ssl-checkpoint's (another one is refused), or ecg1dcnn with --ssl-checkpoint none")
    else:
        add_encoder_flag(p)
    add_crop_flag(p, "train on random crops of S seconds of the --signal-length window and score each record by "
                     "the mean over its crops (default: the --ssl-checkpoint's, else the whole window)")
    add_resized_crop_flag(p, "train on random-resized-crops keeping a fraction drawn in [MIN, 1] of each crop (the "
                             "whole window without crops), resampled back to its length (MIN in (0, 1]; default off)")
    add_optimisation_flags(p)
    if mode == "finetune":
        from ecgfast.train.recipe import PROBES

        p.add_argument("--probe", choices=PROBES, default=argparse.SUPPRESS,
                       help="with --freeze-encoder: head (a Linear trained by --optimizer) or logistic (L2-regularised "
                            "logistic regression per class on embeddings computed once, C chosen on fold 9 by macro "
                            "AUROC; implies --freeze-encoder); default: the recipe's (seed: head, field: logistic)")
        p.add_argument("--layer-lr-decay", type=unit_fraction, default=argparse.SUPPRESS, metavar="D",
                       help="discriminative learning rates: the head at --lr, the encoder's last block at lr x D, "
                            "the one before at lr x D^2, ... (default: off)")
    add_run_flags(p)


def add_task_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=TASKS, default="superdiagnostic",
                   help="the PTB-XL benchmark task whose labels the classifier learns (default superdiagnostic, "
                        "5 classes; all 71 statements, diagnostic 44, subdiagnostic 23, form 19, rhythm 12 "
                        "on the full PTB-XL)")


def classifier_from_args(a: argparse.Namespace, mode: str) -> ClassifierConfig:
    from ecgfast.train.recipe import apply_recipe, explicit_parts

    ssl = getattr(a, "ssl_checkpoint", None)
    freeze = getattr(a, "freeze_encoder", False) or getattr(a, "probe", None) == "logistic"
    cfg = ClassifierConfig(mode=mode, ssl_checkpoint=None if ssl is None or str(ssl).lower() == "none" else Path(ssl),
                           freeze_encoder=freeze, data=data_from_args(a),
                           run=run_from_args(a), out=a.out, label_fraction=a.label_fraction, epochs=a.epochs,
                           batch_size=a.batch_size, signal_length=a.signal_length, loss=a.loss,
                           sampling=a.sampling, encoder=getattr(a, "encoder", None),
                           task=getattr(a, "task", "superdiagnostic"))
    return apply_recipe(cfg, a.recipe, **explicit_parts(a))


def _at_least_two(text: str) -> int:
    v = positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a batch needs negatives), got {text}")
    return v


def _signal_length(text: str) -> int:
    v = non_negative_int(text)
    if v < MIN_SIGNAL_LENGTH:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_SIGNAL_LENGTH} samples, got {text}")
    return v
