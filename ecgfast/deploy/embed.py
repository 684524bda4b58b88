"""``ecgfast embed``: one representation per record from a trained encoder (256-d for the seed's).

    ecgfast embed --checkpoint ENC.pt --input SRC --out emb.h5 [--device auto|cpu|cuda]
                  [--batch-size 256] [--sampling-rate HZ] [--leads I II ...] [--units mV] [--pad]
                  [--encoder NAME]

SRC is an HDF5 cache, a PTB-XL folder, a text file of WFDB record paths (or
several record paths), a ``.npy`` array (N, 12, T) with ``--sampling-rate``, or
a corpus manifest (``.json``) where ``ecgfast.data.open_corpus`` exists. A
record longer than the model's window is cut into windows (hop = window, the
last one ending at the record's end) whose representations are averaged.

``--out`` ending in ``.h5``/``.hdf5`` writes datasets ``embeddings`` (float32
(N, D), D the encoder's width: 256 for ecg1dcnn) and ``ids`` (utf-8 strings)
with the checkpoint, spec and input as attributes; ``.npy`` writes the array and ``<stem>.ids.csv`` beside it. Files
are written atomically and are bitwise the same for the same input on the same
device and build. A classifier checkpoint is accepted: its fine-tuned encoder
embeds. The backbone is the checkpoint's; ``--encoder NAME`` asserts it (a
checkpoint of another backbone is refused, naming both).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ecgfast.base.errors import ConfigError

OUT_SUFFIXES = (".h5", ".hdf5", ".npy")


def in_memory_format(model, memory_format: str, device):
    """``model`` (a loaded encoder or classifier, run in fp32) in ``memory_format`` resolved for ``device``."""
    from ecgfast.models.layout import resolve_memory_format, set_memory_format

    return set_memory_format(model, resolve_memory_format(memory_format, device, "fp32"))


def output_kind(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise ConfigError(f"--out {out}: expected a .h5, .hdf5 or .npy file")
    return "npy" if suffix == ".npy" else "h5"


def ids_path(out: Path) -> Path:
    """``emb.npy`` -> ``emb.ids.csv``."""
    return out.with_name(out.stem + ".ids.csv")


def _ids_csv(ids) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id"])
    w.writerows([i] for i in ids)
    return buf.getvalue()


def write_embeddings(out: str | Path, ids, embeddings, attrs: dict | None = None) -> list[Path]:
    """Write ``embeddings`` (N, D) and ``ids`` to ``out`` (.h5/.hdf5 or .npy + .ids.csv), atomically."""
    from ecgfast.base.fs import atomic_write

    out = Path(out)
    kind = output_kind(out)
    emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    ids = [str(i) for i in ids]
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise ValueError(f"embeddings {emb.shape} and {len(ids)} ids disagree")
    if kind == "npy":
        written = [atomic_write(out, lambda f: np.save(f, emb, allow_pickle=False))]
        written.append(atomic_write(ids_path(out), lambda f: f.write(_ids_csv(ids)), mode="w"))
        return written

    import h5py

    def write(f):
        # track_times=False and a fixed layout: the same data give the same bytes.
        with h5py.File(f, "w", libver="earliest", track_order=False) as h5:
            h5.create_dataset("embeddings", data=emb, track_times=False)
            h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype("utf-8"),
                              track_times=False)
            for k, v in (attrs or {}).items():
                h5.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)

    return [atomic_write(out, write, mode="w+b")]  # h5py reads back what it writes


def run_embed(checkpoint, inputs, out, *, device="auto", batch_size=256, sampling_rate=None, leads=None,
              units="mV", pad=False, progress=True, encoder=None, memory_format="auto") -> tuple[list[Path], int]:
    """Embed every record of ``inputs`` with the encoder of ``checkpoint`` and write ``out``; returns (files, N).

    ``encoder`` (a backbone name) asserts the checkpoint's backbone; None takes whichever it holds."""
    files, n, _ = _run_embed(checkpoint, inputs, out, device=device, batch_size=batch_size,
                             sampling_rate=sampling_rate, leads=leads, units=units, pad=pad, progress=progress,
                             encoder=encoder, memory_format=memory_format)
    return files, n


def _run_embed(checkpoint, inputs, out, *, device, batch_size, sampling_rate, leads, units, pad, progress,
               encoder, memory_format="auto") -> tuple[list[Path], int, int]:
    """``run_embed``, also returning the representation's width."""
    from ecgfast import __version__
    from ecgfast.base.fs import check_writable
    from ecgfast.base.runtime import resolve_device
    from ecgfast.deploy.inputs import embed_records, open_input
    from ecgfast.models.pretrained import load_encoder

    out = Path(out)
    kind = output_kind(out)  # refuse a bad --out before any work
    check_writable(out)
    if kind == "npy":
        check_writable(ids_path(out))
    dev = resolve_device(device)
    model = in_memory_format(load_encoder(checkpoint, dev, encoder), memory_format, dev)
    with open_input(inputs, sampling_rate=sampling_rate, leads=leads, units=units,
                    model_rate=model.spec["sampling_rate"]) as source:
        ids, emb = embed_records(model, source, device=dev, batch_size=batch_size, pad=pad, progress=progress)
        attrs = {"checkpoint": str(checkpoint), "input": source.description, "spec": model.spec,
                 "encoder": model.spec["encoder"],
                 "pooling": "mean over windows of the trained length", "ecgfast": __version__,
                 "device": dev.type}
    return write_embeddings(out, ids, emb.numpy(), attrs), len(ids), int(emb.shape[1])
