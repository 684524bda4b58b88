"""Run configurations: one dataclass per engine, each field declared once.

The engines (``ecgfast.train.pretrain.pretrain``, ``ecgfast.train.classifier.train``,
``ecgfast.eval.evaluate.evaluate``) take these objects; ``experiment`` and ``demo`` construct
them directly, the command lines build them from flags (``ecgfast.cli.flags``).

Each field says everything about itself in its ``metadata`` (:func:`setting`): its flag, help,
choices or :class:`Range`, the commands it belongs to and its resume rule. From that one
declaration come the flags and their parse-time checks (``ecgfast.cli.flags.add_flags``),
``validate()`` (a bad value fails before any work with the flag named), ``from_values`` /
``from_args``, the resume check (:func:`resume_mismatches`) and the run file that replays a run
(:func:`write_run_file`, ``--config run.toml``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from ecgfast import TASKS
from ecgfast.augment.params import CONFIGS as AUGMENT_CONFIGS
from ecgfast.base.errors import ConfigError
from ecgfast.base.runtime import COMPILE_MODES, PRECISIONS
from ecgfast.data.metadata import DEFAULT_TASK
from ecgfast.data.metadata import SAMPLING_RATES as PTBXL_RATE_COLUMNS
from ecgfast.losses import DEFAULT_TEMPERATURE
from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES, check_encoder_name
from ecgfast.models.heads import DEFAULT_TAU
from ecgfast.models.layout import MEMORY_FORMATS, check_memory_format
from ecgfast.train.common import OPTIMIZERS, SCHEDULES
from ecgfast.train.methods import METHODS as METHOD_TABLE
from ecgfast.train.recipe import (
    PROBES,
    RECIPES,
    SEED_VALUES,
    apply_recipe,
    check_recipe_name,
    explicit_parts,
    recipe_values,
)

SAMPLING_RATES = tuple(PTBXL_RATE_COLUMNS)  # PTB-XL's rates: 100, 500 Hz
LOSSES = ("bce", "focal", "weighted", "class_balanced")
SAMPLINGS = ("standard", "oversample")
METHODS = tuple(METHOD_TABLE)  # the pretraining methods' names (ecgfast.train.methods: one table)
CLASSIFIER_MODES = ("finetune", "supervised")
MIN_SIGNAL_LENGTH = 64  # the band-pass needs > 30 samples; the encoder's stride-8 pyramid a few more
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"

# Resume rules: what a field may do between a run and the periodic checkpoint it resumes.
MATCH = "match"  # must be the checkpoint's
FREE = "free"  # may change (device, precision, logging, ...)
LOWER = "lower"  # may only go down (lr: the advice after a divergence)
RESUME_RULES = (MATCH, FREE, LOWER)
RUN_FILE_SUFFIX = ".run.toml"


@dataclass(frozen=True)
class Range:
    """A numeric bound: ``low <= v`` (``low < v`` when ``low_open``), likewise ``high``; floats must be
    finite. ``note`` follows the bound in messages ("must be >= 2 (a batch needs negatives)")."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""
    text: str = ""  # the whole requirement in words, where the bounds alone would not say it

    def need(self) -> str:
        if self.text:
            return self.text
        low, high = (None if x is None else f"{x:g}" for x in (self.low, self.high))
        if low is not None and high is not None:
            text = f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif low is not None:
            text = f"{'>' if self.low_open else '>='} {low}"
        else:
            text = f"{'<' if self.high_open else '<='} {high}"
        return f"{text} {self.note}" if self.note else text

    def holds(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1, low_open=True)  # (0, 1]
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)


