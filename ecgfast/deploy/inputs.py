"""Windowed inference over an ECG source, for ``ecgfast embed`` / ``predict``.

Where ECGs come from (a cache, a PTB-XL folder, WFDB records or a list of them, a ``.npy``
array, a corpus manifest) is the data layer's: ``ecgfast.data.source`` (the ``ECGSource``
protocol and ``open_input``), re-exported here. :func:`embed_records` runs a model over any
source: every record is cut into windows of the trained length (see
``Preprocessing.windows``), the windows go through the encoder in batches, and a record's
representation is the mean over its windows.
"""
from __future__ import annotations

import numpy as np
import torch

from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data.source import (  # noqa: F401
    ArraySource,
    CacheSource,
    Chunk,
    CorpusSource,
    ECGSource,
    PTBXLFolderSource,
    RecordListSource,
    RecordSource,
    open_input,
)
from ecgfast.data.source import read_channels as read_wfdb  # noqa: F401  (its name here before)

InputSource = RecordSource  # the name this module gave it before the protocol moved to ecgfast.data.source
NpySource = ArraySource

__all__ = ["Chunk", "ECGSource", "InputSource", "embed_records", "open_input", "read_wfdb"]


# ---------------------------------------------------------------------------------------------
# Windowed inference over a source
# ---------------------------------------------------------------------------------------------

def _window_batches(model, source: ECGSource, batch_size: int, pad: bool, ids: list, counts: list):
    pre = model._pre
    buf: list[torch.Tensor] = []
    n_buf = 0
    for chunk in source.chunks(batch_size):
        x = np.asarray(chunk.signals)
        where = (f"{source.description}: record {chunk.ids[0]}" if len(chunk.ids) == 1
                 else f"{source.description} (records {chunk.ids[0]} to {chunk.ids[-1]})")
        w = pre.windows(x, chunk.sampling_rate, chunk.leads, chunk.units, pad=pad, where=where, ids=chunk.ids)
        n, W = w.shape[:2]
        ids.extend(chunk.ids)
        counts.extend([W] * n)
        buf.append(w.reshape(n * W, *w.shape[2:]))
        n_buf += n * W
        while n_buf >= batch_size:
            flat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield flat[:batch_size]
            rest = flat[batch_size:]
            buf, n_buf = ([rest] if rest.shape[0] else []), rest.shape[0]
    if n_buf:
        yield torch.cat(buf) if len(buf) > 1 else buf[0]


def embed_records(model, source: ECGSource, *, device="cpu", batch_size: int = 256, pad: bool = False,
                  progress: bool = False, precision: str = "fp32",
                  desc: str = "embedding") -> tuple[list[str], torch.Tensor]:
    """``(ids, embeddings (N, D) float32)``: one row per record, the mean over the record's windows (D: the
    backbone's width, 256 for ecg1dcnn)."""
    from ecgfast.models.inference import inference_loop

    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    ids: list[str] = []
    counts: list[int] = []
    model = model.to(device).eval()
    feats = inference_loop(model.encoder, _window_batches(model, source, batch_size, pad, ids, counts),
                           device=device, precision=precision, progress=progress, desc=desc,
                           unit="window", count=len)
    if not ids:
        raise DataError(f"{source.description}: no records")
    if all(c == 1 for c in counts):
        return ids, feats
    if len(set(counts)) == 1:
        return ids, feats.view(len(ids), counts[0], -1).mean(dim=1)
    return ids, torch.stack([part.mean(dim=0) for part in torch.split(feats, counts)])
