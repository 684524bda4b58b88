"""``ecgfast export``: a checkpoint as a self-contained model file, preprocessing inside the graph.

    ecgfast export --checkpoint CKPT --format torchscript|exported|onnx --out FILE
                   [--input-length T] [--input-leads I II ...] [--crop first|center] [--encoder NAME]

The exported module's input contract: a float32 tensor (B, C, T) — B free
(dynamic), C leads in ``--input-leads`` order (default the model's, PTB-XL's
I, II, III, aVR, aVL, aVF, V1-V6), T = ``--input-length`` samples (default the
trained length) **at the trained sampling rate, in mV**. Inside the graph: the
leads are put in the trained order (``index_select``), the record is cut to the
trained length (first window, or the middle one with ``--crop center``) or
zero-padded at the end, and normalised with the training statistics; a model
trained on crops (``spec["crop_seconds"]``) is run on the window's
half-overlapping crops and averaged (``ecgfast.models.windows``). Out: an
encoder gives representations (B, D) (D = 256 for the seed's ecg1dcnn; the
backbone is the checkpoint's, ``spec["encoder"]``, which ``--encoder`` may
assert); a classifier gives sigmoid probabilities (B, C) (the thresholds,
classes and full spec are stored in the file's metadata as JSON, key ``ecgfast``). Resampling is not in the graph:
resample to the trained rate first (``model.preprocess`` does it with
``scipy.signal.resample_poly``).

Formats: ``torchscript`` (``torch.jit.save``; metadata in ``_extra_files``),
``exported`` (``torch.export.save`` of an ``ExportedProgram``; metadata in
``extra_files``), ``onnx`` (needs ``pip install ecgfast[onnx]``; metadata in the
model's ``metadata_props``).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from ecgfast.base.errors import ConfigError
from ecgfast.data.loader import normalize
from ecgfast.models.windows import window_starts

FORMATS = ("torchscript", "exported", "onnx")
SUFFIXES = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}
METADATA_KEY = "ecgfast"


class ExportModule(nn.Module):
    """(B, C, T_in) mV at the trained rate -> lead order, crop/pad, normalise -> encoder [-> head -> sigmoid].
    For a model trained on crops the encoder's output is its mean over the window's crops."""

    def __init__(self, model, input_leads=None, input_length: int | None = None, crop: str = "first"):
        super().__init__()
        pre = model._pre
        leads = list(input_leads) if input_leads is not None else list(pre.leads)
        index = pre.lead_index(leads, len(leads), where="--input-leads")
        L = pre.signal_length
        T = int(input_length) if input_length is not None else L
        if T < 1:
            raise ConfigError(f"--input-length {T}: must be positive")
        if crop not in ("first", "center"):
            raise ConfigError(f"--crop {crop!r}: expected first or center")
        self.input_leads, self.input_length, self.crop = leads, T, crop
        self.start = 0 if T <= L or crop == "first" else (T - L) // 2
        self.length = min(T, L)
        self.pad = max(0, L - T)
        self.register_buffer("lead_index", torch.tensor(index, dtype=torch.long))
        mean, std = pre.normalizer.stats()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.encoder = model.encoder
        # A model trained on crops: the mean over the window's crops (ecgfast.models.windows), whose starts are
        # fixed by the window's fixed length: a plain list, so TorchScript and torch.export see static slices.
        crop = pre.crop_length
        self.crop_length = crop if crop is not None and crop < L else 0
        # never empty: TorchScript infers List[int]
        self.window_starts = window_starts(L, crop) if self.crop_length else [0]
        self.is_classifier = hasattr(model, "head")
        self.head = model.head if self.is_classifier else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.index_select(1, self.lead_index)
        x = x[:, :, self.start:self.start + self.length]
        if self.pad > 0:
            x = nn.functional.pad(x, (0, self.pad))
        x = normalize(x, self.mean, self.std)  # the training's formula (buffers: the Normalizer's stats)
        if self.crop_length > 0:
            crops = torch.stack([x[:, :, s:s + self.crop_length] for s in self.window_starts], dim=1)
            z = self.encoder(crops.reshape(-1, x.shape[1], self.crop_length))
            z = z.reshape(x.shape[0], len(self.window_starts), -1).mean(dim=1)
        else:
            z = self.encoder(x)
        if self.is_classifier:
            return torch.sigmoid(self.head(z))
        return z


def export_metadata(model, module: ExportModule, fmt: str) -> dict:
    from ecgfast import __version__

    meta = {"format": fmt, "kind": model.kind, "encoder": model.spec["encoder"], "spec": model.spec,
            "classes": model.classes,
            "input": {"shape": ["B", len(module.input_leads), module.input_length], "dtype": "float32",
                      "leads": module.input_leads, "sampling_rate": model.spec["sampling_rate"], "units": "mV",
                      "crop": module.crop},
            "output": ("sigmoid probabilities (B, n_classes)" if module.is_classifier
                       else f"representations (B, {model.out_dim})"),
            "checkpoint": model.meta.get("path"), "ecgfast": __version__, "torch": str(torch.__version__)}
    if module.is_classifier:
        meta["thresholds"] = model.thresholds
    return meta


def _example(module: ExportModule, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, len(module.input_leads), module.input_length, generator=g)


def _torchscript(module, meta) -> bytes:
    scripted = torch.jit.script(module)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf, _extra_files={METADATA_KEY: json.dumps(meta)})
    return buf.getvalue()


def _exported(module, meta) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=65536)
    ep = torch.export.export(module, (_example(module),), dynamic_shapes={"x": {0: batch}}, strict=False)
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={METADATA_KEY: json.dumps(meta)})
    return buf.getvalue()


def _onnx(module, meta) -> bytes:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as exc:
        raise ConfigError(f"--format onnx needs the onnx and onnxscript packages ({exc.name} is missing): "
                          "pip install 'ecgfast[onnx]'") from None
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.onnx.export(module, (_example(module),), dynamo=True, input_names=["x"],
                                output_names=["y"], dynamic_shapes={"x": {0: batch}}, verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    return proto.SerializeToString() if proto.ByteSize() < 2**31 - 1 else onnx._serialize(proto)


def export_model(checkpoint, fmt: str, out, *, input_length: int | None = None, input_leads=None,
                 crop: str = "first", return_metadata: bool = False, encoder: str | None = None):
    """Export the model of ``checkpoint`` (encoder or classifier) to ``out`` in ``fmt``.

    Returns ``out`` (and the metadata stored in the file, with ``return_metadata``). ``encoder``
    (a backbone name) asserts the checkpoint's backbone.
    """
    import warnings

    from ecgfast.base.fs import atomic_write, check_writable
    from ecgfast.models.pretrained import load_model

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    check_writable(out)  # before tracing
    model = load_model(checkpoint, "cpu", encoder)
    module = ExportModule(model, input_leads, input_length, crop).eval()
    meta = export_metadata(model, module, fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = {"torchscript": _torchscript, "exported": _exported, "onnx": _onnx}[fmt](module, meta)
    path = atomic_write(out, lambda f: f.write(data))
    return (path, meta) if return_metadata else path


def load_exported(path, fmt: str | None = None):
    """Load a file written by ``export_model`` (torchscript or exported) as a callable, with its metadata."""
    path = Path(path)
    fmt = fmt or {".pt2": "exported", ".onnx": "onnx"}.get(path.suffix, "torchscript")
    if fmt == "torchscript":
        import warnings

        extra = {METADATA_KEY: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            module = torch.jit.load(str(path), _extra_files=extra, map_location="cpu")
        return module, json.loads(extra[METADATA_KEY])
    if fmt == "exported":
        extra = {METADATA_KEY: ""}
        ep = torch.export.load(str(path), extra_files=extra)
        return ep.module(), json.loads(extra[METADATA_KEY])
    raise ConfigError(f"load_exported reads torchscript and exported files; open {path} with onnxruntime")