def setting(default=MISSING, *, help: str, flag: str | None = None, choices=None, range=(), check=None,
            resume: str = FREE, commands=None, part: bool = False, switch: str | None = None, metavar=None,
            defaults: dict | None = None, none_word: str | None = None, required=(), const=None,
            run_file: bool = True, command: bool = False, nargs: str | None = None, default_factory=MISSING):
    """A config field with its one declaration.

    ``flag``: the flag (default ``--name-with-dashes``; ``""``: no flag, e.g. the command's own name);
    ``choices``/``range`` (a :class:`Range` or several, checked in order)/``check(value, flag)``: the
    valid values (``check`` gives validate()'s message where both are set); ``resume``: MATCH, FREE or
    LOWER; ``commands``: the commands that have the flag (default: all of the config's); ``part``: a
    recipe part (the flag's default is SUPPRESS, ``ecgfast.train.recipe.explicit_parts``);
    ``switch``: ``"on"`` (``--flag`` sets True) or ``"off"`` (``--no-flag`` sets False); ``defaults``:
    per-command defaults; ``none_word``: the flag value meaning None; ``required``: the commands that
    must give it; ``const``: the value of the flag given without one; ``run_file``: whether the run
    file records it; ``command``: the field names the command itself (``method``, ``mode``); ``nargs``:
    a sequence given as values after one flag (``--seeds 1 2 3``) instead of a repeated flag.
    """
    if resume not in RESUME_RULES:
        raise ValueError(f"resume rule {resume!r}: expected one of {', '.join(RESUME_RULES)}")
    meta = {"help": help, "flag": flag, "choices": None if choices is None else tuple(choices),
            "range": (range,) if isinstance(range, Range) else tuple(range), "check": check, "resume": resume,
            "commands": None if commands is None else tuple(commands), "part": part, "switch": switch,
            "metavar": metavar, "defaults": dict(defaults or {}), "none_word": none_word,
            "required": tuple(required), "const": const, "run_file": run_file, "command": command,
            "nargs": nargs}
    return field(default=default, default_factory=default_factory, metadata=meta)


def flag_of(f: dataclasses.Field) -> str | None:
    """The flag of field ``f`` (None: it has none)."""
    flag = f.metadata.get("flag")
    if flag == "":
        return None
    if flag:
        return flag
    return ("--no-" if f.metadata.get("switch") == "off" else "--") + f.name.replace("_", "-")


def has_flag(f: dataclasses.Field, command: str | None) -> bool:
    commands = f.metadata.get("commands")
    return flag_of(f) is not None and (command is None or commands is None or command in commands)


def _check(ok: bool, flag: str, value, need: str) -> None:
    if not ok:
        raise ConfigError(f"{flag} {value}: must be {need}")


@dataclass(frozen=True)
class FieldType:
    """What a field holds: ``base`` (int, float, str, bool, Path), whether None is allowed, whether it
    is a sequence of ``base``."""

    base: type
    nullable: bool = False
    sequence: bool = False


def _field_type(hint) -> FieldType:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return dataclasses.replace(_field_type(inner[0]), nullable=len(inner) < len(args))
    if hint in (tuple, list) or typing.get_origin(hint) in (tuple, list):
        return FieldType(args[0] if args else str, sequence=True)
    return FieldType(hint)


def field_types(cls) -> dict[str, FieldType]:
    return {name: _field_type(hint) for name, hint in typing.get_type_hints(cls).items()}


def leaf_fields(cls):
    """``(owner class, field)`` for every plain field of ``cls``, nested configs (data, run) flattened
    in place; field names are unique across the nest (``flat()`` relies on it)."""
    for f in dataclasses.fields(cls):
        sub = typing.get_type_hints(cls)[f.name]
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            yield from leaf_fields(sub)
        else:
            yield cls, f


def _command_field(cls) -> str | None:
    return next((f.name for f in dataclasses.fields(cls) if f.metadata.get("command")), None)


def default_of(f: dataclasses.Field, command: str | None = None):
    """Field ``f``'s default for ``command`` (its per-command default, else the dataclass's)."""
    defaults = f.metadata.get("defaults") or {}
    if command in defaults:
        return defaults[command]
    return f.default_factory() if f.default_factory is not MISSING else f.default


