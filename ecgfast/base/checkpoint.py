"""Checkpoints: safe to load from any source, crash-safe to write, self-describing.

Format (``format_version`` 4; docs/checkpoints.md). A checkpoint is a dict that
holds only tensors, numbers, strings, booleans, None, lists, tuples and dicts,
so it loads with ``torch.load(weights_only=True)``: a crafted pickle is refused
without running any of its code. Keys:

- ``format`` = ``"ecgfast-checkpoint"``, ``format_version`` = 4, ``kind`` =
  ``"encoder"`` | ``"classifier"`` | ``"resume"``;
- ``encoder`` (kind encoder: the encoder's state dict, as DESIGN's
  ``{"encoder": state_dict}``) or ``classifier`` (``ECGClassifier`` state dict);
- ``spec``: the preprocessing the model was trained with and, from format 3, the
  encoder's name (``spec["encoder"]``; written by ``ecgfast.train.spec.preprocessing_spec``,
  read back by :func:`checkpoint_spec`);
- ``classes``, ``normalizer`` (also inside ``spec``), ``config`` (the run's
  settings), ``data`` (corpora and record counts), ``versions``, and for
  classifiers ``thresholds`` (per class, chosen on fold 9) and ``val_macro_auroc``.

Checkpoints of format 1 (no ``kind``) still load; their kind is inferred. Formats 1
and 2 name no encoder: they hold the seed's ``ecg1dcnn`` (:data:`UNNAMED_ENCODER`).
:func:`checkpoint_spec` is the one answer for every format: every command and loader reads a
checkpoint's spec through it (a format-1 file without ``config["sampling_rate"]`` is 100 Hz, 1000 samples,
whoever asks). This module imports nothing of ecgfast above ``base``: building models from a
checkpoint, and checking that its encoder is one this ecgfast knows, is ``ecgfast.models.pretrained``'s.

Trust on load: resume files carry ``checksum`` (``{"algorithm": "sha256", "digest": ...}``
over every tensor, number and string of the file but the checksum itself,
:func:`state_checksum`); a file whose contents no longer match it is refused as corrupt.
Files without the key (written before it existed) load unchecked. The weights of every
checkpoint (``encoder``, ``classifier``, ``model``) must be finite: a NaN or inf is refused
naming the file and the tensor, whatever command loads it.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ecgfast.base.errors import CheckpointError
from ecgfast.base.fs import atomic_write

FORMAT = "ecgfast-checkpoint"
FORMAT_VERSION = 4  # 4: optional spec keys task/classes/crop_seconds/recipe/memory_format, resume checksums
# 3: spec["encoder"] names the backbone (formats 1 and 2: the seed's ecg1dcnn). Every key added since
# format 3 is optional and read with the old behaviour as its default, so files of formats 1-3 load unchanged.
KINDS = ("encoder", "classifier", "resume")
# What formats 1 and 2 hold: they name no encoder and were written when the seed's was the only one. A fact of
# those files, not a default of today's runs (that is ecgfast.models.backbones.DEFAULT_ENCODER).
UNNAMED_ENCODER = "ecg1dcnn"
# The rate of a format-1 file whose config names none: the seed's DESIGN files ({"encoder": state_dict}, no
# config) were all trained on PTB-XL at 100 Hz; their window is then 10 s, 1000 samples.
UNNAMED_SAMPLING_RATE = 100
UNNAMED_WINDOW_SECONDS = 10  # format 1 without config["signal_length"]: 10 x the rate (PTB-XL's records)
CHECKSUM_KEY = "checksum"  # optional (resume files from format 4): see state_checksum
WEIGHT_KEYS = ("encoder", "classifier", "model")  # the state dicts whose values must be finite
_SAFE_SCALARS = (bool, int, float, str, bytes, type(None))


def _check_safe(obj: Any, where: str = "checkpoint") -> None:
    """Refuse to write anything that ``weights_only=True`` could not read back."""
    if isinstance(obj, _SAFE_SCALARS) or isinstance(obj, (torch.Tensor, torch.dtype, torch.Size)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_safe(k, where)
            _check_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_safe(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: a {type(obj).__name__} cannot go into a checkpoint "
                    "(only tensors, numbers, strings, lists and dicts load safely)")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: readers see the old file or the new one, never half.

    The object must hold only weights-only-loadable types (checked before writing).
    """
    _check_safe(obj)
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (temp file in the same folder, then rename)."""
    return atomic_write(path, lambda f: f.write(text), mode="w")


def _feed(h, obj: Any) -> None:
    """Hash ``obj`` with its structure: a type tag, then the value (tensors by dtype, shape and bytes)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for k, v in obj.items():  # insertion order: torch.load gives back the order saved
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)};".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, bytes):
        h.update(f"B{len(obj)};".encode() + obj)
    else:  # str, int, float, bool, None, torch.dtype, torch.Size: repr round-trips them exactly
        text = repr(obj).encode()
        h.update(f"S{type(obj).__name__}{len(text)};".encode() + text)


