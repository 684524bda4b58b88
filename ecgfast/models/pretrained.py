"""Trained encoders and classifiers, ready to use anywhere (docs/using-encoders.md).

``load_encoder(path)`` and ``load_classifier(path)`` read an ecgfast checkpoint
(any format: its spec is ``ecgfast.base.checkpoint.checkpoint_spec``'s answer)
safely (``weights_only=True``, ``ecgfast.base.checkpoint.load_checkpoint``) and
return an ``nn.Module`` in eval mode that carries the preprocessing it was trained with:

- ``model.preprocess(x, sampling_rate, leads=None, units="mV")`` turns any
  (12, T) or (B, 12, T) numpy/torch ECG into what the network saw in training:
  leads put in the trained order by name, units converted to mV, resampled to
  the trained rate (polyphase, ``scipy.signal.resample_poly``), cut to the
  trained length (the first window, as training does; ``crop="center"`` for
  the middle one) or zero-padded at the end where ``pad=True``, then
  normalised with the training statistics;
- ``model.preprocess_windows(...)`` cuts a long record into every window of
  the trained length instead (the last one aligned to the record's end);
  for a model trained on crops (``spec["crop_seconds"]``, ``--crop-seconds``)
  the windows are crops of that length with a stride of half of it, and
  ``forward``/``embed`` of a longer input average over its crops (window
  averaging, ``ecgfast.models.windows``);
- ``model.embed(x_pre)`` -> (B, D), D = ``model.out_dim`` of the backbone named
  by ``spec["encoder"]`` (256 for the seed's ``ecg1dcnn``); a classifier's
  ``predict_proba(x_pre)`` and ``predict(x_pre)`` (labels at the checkpoint's
  per-class thresholds).

Whatever cannot be fixed (a missing lead, a record shorter than the window
when padding is refused, NaN samples, an unknown unit) raises ``DataError`` or
``ConfigError`` naming the problem; a checkpoint of the wrong kind, an
unreadable file or an unsafe pickle raises ``CheckpointError`` naming the file.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgfast.base.checkpoint import checkpoint_spec, declared_encoder, infer_kind, load_checkpoint, require_normalizer
from ecgfast.base.errors import CheckpointError, ConfigError, DataError
from ecgfast.data.loader import Normalizer
from ecgfast.models.backbones import build_encoder
from ecgfast.models.heads import ECGClassifier
from ecgfast.models.windows import crop_samples, window_average

__all__ = ["PretrainedClassifier", "PretrainedEncoder", "classifier_from_checkpoint", "encoder_of",
           "load_classifier", "load_classifier_and_checkpoint", "load_encoder", "load_model", "load_state",
           "model_spec", "UNITS"]

from ecgfast.data.leads import UNITS  # noqa: E402  (re-exported: the one units table)
from ecgfast.data.leads import lead_key as _lead_key  # noqa: E402  (the one lead-name table, aliases included)
from ecgfast.data.leads import unit_factor as _unit_factor  # noqa: E402

CROPS = ("first", "center")


# ---------------------------------------------------------------------------------------------
# Checkpoint -> encoder name, weights (the spec itself: ecgfast.base.checkpoint.checkpoint_spec)
# ---------------------------------------------------------------------------------------------

def encoder_of(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> str:
    """The name of the encoder a checkpoint holds (``spec["encoder"]``; ``ecg1dcnn`` for formats 1 and 2,
    which name none), checked against the registry: a name this ecgfast does not know (a newer release's
    backbone) is a ``CheckpointError`` listing the ones it knows."""
    from ecgfast.models.backbones import ENCODER_NAMES

    name = declared_encoder(ckpt)
    if name not in ENCODER_NAMES:
        raise CheckpointError(f"checkpoint {path}: its encoder {name!r} is not one this ecgfast knows "
                              f"({', '.join(ENCODER_NAMES)}); upgrade ecgfast")
    return name


def model_spec(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> dict:
    """:func:`~ecgfast.base.checkpoint.checkpoint_spec` of a checkpoint a model is built from: its encoder
    known here (:func:`encoder_of`), its units known, a normaliser stored, no lead named twice (by the lead
    table, aliases included)."""
    spec = checkpoint_spec(ckpt, path)
    encoder_of(ckpt, path)
    _unit_factor(spec["units"])
    require_normalizer(spec, path)
    if len({_lead_key(lead) for lead in spec["leads"]}) != len(spec["leads"]):  # aliases too (DI is I)
        raise CheckpointError(f"checkpoint {path}: repeated lead names {spec['leads']}")
    return spec


def load_state(module: nn.Module, state: Any, path, what: str, encoder: str) -> None:
    """Load ``state`` (a checkpoint's ``what``: ``encoder`` or ``classifier`` weights) into ``module``, strictly,
    after the one "does this state dict fit" check: a dict that is not all tensors, or whose keys or shapes
    differ from ``module``'s, is a ``CheckpointError`` naming the file, the backbone and the keys (and the
    registered backbone the weights do belong to, where another one)."""
    from ecgfast.models.backbones import state_mismatch

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: '{what}' is not a state dict of tensors")
    problem = state_mismatch(module.state_dict(), state, encoder, prefix="encoder." if what == "classifier" else "")
    if problem:
        raise CheckpointError(f"checkpoint {path}: its {what} weights do not fit the {encoder} encoder its spec "
                              f"names: {problem}")
    module.load_state_dict(state, strict=True)


def _check_expected(path, spec: dict, encoder: str | None) -> None:
    """``encoder`` (a name the caller expects, e.g. ``--encoder``) against the checkpoint's; None: any."""
    if encoder is None:
        return
    from ecgfast.models.backbones import check_encoder_name

    check_encoder_name(encoder)
    if encoder != spec["encoder"]:
        raise CheckpointError(f"checkpoint {path} holds a {spec['encoder']} encoder, not the {encoder} asked for "
                              f"(--encoder {encoder}); use --encoder {spec['encoder']}, or leave --encoder out to "
                              "take the checkpoint's")


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------

