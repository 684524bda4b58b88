"""Crops of a record for models trained on crops (``--crop-seconds``).

A model pretrained (or fine-tuned) on views of L samples cut from the ``--signal-length`` record
window sees L samples at a time. Such a model records ``spec["crop_seconds"]`` in its checkpoints,
and everything that scores a record with it (the classifier's validation, ``ecgfast embed``,
``ecgfast predict``, exported graphs, ``load_encoder``/``load_classifier`` models) uses
**window averaging**: crops of L samples slide over the record with a stride of L // 2 (half
overlap), the last one aligned to the record's end so every sample is covered, and the record's
representation is the mean of the encoder's outputs over its crops. A classifier's logits are
then the head of that mean (the head is linear: the mean of the crops' logits); its probabilities
are their sigmoid. Training samples one random crop per record and step instead (``random_crops``).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def crop_samples(spec: dict) -> int | None:
    """Samples of the crops a checkpoint's model was trained on (``spec["crop_seconds"]`` at its rate), or
    None for a model trained on the whole window (the key is optional: older checkpoints lack it)."""
    seconds = spec.get("crop_seconds") if isinstance(spec, dict) else None
    if seconds is None:
        return None
    return int(round(float(seconds) * float(spec["sampling_rate"])))


def window_starts(length: int, crop: int) -> list[int]:
    """Starts of the crops of ``crop`` samples that cover ``length`` samples: stride crop // 2, the last
    crop ending at the end. One crop (start 0) when the record is no longer than a crop."""
    if length <= crop:
        return [0]
    stride = max(crop // 2, 1)
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] + crop < length:
        starts.append(length - crop)
    return starts


def window_average(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The mean over ``x``'s crops (``window_starts``) of ``fn(crop)``, all crops in one batched call;
    ``fn(x)`` itself when ``crop`` is None or ``x`` is no longer than one crop. x: (B, C, T)."""
    if crop is None or x.shape[-1] <= crop:
        return fn(x)
    starts = window_starts(x.shape[-1], crop)
    crops = torch.stack([x[..., s:s + crop] for s in starts], dim=1)  # (B, W, C, crop)
    B, W = crops.shape[:2]
    out = fn(crops.reshape(B * W, *crops.shape[2:]))
    return out.reshape(B, W, *out.shape[1:]).mean(dim=1)


def random_crops(x: torch.Tensor, crop: int, rng: np.random.Generator,
                 resized_min: float | None = None) -> torch.Tensor:
    """One crop of ``crop`` samples per record of ``x`` (B, C, T), at a start drawn uniformly in [0, T - crop];
    with ``resized_min``, a random-resized-crop as the augmentations' (a fraction f ~ U[resized_min, 1] of
    the crop's span at a uniform offset inside it, stretched back to ``crop`` samples)."""
    from ecgfast.augment.functional import crop as crop_at
    from ecgfast.augment.functional import resized_crop

    T, n = x.shape[-1], x.shape[0]
    if crop > T:
        raise ValueError(f"a crop of {crop} samples is longer than the record window ({T} samples)")
    start = rng.integers(0, T - crop + 1, size=n)
    if resized_min is None:
        return crop_at(x, torch.from_numpy(start).to(x.device), crop)
    frac = resized_min + (1.0 - resized_min) * rng.random(n)
    first = start + rng.random(n) * (1.0 - frac) * (crop - 1)
    return resized_crop(x, torch.from_numpy(first).to(x.device), torch.from_numpy(frac).to(x.device), crop)