def coerce(ftype: FieldType, f: dataclasses.Field, value, where: str):
    """``value`` (from a flag or a run file) as field ``f`` holds it, or a ConfigError naming ``where``."""
    flag = flag_of(f) or f.name
    none_word = f.metadata.get("none_word")
    if value is None or (none_word and str(value).lower() == none_word):
        if ftype.nullable or value is None and ftype.sequence:
            return () if ftype.sequence else None
        raise ConfigError(f"{where}{flag}: a value is required")
    if ftype.sequence:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(coerce(FieldType(ftype.base), f, v, where) for v in items)
    base = ftype.base
    if base is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str), Path: isinstance(value, (str, Path))}.get(base, True)
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(base, "a string")
        raise ConfigError(f"{where}{flag} {value!r}: expected {kind}")
    return base(value) if base in (float, Path) else value


class Settings:
    """What every config dataclass shares: validate, from_values/from_args, flat."""

    def validate(self) -> None:
        """Every field against its declaration (choices, range, check), nested configs included; then
        the checks across fields (``_validate_more``)."""
        types_ = field_types(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate()
                continue
            m, flag = f.metadata, flag_of(f) or f.name
            if value is None and types_[f.name].nullable:
                continue
            items = value if types_[f.name].sequence else (value,)  # a sequence: each value checked
            if m.get("check") is not None:
                m["check"](value, flag)
            elif m.get("choices") is not None:
                for v in items:
                    _check(v in m["choices"], flag, v, "one of " + ", ".join(map(str, m["choices"])))
            for r in m.get("range") or ():
                for v in items:
                    _check(r.holds(v), flag, v, r.need())
        self._validate_more()

    def _validate_more(self) -> None:
        """The checks that involve several fields."""

    def flat(self) -> dict:
        """The run's settings as one flat dict of plain values (stored in checkpoints)."""
        return flatten(self)

    @classmethod
    def from_values(cls, values: dict, command: str | None = None, where: str = ""):
        """The config of ``command`` from flat ``values`` (field name -> value, as ``flat()`` gives or a
        command line parses; Path and tuple fields from strings and lists); an absent field takes its
        (per-command) default and an absent recipe part the recipe's value. ``where`` prefixes errors
        (e.g. the run file's name)."""
        leaves = list(leaf_fields(cls))
        known = {f.name for _, f in leaves}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}unknown setting(s) {', '.join(unknown)} (settings of {cls.__name__}: "
                              f"{', '.join(sorted(known))})")
        kw: dict[type, dict] = {}
        for owner, f in leaves:
            value = values[f.name] if f.name in values else default_of(f, command)
            if f.name in values:
                value = coerce(field_types(owner)[f.name], f, value, where)
            kw.setdefault(owner, {})[f.name] = value
        top = kw.pop(cls, {})
        name = _command_field(cls)
        if name and command is not None:
            top[name] = command
        for f in dataclasses.fields(cls):
            sub = typing.get_type_hints(cls)[f.name]
            if isinstance(sub, type) and dataclasses.is_dataclass(sub):
                top[f.name] = sub(**kw.get(sub, {}))
        cfg = cls._adjust(cls(**top), values)
        if not any(f.name == "recipe" for f in dataclasses.fields(cls)):
            return cfg
        return apply_recipe(cfg, cfg.recipe, **explicit_parts(types.SimpleNamespace(**values)))

    @classmethod
    def _adjust(cls, cfg, values: dict):
        """Rules between given values (e.g. ``--probe logistic`` implies ``--freeze-encoder``)."""
        return cfg

    @classmethod
    def from_args(cls, args, command: str | None = None):
        """The config of a parsed command line: every field whose flag's dest (the field's name) is on
        ``args``; a recipe part not given is absent (its default is SUPPRESS) and takes the recipe's."""
        names = {f.name for _, f in leaf_fields(cls)}
        return cls.from_values({k: v for k, v in vars(args).items() if k in names}, command)

    @classmethod
    def command_default(cls, command: str | None = None):
        """The config a command runs with no flags given."""
        return cls.from_values({}, command)