def state_checksum(ckpt: dict) -> str:
    """SHA-256 over every value of ``ckpt`` except its checksum (tensors by their bytes, in saved order)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY})
    return h.hexdigest()


def with_checksum(ckpt: dict) -> dict:
    """``ckpt`` with its :func:`state_checksum` under ``checksum`` (what ``load_checkpoint`` verifies)."""
    return {**ckpt, CHECKSUM_KEY: {"algorithm": "sha256", "digest": state_checksum(ckpt)}}


def verify_checksum(ckpt: dict, path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose contents differ from the checksum stored in it (none stored: nothing to check)."""
    stored = ckpt.get(CHECKSUM_KEY)
    if stored is None:
        return
    if not (isinstance(stored, dict) and stored.get("algorithm") == "sha256" and isinstance(stored.get("digest"), str)):
        raise CheckpointError(f"checkpoint {path} is corrupt: its checksum entry is malformed ({stored!r:.80})")
    if state_checksum(ckpt) != stored["digest"]:
        raise CheckpointError(f"checkpoint {path} is corrupt: its contents no longer match the checksum written "
                              "with it (damaged on disk or in a copy); use another copy, or start over without "
                              "--resume")


def _non_finite(t: torch.Tensor) -> int:
    """How many NaN/inf values ``t`` holds (0 for integer tensors). NumPy on the CPU: one pass, no thread
    pool (torch's first ``isfinite`` on a busy host cost ~0.3 s)."""
    import numpy as np

    if not (t.is_floating_point() or t.is_complex()):
        return 0
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()  # exact: every half value is a float32 value
    return int(t.numel() - np.count_nonzero(np.isfinite(t.numpy())))


def check_finite_weights(ckpt: dict, path: str | os.PathLike) -> None:
    """Refuse a checkpoint holding a NaN or infinite weight, naming the file and the first such tensor."""
    for key in WEIGHT_KEYS:
        state = ckpt.get(key)
        if not isinstance(state, dict):
            continue
        bad = [(name, t) for name, t in state.items() if isinstance(t, torch.Tensor) and _non_finite(t)]
        if bad:
            name, t = bad[0]
            count = _non_finite(t)
            more = f" (and {len(bad) - 1} more tensor(s))" if len(bad) > 1 else ""
            raise CheckpointError(f"checkpoint {path}: weight {key}.{name} holds {count} non-finite value(s) "
                                  f"(NaN or inf){more}: the run that wrote it diverged or the file is damaged; "
                                  "use an earlier checkpoint")


def _check_format(ckpt: dict, path) -> None:
    """Refuse another format's file, and a ``format_version`` newer than this ecgfast reads (none: format 1)."""
    fmt = ckpt.get("format")
    if fmt is not None and fmt != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {fmt!r} is not an ecgfast checkpoint")
    version = ckpt.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {version!r}; this ecgfast reads 1 to "
                              f"{FORMAT_VERSION} (upgrade ecgfast)")


def infer_kind(ckpt: dict) -> str | None:
    if ckpt.get("kind") in KINDS:
        return ckpt["kind"]
    if "classifier" in ckpt:
        return "classifier"
    if "model" in ckpt and "optimizer" in ckpt:
        return "resume"
    if "encoder" in ckpt:
        return "encoder"
    return None


_KIND_USE = {"encoder": "a pretraining run's output (--out of pretrain-simclr/byol)",
             "classifier": "a fine-tuning or supervised run's output (--out of finetune/supervised)",
             "resume": "a run's periodic OUT.resume.pt"}


