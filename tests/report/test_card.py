"""Model cards beside a checkpoint; the shared inference loop."""
from __future__ import annotations

import json

import pytest
import torch
from checkpoint_helpers import make_checkpoint

from ecgfast.base.errors import ConfigError
from ecgfast.base.runtime import resolve_device
from ecgfast.models.inference import batches_of, inference_loop
from ecgfast.report.card import card_paths, write_model_card

METRICS = {
    "checkpoint": "x", "n_records": 2158, "classes": ["CD", "HYP", "MI", "NORM", "STTC"],
    "macro_auroc": 0.9123, "macro_f1": 0.7011, "micro_sensitivity": 0.75, "micro_specificity": 0.9,
    "per_class": {"CD": {"auroc": 0.9, "f1": 0.7, "sensitivity": 0.6, "specificity": 0.95, "support": 496}},
    "ci95": {"macro_auroc": [0.9012, 0.9234], "macro_f1": [0.68, 0.72], "micro_sensitivity": [0.73, 0.77],
             "micro_specificity": [0.89, 0.91]},
    "y_true": [[1, 0, 0, 0, 0]], "y_prob": [[0.9, 0.1, 0.1, 0.1, 0.1]],
}


def test_classifier_card(tmp_path):
    path = make_checkpoint(tmp_path / "run" / "finetune.pt", "classifier", per_lead=True)
    ckpt = torch.load(path, weights_only=True)
    md, js = write_model_card(path, ckpt, wall_time_s=125.5, device="cpu (2 cores)", metrics=METRICS)
    assert (md, js) == card_paths(path) == (tmp_path / "run" / "finetune.card.md",
                                            tmp_path / "run" / "finetune.card.json")
    card = json.loads(js.read_text())
    assert card["kind"] == "classifier" and card["method"] == "finetune"
    assert card["config"] == ckpt["config"]  # the full config
    assert card["data"]["corpora"][0] == {"name": "ptbxl", "path": "/data/PTB-XL", "fingerprint": "abc123",
                                          "records": 400}
    assert card["data"]["records_seen"] == 320
    assert card["metrics"]["macro_auroc"] == 0.9123 and card["metrics"]["ci95"]["macro_auroc"] == [0.9012, 0.9234]
    assert "y_prob" not in card["metrics"]  # per-record outputs stay out of the card
    assert card["preprocessing"]["sampling_rate"] == 100 and card["preprocessing"]["normalizer"]["per_lead"]
    assert card["versions"] == ckpt["versions"]
    assert card["wall_time_s"] == 125.5 and card["device"] == "cpu (2 cores)"
    assert card["thresholds"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert any("not a medical device" in t.lower() for t in card["limitations"])
    assert any("ptbxl at 100 Hz" in t for t in card["limitations"])
    text = md.read_text()
    for piece in ("# Model card: finetune.pt", "**classifier**", "**finetune**", "## Intended use",
                  "Not a medical device", "| ptbxl | 400 | abc123 | /data/PTB-XL |", "Records seen in training: 320",
                  "| macro_auroc | 0.9123 | [0.9012, 0.9234] |", "2158 labelled records", "| CD |",
                  "sampling rate: 100 Hz; window: 1000 samples", "per lead", "| lr | 0.001 |",
                  "| seed | 0 |", "2 min 6 s (125.5 s)", "cpu (2 cores)", "| torch |",
                  "CD 0.300, HYP 0.400"):
        assert piece in text, piece
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, no temp left


def test_encoder_card_without_metrics_and_format_1(tmp_path):
    path = make_checkpoint(tmp_path / "ssl.pt", "encoder", format_version=1)
    ckpt = torch.load(path, weights_only=True)
    md, js = write_model_card(path, ckpt, wall_time_s=3723.0, device="cuda")
    card = json.loads(js.read_text())
    assert card["kind"] == "encoder" and card["method"] == "simclr" and card["metrics"] is None
    assert card["format_version"] == 1 and card["preprocessing"]["leads"][0] == "I"
    assert card["thresholds"] is None
    text = md.read_text()
    assert "Not evaluated" in text and "1 h 2 min" in text and "No corpus information" in text


def test_inference_loop():
    x = torch.arange(10 * 3, dtype=torch.float32).view(10, 3)
    out = inference_loop(lambda b: b * 2, batches_of(x, 4), device="cpu")
    assert torch.equal(out, x * 2) and not out.requires_grad
    # Batch-like tuples: the first item is the input
    out = inference_loop(lambda b: b.sum(1), ((b, None) for b in batches_of(x, 3)), count=len, unit="rec")
    assert torch.equal(out, x.sum(1))
    assert inference_loop(lambda b: b, iter([])).numel() == 0
    with pytest.raises(ConfigError):
        list(batches_of(x, 0))
    with pytest.raises(ConfigError):
        inference_loop(lambda b: b, [x], precision="fp8")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