def _check_views(cfg) -> None:
    """``--crop-seconds`` within the ``--signal-length`` record window; ``--resized-crop`` in (0, 1]."""
    from ecgfast.augment.params import check_resized_crop_min, view_samples

    try:
        if cfg.crop_seconds is not None:
            view_samples(cfg.crop_seconds, cfg.data.sampling_rate, cfg.signal_length, flag="--crop-seconds")
        check_resized_crop_min(cfg.resized_crop_min, flag="--resized-crop")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_encoder(value, flag: str) -> None:
    check_encoder_name(value, flag)


def _check_memory_format(value, flag: str) -> None:
    check_memory_format(value, flag)


def _check_recipe(value, flag: str) -> None:
    check_recipe_name(value)


@dataclass
class DataConfig(Settings):
    """Where the PTB-XL records and their cache are."""

    data_root: Path | None = setting(Path("data/PTB-XL"), help="PTB-XL folder")
    cache: Path | None = setting(None, help="HDF5 cache (built from --data-root when missing; default "
                                             "DATA_ROOT/ecgfast_cache_<rate>hz.h5)")
    sampling_rate: int = setting(100, choices=SAMPLING_RATES, resume=MATCH,
                                 help="the PTB-XL sampling rate in Hz: " + " or ".join(map(str, SAMPLING_RATES)))
    skip_missing: bool = setting(False, switch="on", help="cache a partial PTB-XL")
    workers: int = setting(1, range=AT_LEAST_ONE, help="processes that build the cache")
    skip_bad: bool = setting(False, switch="on", help="skip (and count) records that fail validation, e.g. NaN "
                                                      "samples, instead of refusing")

    def _validate_more(self) -> None:
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


@dataclass
class RunConfig(Settings):
    """How a training run computes: device, precision, compile, seed, progress, memory layout."""

    device: str = setting("auto", help=DEVICE_HELP)
    precision: str = setting("auto", choices=PRECISIONS,
                             help="autocast precision; auto = bf16 on GPUs (fp16 + GradScaler where a GPU lacks "
                                  "bf16) and on CPUs with native bf16 (AVX512-BF16/AMX), fp32 on other CPUs")
    compile: str = setting("auto", choices=COMPILE_MODES, const="on",
                           help="torch.compile the encoder: auto = on CUDA only (no gain measured on the CPU)")
    seed: int = setting(42, resume=MATCH, help="seed of the initialisation, the data order and the augmentations")
    progress: bool = setting(True, switch="off", help="no progress bar")
    memory_format: str = setting("auto", choices=MEMORY_FORMATS, check=_check_memory_format,
                                 help="layout of the encoder's convolutions: channels-last or contiguous (NCW); "
                                      "auto = the one measured faster for the device and precision "
                                      "(BENCHMARKS.md); a resumed run keeps its own")


_SIGNAL_LENGTH = (NON_NEGATIVE, Range(MIN_SIGNAL_LENGTH, note="samples"))
_RECIPE_HELP = ("seed (constant-lr Adam, whole-window views: the seed's) or field (2.5 s crop views with "
                "random-resized-crop, AdamW + weight decay or LARS from batch 1024, warm-up then cosine, "
                "logistic probe; docs/recipes.md); --optimizer, --weight-decay, --schedule, --warmup-epochs and "
                "--lr override its parts")