def load_checkpoint(path: str | os.PathLike, required_keys: tuple[str, ...] = (), kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict safely (``weights_only=True``), with clear errors.

    The one reader of checkpoint files: every command and loader goes through it. Raises
    :class:`~ecgfast.base.errors.CheckpointError` when the file is missing, is
    not a torch file, holds code (a crafted pickle: refused, not run), does not
    match the checksum stored in it, is another format or a newer ``format_version``
    than this ecgfast reads, is no kind of ecgfast checkpoint (``kind=None``) or another
    ``kind`` than asked, lacks ``required_keys``, or holds a non-finite weight.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    from torch.torch_version import TorchVersion

    try:
        # TorchVersion (a str subclass) is what format-1 checkpoints stored as the torch version.
        with torch.serialization.safe_globals([TorchVersion]):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} holds Python objects other than tensors, numbers, strings, lists and dicts; "
            "it was refused without being run (loading it could execute code). Use a checkpoint "
            f"written by ecgfast, or re-save only its state dicts. ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # truncated, not a torch file, ...
        raise CheckpointError(f"checkpoint {path} could not be read ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}): is it a complete "
                              "ecgfast checkpoint, or is it truncated or damaged?") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected an ecgfast checkpoint dict")
    verify_checksum(ckpt, path)  # first: damage explains whatever else looks wrong
    _check_format(ckpt, path)
    found = infer_kind(ckpt)
    if kind is None and found is None:
        raise CheckpointError(f"checkpoint {path} is not an ecgfast checkpoint (no 'encoder' or 'classifier' "
                              f"weights; keys {sorted(map(str, ckpt))[:8]})")
    if kind is not None and found != kind:
        what = f"{'an' if found and found[0] in 'aeiou' else 'a'} {found} checkpoint" if found else \
            "not an ecgfast checkpoint"
        raise CheckpointError(f"checkpoint {path} is {what}, but this command needs {_KIND_USE[kind]}")
    missing = [k for k in required_keys if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the key(s) {missing}; it has {sorted(ckpt)}")
    check_finite_weights(ckpt, path)
    return ckpt


def recipe_of(ckpt: dict) -> str:
    """The recipe a checkpoint's model was trained with: ``spec["recipe"]``, ``seed`` where it names none."""
    spec = ckpt.get("spec")
    return str((spec.get("recipe") if isinstance(spec, dict) else None) or "seed")


def task_of(ckpt: dict) -> tuple[str, list[str]]:
    """(task, classes) a classifier checkpoint was trained on: ``spec["task"]`` and ``spec["classes"]``;
    a checkpoint that names none (written before ``--task``) is superdiagnostic with its ``classes``."""
    from ecgfast import CLASSES

    spec = ckpt.get("spec") if isinstance(ckpt.get("spec"), dict) else {}
    classes = spec.get("classes") or ckpt.get("classes") or list(CLASSES)
    return str(spec.get("task") or "superdiagnostic"), [str(c) for c in classes]


def declared_encoder(ckpt: dict) -> str:
    """The name of the encoder a checkpoint holds, as stored: ``spec["encoder"]``, or :data:`UNNAMED_ENCODER`
    for a checkpoint that names none (formats 1 and 2). Whether this ecgfast knows that backbone is
    ``ecgfast.models.pretrained.encoder_of``'s question (the registry lives in ``models``)."""
    spec = ckpt.get("spec")
    name = spec.get("encoder") if isinstance(spec, dict) else None
    return UNNAMED_ENCODER if name is None else str(name)


def checkpoint_header(kind: str) -> dict:
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind}


def checkpoint_normalizer(norm: Any, path: str | os.PathLike = "<checkpoint>") -> dict | None:
    """A stored normaliser in its canonical form (``{"mean": [...], "std": [...], "per_lead": bool}``), or
    None where none is stored (None, or a dict with neither mean nor std); one that is there but
    inconsistent (mean/std of other shapes, non-finite, std <= 0) is a ``CheckpointError``."""
    import numpy as np

    if norm is None or (isinstance(norm, dict) and "mean" not in norm and "std" not in norm):
        return None
    if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
        raise CheckpointError(f"checkpoint {path}: its normaliser {norm!r:.80} is not a mean/std dict")
    try:
        mean = np.asarray(norm["mean"], dtype=np.float64).reshape(-1)
        std = np.asarray(norm["std"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path}: normaliser mean/std are not numbers") from None
    if mean.shape != std.shape or mean.size == 0 or not np.all(np.isfinite(mean)) or not np.all(std > 0) \
            or not np.all(np.isfinite(std)):
        raise CheckpointError(f"checkpoint {path}: normaliser mean/std are inconsistent "
                              f"(shapes {mean.shape}/{std.shape}, std > 0 and finite required)")
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "per_lead": bool(norm.get("per_lead", mean.size > 1))}


def require_normalizer(spec: dict, path: str | os.PathLike = "<checkpoint>") -> dict:
    """``spec["normalizer"]`` (from :func:`checkpoint_spec`), or a ``CheckpointError`` where none is stored:
    whatever runs the model needs the input scaling it was trained with."""
    norm = spec.get("normalizer")
    if norm is None:
        raise CheckpointError(f"checkpoint {path}: no normaliser (mean/std) stored, so the model's input "
                              "scaling is unknown")
    return norm


