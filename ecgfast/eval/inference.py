"""The one batched inference loop over a cache: probabilities of a classifier, embeddings of an encoder."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch



def forward_cache(fn: Callable[[torch.Tensor], torch.Tensor], cache, indices, normalizer, signal_length: int,
                  device: torch.device | str = "cpu", precision: str = "fp32", batch_size: int = 256,
                  perturb: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = False,
                  loader=None, crop_length: int | None = None) -> torch.Tensor:
    """``fn(normalise(x[..., :signal_length]))`` over ``indices`` of the cache, in order, as float32 on the CPU.

    ``crop_length`` (a model trained on crops): the mean of ``fn`` over the window's crops instead
    (window averaging, ``ecgfast.models.windows``).

    Batches come from ``ECGBatchLoader`` on ``device`` and go through the one inference loop
    (``ecgfast.deploy._loop.inference_loop``). ``perturb`` (optional) changes each batch in mV
    before normalisation (robustness checks). ``loader``: an unshuffled ``ECGBatchLoader`` over
    ``indices`` on ``device`` to reuse (a training loop scoring fold 9 every epoch keeps its
    GPU-resident split instead of uploading it again).
    """
    from ecgfast.data import ECGBatchLoader
    from ecgfast.deploy._loop import inference_loop
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