def _optimisation():
    """The recipe and its parts, shared by the pretraining and classifier configs (a part given explicitly
    overrides the recipe's value)."""
    return dict(
        schedule=setting("constant", choices=SCHEDULES, part=True, resume=MATCH,
                         help="learning-rate schedule (default: the recipe's)"),
        warmup_epochs=setting(0, range=NON_NEGATIVE, part=True, resume=MATCH,
                              help="linear warm-up epochs (default: the recipe's: seed 0, field 10 % of --epochs)"),
        weight_decay=setting(0.0, range=NON_NEGATIVE, part=True, resume=MATCH,
                             help="default: the recipe's (seed: 0); never on biases and normalisation parameters"),
        optimizer=setting("adam", choices=OPTIMIZERS, part=True, resume=MATCH,
                          help="default: the recipe's (seed: adam)"),
        recipe=setting("seed", choices=RECIPES, check=_check_recipe, resume=MATCH, help=_RECIPE_HELP),
    )


@dataclass
class PretrainConfig(Settings):
    """One SimCLR or BYOL pretraining run (the seed's flags and defaults)."""

    method: str = setting("simclr", flag="", choices=METHODS, command=True, resume=MATCH,
                          help="the self-supervised method: " + " or ".join(METHODS))
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = setting(Path("checkpoints/ssl_simclr.pt"),
                        defaults={m: Path(f"checkpoints/ssl_{m}.pt") for m in METHODS},
                        help="the encoder checkpoint to write (default checkpoints/ssl_METHOD.pt)")
    epochs: int = setting(20, range=AT_LEAST_ONE, resume=MATCH, help="passes over the pretraining data")
    batch_size: int = setting(256, range=Range(2, note="(a batch needs negatives)"), resume=MATCH,
                              help="ECG pairs per step (global, over all ranks)")
    lr: float = setting(1e-3, range=POSITIVE, part=True, resume=LOWER,
                        help="default 1e-3 (field recipe with LARS: 0.3 x batch / 256)")
    signal_length: int = setting(1000, range=_SIGNAL_LENGTH, resume=MATCH,
                                 help="samples per lead (the first ones are kept)")
    temperature: float = setting(DEFAULT_TEMPERATURE, range=POSITIVE, commands=("simclr",), resume=MATCH,
                                 help=f"NT-Xent temperature (default {DEFAULT_TEMPERATURE})")
    projection_dim: int = setting(128, range=AT_LEAST_ONE, commands=("simclr",), resume=MATCH,
                                  help="output size of the projection head")
    tau: float = setting(DEFAULT_TAU, range=OPEN_UNIT, commands=("byol",), resume=MATCH,
                         help="EMA rate of the target network, in (0, 1)")
    augment: str = setting("full", choices=AUGMENT_CONFIGS, resume=MATCH,
                           help="augmentations: full or an ablation (no-AUGMENTATION)")
    resume: bool = setting(False, switch="on", run_file=False,
                           help="continue from the periodic checkpoint (a lower --lr or another --precision may "
                                "be given)")
    checkpoint_every: int = setting(50, range=AT_LEAST_ONE, help="steps between periodic checkpoints")
    log_every: int = setting(10, range=AT_LEAST_ONE,
                             help="steps between progress updates and divergence checks (the only host syncs of "
                                  "a step)")
    log: Path | None = setting(None, help="JSON-lines log (default: OUT with .jsonl)")
    corpus: tuple = setting((), metavar="MANIFEST[:WEIGHT]",
                            help="pretrain on a corpus built by `ecgfast corpus build` instead of PTB-XL folds 1-8; "
                                 "repeat for a weighted mix, e.g. --corpus mimic/manifest.json:0.7 --corpus "
                                 "code15/manifest.json:0.3")
    epoch_samples: int | None = setting(None, range=AT_LEAST_ONE,
                                        help="with --corpus: samples per epoch (default: every window once)")
    memory_budget_mb: float = setting(256.0, range=POSITIVE,
                                      help="with --corpus: memory of the streaming loader's buffers")
    encoder: str = setting(DEFAULT_ENCODER, choices=ENCODER_NAMES, check=_check_encoder, metavar="NAME",
                           resume=MATCH,
                           help=f"the encoder (backbone): {', '.join(ENCODER_NAMES)} (default {DEFAULT_ENCODER})")
    crop_seconds: float | None = setting(None, range=POSITIVE, metavar="S", resume=MATCH,
                                         help="views of S seconds cut at random from the --signal-length window "
                                              "(default: the whole window)")
    resized_crop_min: float | None = setting(None, flag="--resized-crop", range=POSITIVE, metavar="MIN",
                                             resume=MATCH,
                                             help="random-resized-crop: each view keeps a fraction drawn in [MIN, 1] "
                                                  "of its crop, resampled back to the view's length (MIN in (0, 1]; "
                                                  "default off)")
    # Optimiser and schedule (ecgfast.train.recipe: the recipe sets them, explicit values win).
    schedule: str = _optimisation()["schedule"]
    warmup_epochs: int = _optimisation()["warmup_epochs"]
    weight_decay: float = _optimisation()["weight_decay"]
    optimizer: str = _optimisation()["optimizer"]
    recipe: str = _optimisation()["recipe"]

    def _validate_more(self) -> None:
        _check_warmup(self)
        for entry in self.corpus:
            parse_corpus(entry)
        _check_views(self)


