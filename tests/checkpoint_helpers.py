"""Helpers for the API tests: checkpoints written with the documented schema (no training code involved)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ecgfast import CLASSES, LEADS

RATE, LENGTH = 100, 1000


def _randomise_bn(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode BN is not the identity."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def make_checkpoint(path: Path, kind: str = "encoder", *, seed: int = 0, per_lead: bool = False,
                    format_version: int = 3, thresholds=None, sampling_rate: int = RATE,
                    signal_length: int = LENGTH, leads=LEADS, v1_in_config: bool = False,
                    encoder: str = "ecg1dcnn") -> Path:
    """Write an ecgfast checkpoint of ``kind`` (encoder | classifier) from a random-init ``encoder``.

    Format 3 names the encoder in its spec; formats 1 and 2 name none (they hold the seed's ecg1dcnn).
    """
    from ecgfast.models import ECGClassifier, build_encoder

    if format_version < 3 and encoder != "ecg1dcnn":
        raise ValueError("formats 1 and 2 hold the seed's ecg1dcnn only")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    backbone = build_encoder(encoder, in_ch=len(leads))
    model = ECGClassifier(backbone, num_classes=len(CLASSES)) if kind == "classifier" else backbone
    _randomise_bn(model, gen)
    n = len(leads) if per_lead else 1
    normalizer = {"mean": (torch.randn(n, generator=gen) * 0.05).tolist(),
                  "std": (torch.rand(n, generator=gen) * 0.2 + 0.15).tolist(), "per_lead": per_lead}
    config = {"method": "simclr" if kind == "encoder" else "finetune", "epochs": 2, "batch_size": 32,
              "lr": 1e-3, "seed": seed, "precision": "bf16", "device": "cpu",
              "sampling_rate": sampling_rate, "signal_length": signal_length}
    versions = {"ecgfast": "0.1.0", "torch": str(torch.__version__), "numpy": np.__version__,
                "python": "3.11.7", "extension": "True"}
    if format_version == 1:
        ckpt = {("classifier" if kind == "classifier" else "encoder"): model.state_dict(),
                "config": config, "classes": list(CLASSES), "normalizer": normalizer, "versions": versions}
        if v1_in_config:  # the variant that kept classes and normaliser inside config
            ckpt["config"] = {**config, "classes": ckpt.pop("classes"), "normalizer": ckpt.pop("normalizer")}
    else:
        from ecgfast.base.checkpoint import checkpoint_header
        from ecgfast.train.spec import preprocessing_spec

        spec = preprocessing_spec(sampling_rate, signal_length, normalizer, leads=list(leads), encoder=encoder)
        if format_version == 2:
            del spec["encoder"]
        ckpt = {**checkpoint_header(kind), "format_version": format_version,
                kind: model.state_dict(),
                "spec": spec,
                "classes": list(CLASSES), "normalizer": normalizer, "config": config,
                "data": {"corpora": [{"name": "ptbxl", "path": "/data/PTB-XL", "fingerprint": "abc123",
                                      "records": 400}], "records_seen": 320},
                "versions": versions}
        if kind == "classifier":
            ckpt["thresholds"] = list(thresholds) if thresholds is not None else [0.3, 0.4, 0.5, 0.6, 0.7]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
