"""Inference with trained models, no grad: the one batched loop over any batches (``inference_loop``), and the
one loop over a cache (``forward_cache``: probabilities of a classifier, embeddings of an encoder).

``inference_loop(fn, batches, device=...)`` runs ``fn`` on each batch moved to
``device`` under ``torch.inference_mode()``, in full precision unless asked
(autocast off by default: bf16/fp16 results depend on the kernel chosen, fp32
ones are bitwise repeatable on the same device and build), with a tqdm bar, and
returns the outputs concatenated as float32 on the CPU. On CUDA it asks cuDNN
for deterministic kernels for the duration of the loop.

It lives in ``models`` because training (fold-9 scoring, probes), evaluation and deployment (embed, predict)
all use it, and it needs nothing above models.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.base.runtime import autocast as _autocast
from ecgfast.base.runtime import resolve_device

__all__ = ["batches_of", "embed", "forward_cache", "inference_loop", "predict"]

_FLUSH_BYTES = 64 << 20  # device outputs held before one copy back


def batches_of(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``x`` along dim 0 (views, no copy)."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size]


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device):
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def inference_loop(fn: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, *,
                   device: str | torch.device = "cpu", precision: str = "fp32", progress: bool = False,
                   desc: str | None = None, total: int | None = None, unit: str = "batch",
                   count: Callable[[object], int] | None = None, non_blocking: bool = False) -> torch.Tensor:
    """``torch.cat([fn(b.to(device)) for b in batches])`` as float32 on the CPU, no grad, with a progress bar.

    ``batches`` yields tensors, or tuples / named tuples (``ECGBatchLoader``'s
    ``Batch``) whose first item is the input. ``total``/``unit``/``count`` set
    the bar (e.g. ``unit="rec"``, ``count=len`` to count records rather than
    batches). ``fn`` is called under ``torch.inference_mode()``; put the model
    in eval mode first.
    """
    from ecgfast.base.progress import progress_bar

    dev = resolve_device(device)
    outs: list[torch.Tensor] = []  # on the CPU
    pending: list[torch.Tensor] = []  # on the device, not yet copied back
    pending_bytes = 0

    def flush():
        nonlocal pending_bytes
        if pending:
            outs.append(torch.cat(pending).cpu())
            pending.clear()
            pending_bytes = 0

    bar = progress_bar(total=total, desc=desc, unit=unit, enabled=progress, dynamic_ncols=True)
    try:
        with torch.inference_mode(), _deterministic_cudnn(dev):
            for batch in batches:
                x = batch if isinstance(batch, torch.Tensor) else batch[0]
                with _autocast(precision, dev):
                    y = fn(x.to(dev, non_blocking=non_blocking)).float()
                # On a GPU the outputs stay there and come back in large pieces: a copy to the host
                # per batch would make the host wait for every batch (one sync each).
                if y.device.type == "cpu":
                    outs.append(y)
                else:
                    pending.append(y)
                    pending_bytes += y.numel() * y.element_size()
                    if pending_bytes >= _FLUSH_BYTES:
                        flush()
                bar.update(count(x) if count else 1)
            flush()
    finally:
        bar.close()
    if not outs:
        return torch.zeros(0)
    return torch.cat(outs)


def forward_cache(fn: Callable[[torch.Tensor], torch.Tensor], cache, indices, normalizer, signal_length: int,
                  device: torch.device | str = "cpu", precision: str = "fp32", batch_size: int = 256,
                  perturb: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = False,
                  loader=None, crop_length: int | None = None) -> torch.Tensor:
    """``fn(normalise(x[..., :signal_length]))`` over ``indices`` of the cache, in order, as float32 on the CPU.

    ``crop_length`` (a model trained on crops): the mean of ``fn`` over the window's crops instead
    (window averaging, ``ecgfast.models.windows``).

    Batches come from ``ECGBatchLoader`` on ``device`` and go through the one inference loop
    (:func:`inference_loop`). ``perturb`` (optional) changes each batch in mV
    before normalisation (robustness checks). ``loader``: an unshuffled ``ECGBatchLoader`` over
    ``indices`` on ``device`` to reuse (a training loop scoring fold 9 every epoch keeps its
    GPU-resident split instead of uploading it again).
    """
    from ecgfast.data import ECGBatchLoader
    from ecgfast.models.windows import window_average

    device = torch.device(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x[..., :signal_length]
        x = normalizer(perturb(x) if perturb is not None else x)
        return fn(x) if crop_length is None else window_average(fn, x, crop_length)

    if loader is None:
        loader = ECGBatchLoader(cache, indices, batch_size, shuffle=False, device=device)
    elif loader.shuffle or not np.array_equal(loader.indices, np.asarray(indices)) or loader.device != device:
        raise ValueError("forward_cache: the loader must be unshuffled, over these indices, on this device")
    out = inference_loop(run, loader, device=device, precision=precision, progress=progress)
    return out.clone()  # a normal tensor: callers may train on it (inference tensors can't enter autograd)


def predict(model, cache, indices, normalizer, signal_length: int, precision: str = "fp32", batch_size: int = 256,
            device: torch.device | str | None = None, loader=None, crop_length: int | None = None) -> np.ndarray:
    """Sigmoid probabilities (n, n_classes) of a classifier on ``indices`` of the cache
    (``loader``, ``crop_length``: see :func:`forward_cache`)."""
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.eval()
    logits = forward_cache(model, cache, indices, normalizer, signal_length, device, precision, batch_size,
                           loader=loader, crop_length=crop_length)
    return torch.sigmoid(logits).numpy()


def embed(encoder, cache, indices, normalizer, signal_length: int, precision: str = "fp32", batch_size: int = 256,
          device: torch.device | str | None = None, crop_length: int | None = None) -> torch.Tensor:
    """Encoder representations (n, D) of ``indices`` (on the CPU); D = ``encoder.out_channels``
    (``crop_length``: see :func:`forward_cache`)."""
    device = next(encoder.parameters()).device if device is None else torch.device(device)
    encoder.eval()
    return forward_cache(encoder, cache, indices, normalizer, signal_length, device, precision, batch_size,
                         crop_length=crop_length)