@dataclass
class ClassifierConfig(Settings):
    """Fine-tuning, linear probing (``freeze_encoder``) or the supervised baseline (``ssl_checkpoint`` None)."""

    mode: str = setting("supervised", flag="", choices=CLASSIFIER_MODES, command=True,
                        help="finetune (from a pretrained encoder) or supervised (from random initialisation)")
    ssl_checkpoint: Path | None = setting(None, commands=("finetune",), required=("finetune",), none_word="none",
                                          help="encoder checkpoint of a pretraining run; 'none' for a random-init "
                                               "encoder")
    freeze_encoder: bool = setting(False, switch="on", commands=("finetune",),
                                   help="train the linear head only (probe)")
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    out: Path = setting(Path("checkpoints/supervised.pt"),
                        defaults={m: Path(f"checkpoints/{m}.pt") for m in CLASSIFIER_MODES},
                        help="the classifier checkpoint to write (default checkpoints/MODE.pt)")
    label_fraction: float = setting(0.1, range=UNIT,
                                    help="share of the labelled records of folds 1-8 to train on (stratified, by "
                                         "seed)")
    epochs: int = setting(30, range=AT_LEAST_ONE, help="passes over the training records")
    batch_size: int = setting(64, range=AT_LEAST_ONE, help="records per step")
    lr: float = setting(1e-3, range=POSITIVE, part=True, help="default 1e-3")
    signal_length: int = setting(1000, range=_SIGNAL_LENGTH, help="samples per lead (the first ones are kept)")
    loss: str = setting("bce", choices=LOSSES, help="the training loss: " + ", ".join(LOSSES))
    sampling: str = setting("standard", choices=SAMPLINGS,
                            help="standard, or oversample records of rare classes")
    # the backbone; None: the --ssl-checkpoint's, else the seed's ecg1dcnn
    encoder: str | None = setting(None, choices=ENCODER_NAMES, check=_check_encoder, metavar="NAME",
                                  defaults={"supervised": DEFAULT_ENCODER},
                                  help=f"the encoder (backbone): {', '.join(ENCODER_NAMES)}; default "
                                       f"{DEFAULT_ENCODER}, or when fine-tuning the --ssl-checkpoint's (another "
                                       "one is refused)")
    task: str = setting(DEFAULT_TASK, choices=TASKS,
                        help="the PTB-XL benchmark task whose labels the classifier learns (default superdiagnostic, "
                             "5 classes; all 71 statements, diagnostic 44, subdiagnostic 23, form 19, rhythm 12 "
                             "on the full PTB-XL)")
    # Train on random crops of S seconds, score a record by the mean over its crops (window averaging);
    # None: the --ssl-checkpoint's (spec["crop_seconds"]), else the whole window.
    crop_seconds: float | None = setting(None, range=POSITIVE, metavar="S",
                                         help="train on random crops of S seconds of the --signal-length window and "
                                              "score each record by the mean over its crops (default: the "
                                              "--ssl-checkpoint's, else the whole window)")
    resized_crop_min: float | None = setting(None, flag="--resized-crop", range=POSITIVE, metavar="MIN",
                                             help="train on random-resized-crops keeping a fraction drawn in [MIN, 1] "
                                                  "of each crop (the whole window without crops), resampled back to "
                                                  "its length (MIN in (0, 1]; default off)")
    schedule: str = _optimisation()["schedule"]
    warmup_epochs: int = _optimisation()["warmup_epochs"]
    weight_decay: float = _optimisation()["weight_decay"]
    optimizer: str = _optimisation()["optimizer"]
    recipe: str = _optimisation()["recipe"]
    probe: str = setting("head", choices=PROBES, part=True, commands=("finetune",),
                         help="with --freeze-encoder: head (a Linear trained by --optimizer) or logistic "
                              "(L2-regularised logistic regression per class on embeddings computed once, C chosen "
                              "on fold 9 by macro AUROC; implies --freeze-encoder); default: the recipe's (seed: "
                              "head, field: logistic)")
    layer_lr_decay: float | None = setting(None, range=UNIT, part=True, commands=("finetune",), metavar="D",
                                           help="discriminative learning rates: the head at --lr, the encoder's "
                                                "last block at lr x D, the one before at lr x D^2, ... (default: "
                                                "off)")

    def _validate_more(self) -> None:
        _check_warmup(self)
        _check_views(self)

    @classmethod
    def _adjust(cls, cfg, values: dict):
        if values.get("probe") == "logistic":  # an explicit logistic probe is a frozen-encoder run
            cfg = dataclasses.replace(cfg, freeze_encoder=True)
        return cfg


