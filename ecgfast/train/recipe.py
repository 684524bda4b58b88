"""Named training recipes: ``seed`` (the seed's, the default) and ``field`` (what the ECG SSL field uses).

A recipe is a set of values for the parts below; each part is also settable alone, and an
explicit setting (a flag, or a keyword of :func:`apply_recipe`) wins over the recipe's value.
:func:`apply_recipe` is the one place a recipe is resolved: the resolved values are what the
run uses, what its checkpoint's ``config`` records, and ``spec["recipe"]`` names the recipe.

==================  ===============  ====================================================
part (field)        ``seed``         ``field``
==================  ===============  ====================================================
crop_seconds        None (window)    2.5 s views of the record window; window-averaged
                                     evaluation (the mean over a record's crops)
resized_crop_min    None (off)       0.5: random-resized-crop keeps [0.5, 1] of the view
                                     (Mehari & Strodthoff 2022's RandomResizedCrop range)
time-out            temporal_dropout (the seed's augmentation, in both recipes)
optimizer           adam             adamw; lars from batch 1024 (pretraining)
weight_decay        0                adamw 1e-2 (PyTorch's AdamW default); lars 1e-6 (SimCLR)
lr                  1e-3             1e-3; lars 0.3 x batch / 256 (SimCLR's LARS rule)
schedule            constant         cosine (to 0 at the last step)
warmup_epochs       0                10 % of the epochs, at least 1 (none for 1 epoch)
probe               head             logistic (``--freeze-encoder`` runs: L2-tuned
                                     logistic regression on frozen embeddings)
layer_lr_decay      None             None (an option of fine-tuning, in neither recipe)
==================  ===============  ====================================================

Biases and normalisation parameters never get weight decay (nor LARS's adaptation).
"""
from __future__ import annotations

import dataclasses

from ecgfast.base.errors import ConfigError

RECIPES = ("seed", "field")
PROBES = ("head", "logistic")
LARS_FROM_BATCH = 1024
LARS_LR_PER_256 = 0.3
FIELD_CROP_SECONDS = 2.5
FIELD_RESIZED_CROP_MIN = 0.5
FIELD_WEIGHT_DECAY = {"adam": 0.0, "adamw": 1e-2, "lars": 1e-6}
SEED_LR = 1e-3
# The parts a recipe sets (``probe`` only on classifier configs); lr only where the recipe needs another.
PARTS = ("crop_seconds", "resized_crop_min", "optimizer", "weight_decay", "schedule", "warmup_epochs", "probe")
SEED_VALUES = {"crop_seconds": None, "resized_crop_min": None, "optimizer": "adam", "weight_decay": 0.0,
               "schedule": "constant", "warmup_epochs": 0, "probe": "head", "layer_lr_decay": None,
               "recipe": "seed"}


def check_recipe_name(name: str) -> str:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r}: unknown recipe; expected one of {', '.join(RECIPES)}")
    return name


def field_warmup_epochs(epochs: int) -> int:
    return 0 if epochs < 2 else max(1, round(0.1 * epochs))


def recipe_values(name: str, cfg, explicit: dict | None = None) -> dict:
    """The values recipe ``name`` gives ``cfg``'s parts (given its batch size and epochs, and the
    explicitly set parts, which decide e.g. the weight decay of an explicitly chosen optimiser)."""
    explicit = explicit or {}
    check_recipe_name(name)
    fields = {f.name for f in dataclasses.fields(cfg)}
    if name == "seed":
        values = {k: v for k, v in SEED_VALUES.items() if k in PARTS}
    else:
        optimizer = explicit.get("optimizer", "lars" if cfg.batch_size >= LARS_FROM_BATCH else "adamw")
        values = {"crop_seconds": FIELD_CROP_SECONDS, "resized_crop_min": FIELD_RESIZED_CROP_MIN,
                  "optimizer": optimizer, "weight_decay": FIELD_WEIGHT_DECAY[optimizer], "schedule": "cosine",
                  "warmup_epochs": field_warmup_epochs(cfg.epochs), "probe": "logistic"}
        if optimizer == "lars":
            values["lr"] = LARS_LR_PER_256 * cfg.batch_size / 256
    return {k: v for k, v in values.items() if k in fields}


def apply_recipe(cfg, name: str | None = None, **explicit):
    """``cfg`` with recipe ``name`` (default ``cfg.recipe``) resolved: the recipe's values for every
    part not in ``explicit``, the ``explicit`` ones as given. Returns a new config."""
    name = check_recipe_name(name or cfg.recipe)
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(explicit) - fields)
    if unknown:
        raise ConfigError(f"{type(cfg).__name__} has no setting(s) {', '.join(unknown)}")
    return dataclasses.replace(cfg, recipe=name, **{**recipe_values(name, cfg, explicit), **explicit})


def explicit_parts(args, names=PARTS + ("lr", "layer_lr_decay")) -> dict:
    """The recipe parts given on a command line: flags whose default is ``argparse.SUPPRESS`` (absent
    when not given); a part given as None counts as not given."""
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