def _as_batch(x, where: str) -> np.ndarray:
    """(12, T) or (B, 12, T) numpy/torch -> float64 numpy (B, C, T)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{where}: signals of dtype {x.dtype}, expected numbers")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise DataError(f"{where}: signals of shape {tuple(x.shape)}, expected (leads, T) or (B, leads, T)")
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise DataError(f"{where}: empty signals of shape {tuple(x.shape)}")
    return x.astype(np.float64, copy=False)


class Preprocessing:
    """The input transform of a trained model: from any ECG to the trained rate, length, leads, units, scale."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.sampling_rate = int(spec["sampling_rate"])
        self.signal_length = int(spec["signal_length"])
        # The unit of inference: the crop a model trained on crops saw (half-overlapping windows), else the window.
        crop = crop_samples(spec)
        self.window_length = self.signal_length if crop is None else crop
        self.window_stride = self.signal_length if crop is None else max(crop // 2, 1)
        self.crop_length = crop
        self.leads = list(spec["leads"])
        self.unit_factor = _unit_factor(spec.get("units", "mV"))  # trained units per mV is 1 / this
        self.normalizer = Normalizer.from_state_dict(spec["normalizer"])  # the training's, as trained
        self.per_lead = self.normalizer.per_lead
        self.mean, self.std = self.normalizer.stats()  # float32 on the CPU, shaped to broadcast over (B, C, T)

    # -- pieces -----------------------------------------------------------------------------
    def lead_index(self, leads: Sequence[str] | None, n_channels: int, where: str = "input") -> list[int]:
        """Indices into the input's channels that give the trained lead order."""
        if leads is None:
            if n_channels != len(self.leads):
                raise DataError(f"{where}: {n_channels} leads, the model needs {len(self.leads)} "
                                f"({', '.join(self.leads)}); pass leads=[...] naming the input's leads")
            return list(range(n_channels))
        names = [_lead_key(n) for n in leads]
        if len(names) != n_channels:
            raise DataError(f"{where}: {len(names)} lead names given for {n_channels} channels")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise DataError(f"{where}: lead name(s) {dup} appear more than once")
        pos = {n: i for i, n in enumerate(names)}
        missing = [lead for lead in self.leads if _lead_key(lead) not in pos]
        if missing:
            raise DataError(f"{where}: lead(s) {', '.join(missing)} missing (has {', '.join(leads)}); the model "
                            f"needs {', '.join(self.leads)}")
        return [pos[_lead_key(lead)] for lead in self.leads]

    def resample(self, x: np.ndarray, sampling_rate, where: str = "input") -> np.ndarray:
        """Polyphase resampling (float64) from ``sampling_rate`` to the trained rate along the last axis."""
        try:
            rate = float(sampling_rate)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: sampling rate {sampling_rate!r} is not a number") from None
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"{where}: sampling rate {sampling_rate!r} must be a positive number of Hz")
        ratio = Fraction(self.sampling_rate) / Fraction(rate).limit_denominator(1000)
        if ratio == 1:
            return x
        up, down = ratio.numerator, ratio.denominator
        if up > 1000 or down > 1000:
            raise ConfigError(f"{where}: cannot resample {rate:g} Hz to {self.sampling_rate} Hz by a small ratio "
                              f"({up}/{down})")
        from scipy.signal import resample_poly

        return resample_poly(x, up, down, axis=-1)

    def to_model_units(self, x: np.ndarray, units: str) -> np.ndarray:
        factor = _unit_factor(units) / self.unit_factor
        return x if factor == 1.0 else x * factor

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std in float32: the training's ``Normalizer`` itself."""
        return self.normalizer(x)

    def _common(self, x, sampling_rate, leads, units, where, ids=None) -> np.ndarray:
        a = _as_batch(x, where)
        if sampling_rate is None:
            raise ConfigError(f"{where}: the sampling rate of the input is required (the model runs at "
                              f"{self.sampling_rate} Hz)")
        idx = self.lead_index(leads, a.shape[1], where)
        if idx != list(range(a.shape[1])):
            a = a[:, idx]  # the trained leads, in the trained order (extra leads dropped)
        if not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0]
            rec = f"record {ids[bad[0]]}" if ids is not None else f"record {bad[0]}"
            raise DataError(f"{where}: NaN or infinite samples (first at {rec}, lead {self.leads[bad[1]]}, "
                            f"sample {bad[2]}); fill or drop them first")
        a = self.to_model_units(a, units)
        return self.resample(a, sampling_rate, where)

    def _fit_length(self, a: np.ndarray, crop: str, pad: bool, where: str, rate,
                    length: int | None = None) -> np.ndarray:
        L, T = length or self.signal_length, a.shape[-1]
        if T > L:
            if crop not in CROPS:
                raise ConfigError(f"crop {crop!r}: expected one of {', '.join(CROPS)}")
            start = 0 if crop == "first" else (T - L) // 2
            return a[..., start:start + L]
        if T < L:
            if not pad:
                raise DataError(f"{where}: {T} samples at {self.sampling_rate} Hz after resampling "
                                f"({T / self.sampling_rate:g} s), shorter than the model's window of {L} "
                                f"({L / self.sampling_rate:g} s); pass pad=True (--pad) to zero-pad it")
            return np.concatenate([a, np.zeros(a.shape[:-1] + (L - T,), a.dtype)], axis=-1)
        return a

    # -- public ------------------------------------------------------------------------------
    def __call__(self, x, sampling_rate, leads=None, units: str = "mV", *, crop: str = "first", pad: bool = False,
                 where: str = "input") -> torch.Tensor:
        a = self._common(x, sampling_rate, leads, units, where)
        a = self._fit_length(a, crop, pad, where, sampling_rate)
        return self.normalize(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))

    def windows(self, x, sampling_rate, leads=None, units: str = "mV", *, pad: bool = False,
                where: str = "input", ids=None) -> torch.Tensor:
        """(B, W, C, L): every window of the trained length, hop = length, the last one ending at the record's end
        (for a model trained on crops: crops of its crop length, hop = half of it)."""
        a = self._common(x, sampling_rate, leads, units, where, ids)
        L, T = self.window_length, a.shape[-1]
        if T <= L:
            a = self._fit_length(a, "first", pad, where, sampling_rate, length=L)[:, None]
        else:
            starts = list(range(0, T - L + 1, self.window_stride))
            if starts[-1] + L < T:
                starts.append(T - L)
            a = np.stack([a[..., s:s + L] for s in starts], axis=1)
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        B, W = t.shape[:2]
        return self.normalize(t.reshape(B * W, *t.shape[2:])).reshape(t.shape)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