def _check_warmup(cfg) -> None:
    _check(cfg.warmup_epochs == 0 or cfg.warmup_epochs < cfg.epochs, "--warmup-epochs", cfg.warmup_epochs,
           f"fewer than the {cfg.epochs} --epochs")


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


def resume_mismatches(saved: dict, cfg) -> list[str]:
    """The names of the settings of ``cfg`` that their resume rule forbids to differ from ``saved`` (the flat
    config of the checkpoint being resumed), in field order; [] when it may resume.
    MATCH fields must be equal, a LOWER one (lr) may only go down, FREE ones may change. A checkpoint
    written before a setting existed ran with the seed's value (the seed's encoder and recipe parts)."""
    mine = cfg.flat()
    theirs = {"encoder": DEFAULT_ENCODER, **SEED_VALUES, **saved}
    out = []
    for _, f in leaf_fields(type(cfg)):
        rule, k = f.metadata.get("resume", FREE), f.name
        if k not in mine or rule == FREE:
            continue
        if (rule == MATCH and mine[k] != theirs.get(k)) or (rule == LOWER and k in theirs and mine[k] > theirs[k]):
            out.append(k)
    return out


# -- run files: a run's whole configuration, saved and replayed ------------------------------
def run_file_path(out) -> Path:
    """Where a run writing ``out`` saves its run file: ``OUT`` with ``.run.toml``."""
    out = Path(out)
    return out.with_name(out.stem + RUN_FILE_SUFFIX)


def run_file_values(cfg, command: str | None = None) -> dict:
    """The settings of ``cfg`` a run file records: the flat config minus None values (TOML has no null:
    an absent setting takes its default, which is None for these), minus the settings the run's command
    has no flag for (a SimCLR run's tau) and those a replay must not inherit (``resume``)."""
    name = _command_field(type(cfg))
    command = command or (getattr(cfg, name) if name else None)
    flat = cfg.flat()
    keep = [f.name for _, f in leaf_fields(type(cfg))
            if f.metadata.get("run_file", True) and (f.metadata.get("command") or has_flag(f, command))]
    derived = _recipe_derived(cfg)
    return {k: flat[k] for k in keep if flat.get(k) is not None and k not in derived}


