"""``ecgfast predict``: per-record class probabilities and thresholded labels from a classifier.

    ecgfast predict --checkpoint CLS.pt --input SRC --out preds.csv [--device ...] [--batch-size ...]

SRC as for ``ecgfast embed``. The csv has one row per record: ``id``, then
``p_<class>`` (sigmoid probability) for every class, then ``y_<class>`` (1 where
the probability reaches the class's threshold stored in the checkpoint, chosen
on fold 9; 0.5 where the checkpoint has none). A record longer than the model's
window is cut into windows whose representations are averaged before the head
(the same as averaging the logits). An encoder checkpoint has no head and is
refused. ``--encoder NAME`` asserts the checkpoint's backbone (another one is
refused, naming both).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from ecgfast.base.errors import ConfigError


def predict_records(model, source, *, device="cpu", batch_size=256, pad=False, progress=False,
                    precision="fp32") -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, probabilities (N, C) float32, labels (N, C) int)`` of a ``PretrainedClassifier`` over a source."""
    from ecgfast.deploy.inputs import embed_records

    ids, feats = embed_records(model, source, device=device, batch_size=batch_size, pad=pad, progress=progress,
                               precision=precision, desc="predicting")
    with torch.inference_mode():
        w, b = model.head.weight.detach().cpu().float(), model.head.bias.detach().cpu().float()
        probs = torch.sigmoid(torch.nn.functional.linear(feats, w, b))
        labels = (probs >= torch.tensor(model.thresholds, dtype=torch.float32)).to(torch.int64)
    return ids, probs.numpy(), labels.numpy()


def predictions_csv(ids, classes, probs, labels) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id"] + [f"p_{c}" for c in classes] + [f"y_{c}" for c in classes])
    for i, p, y in zip(ids, probs, labels):
        w.writerow([i] + [f"{float(v):.6g}" for v in p] + [int(v) for v in y])
    return buf.getvalue()


def run_predict(checkpoint, inputs, out, *, device="auto", batch_size=256, sampling_rate=None, leads=None,
                units="mV", pad=False, progress=True, encoder=None, memory_format="auto") -> tuple[Path, int]:
    from ecgfast.base.fs import atomic_write, check_writable
    from ecgfast.base.runtime import resolve_device
    from ecgfast.deploy.embed import in_memory_format
    from ecgfast.deploy.inputs import open_input
    from ecgfast.models.pretrained import load_classifier

    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: expected a .csv file")
    check_writable(out)  # before the model runs over every record
    dev = resolve_device(device)
    model = in_memory_format(load_classifier(checkpoint, dev, encoder), memory_format, dev)
    with open_input(inputs, sampling_rate=sampling_rate, leads=leads, units=units,
                    model_rate=model.spec["sampling_rate"]) as source:
        ids, probs, labels = predict_records(model, source, device=dev, batch_size=batch_size, pad=pad,
                                             progress=progress)
    text = predictions_csv(ids, model.classes, probs, labels)
    return atomic_write(out, lambda f: f.write(text), mode="w"), len(ids)