class _Pretrained(nn.Module):
    kind = "model"

    def _attach(self, spec: dict, classes, meta: dict) -> None:
        self.spec = spec
        self.classes = list(classes) if classes is not None else None
        self.meta = meta  # config, data, versions, metrics, path: what the checkpoint says about itself
        self._pre = Preprocessing(spec)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def normalizer(self) -> Normalizer:
        """The training run's ``Normalizer`` (what ``preprocess`` applies last)."""
        return self._pre.normalizer

    def _on_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` if it is on this model's device; else a clear error naming both (not a kernel's)."""
        if isinstance(x, torch.Tensor) and x.device != self.device:
            raise ValueError(f"input on {x.device} but the {self.kind} is on {self.device}: move one, e.g. "
                             f"x.to({str(self.device)!r}) or model.to({str(x.device)!r}) "
                             "(model.preprocess(...) puts its output on the model's device)")
        return x

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder on preprocessed input; for a model trained on crops, the mean over x's crops."""
        return window_average(self.encoder, self._on_device(x), self._pre.crop_length)

    def preprocess(self, x, sampling_rate, leads: Sequence[str] | None = None, units: str = "mV", *,
                   crop: str = "first", pad: bool = False) -> torch.Tensor:
        """Any (12, T) or (B, 12, T) ECG -> the (B, 12, L) float32 input the model was trained on, on its device.

        ``leads``: the input's lead names in channel order (case-insensitive;
        None: already in ``spec["leads"]`` order); extra leads are dropped, a
        missing one is a ``DataError``. ``units``: V, mV or uV. Longer records
        are cut to the first window (``crop="first"``, as training does) or the
        middle one (``crop="center"``); shorter ones are refused unless
        ``pad=True`` (zeros, i.e. 0 mV, appended at the end).
        """
        return self._pre(x, sampling_rate, leads, units, crop=crop, pad=pad).to(self.device)

    def preprocess_windows(self, x, sampling_rate, leads: Sequence[str] | None = None, units: str = "mV", *,
                           pad: bool = False) -> torch.Tensor:
        """Like ``preprocess`` but (B, W, 12, L): every window of a long record (see ``Preprocessing.windows``)."""
        return self._pre.windows(x, sampling_rate, leads, units, pad=pad).to(self.device)

    def extra_repr(self) -> str:
        s = self.spec
        return (f"kind={self.kind}, encoder={s.get('encoder')}, sampling_rate={s['sampling_rate']}, "
                f"signal_length={s['signal_length']}, leads={len(s['leads'])}, classes={self.classes}")


class PretrainedEncoder(_Pretrained):
    """A trained encoder (the backbone ``spec["encoder"]``) with its preprocessing: ``forward``/``embed``
    map (B, 12, L) to (B, ``out_dim``), 256 for the seed's ``ecg1dcnn``."""

    kind = "encoder"

    def __init__(self, spec: dict, classes=None, meta: dict | None = None):
        super().__init__()
        self.encoder = build_encoder(spec.get("encoder", "ecg1dcnn"), in_ch=len(spec["leads"]))
        self._attach(spec, classes, meta or {})

    @property
    def out_dim(self) -> int:
        return self.encoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representations (B, out_dim) of preprocessed input (no gradient)."""
        return self._encode(x)


class PretrainedClassifier(ECGClassifier, _Pretrained):
    """A trained classifier, an ``ECGClassifier`` (encoder + Linear(out_dim, C)), with preprocessing, classes
    and decision thresholds.

    ``forward`` gives logits; ``predict_proba`` sigmoid probabilities; ``predict``
    the 0/1 labels at ``thresholds`` (per class, chosen on fold 9; 0.5 where the
    checkpoint has none). It is the training's ``ECGClassifier`` (its modules and
    state-dict keys, ``encoder.*`` and ``head.*``), with window averaging for a
    model trained on crops.
    """

    kind = "classifier"

    def __init__(self, spec: dict, classes: Sequence[str], thresholds=None, meta: dict | None = None):
        ECGClassifier.__init__(self, build_encoder(spec.get("encoder", "ecg1dcnn"), in_ch=len(spec["leads"])),
                               num_classes=len(classes))
        self._attach(spec, classes, meta or {})
        t = [0.5] * len(classes) if thresholds is None else [float(v) for v in thresholds]
        self.register_buffer("_thresholds", torch.tensor(t, dtype=torch.float32), persistent=False)

    @property
    def thresholds(self) -> list[float]:
        return self._thresholds.tolist()

    @property
    def out_dim(self) -> int:
        return self.encoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._encode(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities (B, C) of preprocessed input."""
        return torch.sigmoid(self.forward(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """0/1 labels (B, C): probability >= the class's threshold."""
        return (self.predict_proba(x) >= self._thresholds).to(torch.int64)

    def as_encoder(self) -> PretrainedEncoder:
        """This classifier's encoder as a ``PretrainedEncoder`` (shares the weights)."""
        enc = PretrainedEncoder(self.spec, self.classes, self.meta)
        enc.encoder = self.encoder
        return enc.eval()


def _meta(ckpt: dict, path, kind: str) -> dict:
    keys = ("config", "data", "versions", "metrics", "wall_time_s", "device", "format_version", "val_macro_auroc")
    meta = {k: ckpt[k] for k in keys if k in ckpt}
    meta.setdefault("format_version", 1)
    meta["path"] = str(path)
    meta["kind"] = kind
    return meta


def _device(device) -> torch.device:
    from ecgfast.base.runtime import resolve_device

    return resolve_device(device)


def classifier_from_checkpoint(ckpt: dict, path, encoder: str | None = None) -> PretrainedClassifier:
    """The ``PretrainedClassifier`` of a loaded classifier checkpoint dict (on the CPU, in train mode): the one
    place a classifier is built from a checkpoint (``load_classifier``, ``load_encoder`` of a classifier file,
    ``ecgfast evaluate``). ``encoder``: as for :func:`load_encoder`."""
    state = ckpt.get("classifier")
    if not isinstance(state, dict) or "head.weight" not in state:
        raise CheckpointError(f"checkpoint {path}: no classifier weights (head.weight)")
    n_classes = int(state["head.weight"].shape[0])
    classes = ckpt.get("classes") or (ckpt.get("config") or {}).get("classes")
    if classes is None:
        from ecgfast import CLASSES

        classes = list(CLASSES) if n_classes == len(CLASSES) else [f"class{i}" for i in range(n_classes)]
    classes = [str(c) for c in classes]
    if len(classes) != n_classes:
        raise CheckpointError(f"checkpoint {path}: {len(classes)} class names for a head of {n_classes} outputs")
    thresholds = ckpt.get("thresholds")
    if thresholds is not None:
        thresholds = [float(t) for t in (thresholds.tolist() if isinstance(thresholds, torch.Tensor) else thresholds)]
        if len(thresholds) != n_classes or not all(0 <= t <= 1 for t in thresholds):
            raise CheckpointError(f"checkpoint {path}: thresholds {thresholds} do not give one value in [0, 1] "
                                  f"per class ({n_classes})")
    spec = model_spec(ckpt, path)
    _check_expected(path, spec, encoder)
    model = PretrainedClassifier(spec, classes, thresholds, _meta(ckpt, path, "classifier"))
    load_state(model, state, path, "classifier", spec["encoder"])
    return model


def _kind_of(ckpt: dict) -> str:
    return infer_kind(ckpt)  # load_checkpoint(kind=None) has refused a checkpoint of no kind


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu",
                 encoder: str | None = None) -> PretrainedEncoder:
    """A trained encoder, in eval mode on ``device``, with its preprocessing (``model.preprocess``).

    Takes an encoder checkpoint (pretraining output) or a classifier checkpoint,
    whose (fine-tuned) encoder it returns; a resume checkpoint or anything else
    raises ``CheckpointError`` naming the file. The backbone is the one the
    checkpoint names (``spec["encoder"]``); ``encoder`` (a name) asserts it: a
    checkpoint of another backbone raises ``CheckpointError`` naming both.
    """
    dev = _device(device)
    ckpt = load_checkpoint(path)
    kind = _kind_of(ckpt)
    if kind == "classifier":
        return classifier_from_checkpoint(ckpt, path, encoder).as_encoder().to(dev).eval()
    if kind != "encoder":
        raise CheckpointError(f"checkpoint {path} is a {kind} checkpoint; load_encoder needs a pretraining run's "
                              "output (--out of pretrain-simclr/byol) or a classifier checkpoint")
    spec = model_spec(ckpt, path)
    _check_expected(path, spec, encoder)
    classes = ckpt.get("classes") or (ckpt.get("config") or {}).get("classes")
    model = PretrainedEncoder(spec, classes, _meta(ckpt, path, "encoder"))
    load_state(model.encoder, ckpt["encoder"], path, "encoder", spec["encoder"])
    return model.to(dev).eval()


def load_classifier_and_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                                   encoder: str | None = None) -> tuple[PretrainedClassifier, dict]:
    """(``load_classifier(path, device, encoder)``, the checkpoint dict it was built from)."""
    dev = _device(device)
    ckpt = load_checkpoint(path)
    kind = _kind_of(ckpt)
    if kind != "classifier":
        hint = (" (an encoder has no classification head: fine-tune it with `ecgfast finetune`, or use "
                "load_encoder / `ecgfast embed`)" if kind == "encoder" else "")
        raise CheckpointError(f"checkpoint {path} is a{'n' if kind[0] in 'aeiou' else ''} {kind} checkpoint, "
                              f"not a classifier{hint}")
    return classifier_from_checkpoint(ckpt, path, encoder).to(dev).eval(), ckpt


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu",
                    encoder: str | None = None) -> PretrainedClassifier:
    """A trained classifier, in eval mode on ``device``, with preprocessing, ``classes`` and ``thresholds``.

    An encoder checkpoint (no head) raises ``CheckpointError``: fine-tune it first
    (``ecgfast finetune``). ``encoder``: as for ``load_encoder``.
    """
    return load_classifier_and_checkpoint(path, device, encoder)[0]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", encoder: str | None = None):
    """Whatever the checkpoint holds: a ``PretrainedClassifier`` or a ``PretrainedEncoder``."""
    kind = _kind_of(load_checkpoint(path))
    load = load_classifier if kind == "classifier" else load_encoder
    return load(path, device, encoder)