def _recipe_derived(cfg) -> set[str]:
    """The recipe parts of ``cfg`` that hold the value its recipe gives them: a run file leaves them out,
    so that its replay derives them again, as a command line that did not give them (an explicit
    ``--probe logistic`` freezes the encoder, the recipe's does not)."""
    if not any(f.name == "recipe" for f in dataclasses.fields(cfg)):
        return set()
    own = recipe_values(cfg.recipe, cfg)
    given = recipe_values(cfg.recipe, cfg, {"optimizer": cfg.optimizer})
    derived = {k for k, v in given.items() if k != "optimizer" and getattr(cfg, k) == v}
    return derived | ({"optimizer"} if own.get("optimizer") == cfg.optimizer else set())


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to TOML")


def to_toml(values: dict, header: str = "") -> str:
    """Flat ``values`` (bool, int, float, str and lists of them; no None) as a TOML document."""
    lines = [f"# {line}" for line in header.splitlines()]
    for k, v in values.items():
        if not k.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{k!r} is not a bare TOML key")
        lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def write_run_file(cfg, path=None, command: str | None = None) -> Path:
    """Save ``cfg`` (validated first) as a run file, by default beside its output (:func:`run_file_path`);
    ``--config PATH`` replays it, flags given with it overriding it. Written atomically."""
    from ecgfast.base.fs import atomic_write

    cfg.validate()
    path = Path(path) if path is not None else run_file_path(cfg.out)
    name = _command_field(type(cfg))
    command = command or (getattr(cfg, name) if name else None)
    header = (f"ecgfast run file ({type(cfg).__name__}{', ' + command if command else ''}): replay with "
              f"--config {path.name}; flags given with it override it")
    text = to_toml(run_file_values(cfg, command), header)
    return atomic_write(path, lambda f: f.write(text), mode="w")


def yaml_available() -> bool:
    try:
        import yaml  # noqa: F401  (optional: not a dependency of ecgfast)
    except ImportError:
        return False
    return True


def read_run_file(path) -> dict:
    """The settings of a run file: TOML (``.toml``), JSON (``.json``), or YAML (``.yaml``/``.yml``, only
    where PyYAML is installed); one flat table of settings. Errors name the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(f"--config {path}: unknown run-file type {suffix or '(no suffix)'}; expected .toml or "
                          f".json{' (or .yaml)' if yaml_available() else ''}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        from ecgfast.base.fs import os_error_message

        raise ConfigError(f"--config: {os_error_message(exc, path, 'read')}") from None
    try:
        if suffix == ".toml":
            import tomllib

            values = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            values = json.loads(raw)
        elif suffix in (".yaml", ".yml"):
            if not yaml_available():
                raise ConfigError(f"--config {path}: YAML run files need PyYAML (not installed); use .toml or .json")
            import yaml

            values = yaml.safe_load(raw)
    except ConfigError:
        raise
    except Exception as exc:  # the parsers' own errors (TOMLDecodeError, JSONDecodeError, YAMLError, Unicode)
        raise ConfigError(f"--config {path}: not a valid {suffix[1:].upper()} file: {exc}") from None
    if not isinstance(values, dict) or any(isinstance(v, dict) for v in values.values()):
        raise ConfigError(f"--config {path}: expected one flat table of settings (name = value)")
    return values


def run_from_file(cls, path, command: str | None = None, overrides: dict | None = None):
    """The config a run file ``path`` describes for ``command``, ``overrides`` (field -> value) winning;
    the file's command (``method``/``mode``) must be ``command``."""
    values = read_run_file(path)
    name = _command_field(cls)
    if name and command is not None and values.get(name, command) != command:
        raise ConfigError(f"--config {path}: a run file of {values[name]}, not {command}")
    values.pop(name, None)
    return cls.from_values({**values, **(overrides or {})}, command, where=f"--config {path}: ")


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