def checkpoint_spec(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> dict:
    """The preprocessing spec of a checkpoint of any format: the one answer every command and loader uses.

    Formats 2-4: the stored ``spec`` (it must hold ``sampling_rate``, ``signal_length`` and ``normalizer``).
    Format 1 (no spec): derived from ``config`` as docs/checkpoints.md says: its ``sampling_rate`` (100 Hz,
    :data:`UNNAMED_SAMPLING_RATE`, where the file has none: the seed's ``{"encoder": state_dict}`` files),
    its ``signal_length`` (10 x the rate where absent), PTB-XL's 12 leads in mV, and the normaliser stored
    beside ``config`` or inside it.

    Always present in the answer: ``encoder`` (:func:`declared_encoder`: ``ecg1dcnn`` where none is named),
    ``recipe`` (:func:`recipe_of`: ``seed`` where none is named), ``units`` (mV where none), ``leads``;
    ``normalizer`` in canonical form, or None where the file stores none (:func:`require_normalizer`).
    Rates and lengths that are not positive, repeated leads, a per-lead normaliser of another length than
    the leads, or a ``crop_seconds`` outside the window are a ``CheckpointError`` naming ``path``.
    """
    from ecgfast import LEADS

    spec = ckpt.get("spec")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    if isinstance(spec, dict):
        missing = [k for k in ("sampling_rate", "signal_length", "normalizer") if k not in spec]
        if missing:
            raise CheckpointError(f"checkpoint {path}: its spec lacks {missing}")
        out = dict(spec)
    else:
        rate = config.get("sampling_rate", UNNAMED_SAMPLING_RATE)
        out = {"sampling_rate": rate, "signal_length": config.get("signal_length", UNNAMED_WINDOW_SECONDS * int(rate)),
               "leads": list(LEADS), "units": "mV",
               "normalizer": ckpt.get("normalizer") or config.get("normalizer")}
    out["encoder"] = declared_encoder(ckpt)
    out["recipe"] = recipe_of(ckpt)
    try:
        out["sampling_rate"] = int(out["sampling_rate"])
        out["signal_length"] = int(out["signal_length"])
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path}: sampling rate {out['sampling_rate']!r} and signal length "
                              f"{out['signal_length']!r} must be whole numbers") from None
    out["leads"] = [str(lead) for lead in (out.get("leads") or LEADS)]
    out["units"] = str(out.get("units") or "mV")
    out["normalizer"] = checkpoint_normalizer(out.get("normalizer"), path)
    norm = out["normalizer"]
    if norm is not None and norm["per_lead"] and len(norm["mean"]) != len(out["leads"]):
        raise CheckpointError(f"checkpoint {path}: a per-lead normaliser of {len(norm['mean'])} values for "
                              f"{len(out['leads'])} leads")
    if out["sampling_rate"] <= 0 or out["signal_length"] <= 0:
        raise CheckpointError(f"checkpoint {path}: sampling rate {out['sampling_rate']} and signal length "
                              f"{out['signal_length']} must be positive")
    if len({lead.strip().upper() for lead in out["leads"]}) != len(out["leads"]):
        raise CheckpointError(f"checkpoint {path}: repeated lead names {out['leads']}")
    crop = out.get("crop_seconds")  # optional: a model trained on crops of the window
    if crop is not None and not (isinstance(crop, (int, float)) and math.isfinite(crop)
                                 and 1 <= round(crop * out["sampling_rate"]) <= out["signal_length"]):
        raise CheckpointError(f"checkpoint {path}: crop_seconds {crop!r} is not a crop of its "
                              f"{out['signal_length']}-sample window at {out['sampling_rate']} Hz")
    return out


def check_matches_cache(ckpt: dict, path: str | os.PathLike, cache) -> dict:
    """Refuse a cache whose rate, length, leads or classes differ from what the model was trained on."""
    from ecgfast.base.errors import ConfigError

    spec = checkpoint_spec(ckpt, path)
    where = f"checkpoint {path} was trained on"
    if spec["sampling_rate"] != cache.sampling_rate:
        raise ConfigError(f"{where} {spec['sampling_rate']} Hz signals, but the cache {cache.path} holds "
                          f"{cache.sampling_rate} Hz: use --sampling-rate {spec['sampling_rate']} (and its cache)")
    if spec["signal_length"] > cache.signal_length:
        raise ConfigError(f"{where} {spec['signal_length']} samples per lead, but the cache {cache.path} has only "
                          f"{cache.signal_length}")
    if [x.upper() for x in spec["leads"]] != [x.upper() for x in cache.leads]:
        raise ConfigError(f"{where} leads {spec['leads']}, but the cache {cache.path} has {list(cache.leads)}")
    classes = ckpt.get("classes")
    if classes is not None and list(classes) != list(cache.classes):
        raise ConfigError(f"{where} classes {list(classes)}, but the cache {cache.path} has {list(cache.classes)}")
    return spec
