"""Evaluating a classifier on fold 10: metrics with bootstrap CIs, optionally under perturbations.

Reports macro AUROC, macro F1 at 0.5, micro sensitivity and specificity, the
same per class, and 95 % bootstrap intervals; ``robustness`` repeats the
evaluation with added Gaussian noise and with masked spans. The checkpoint's
preprocessing spec (rate, length, leads, classes) is checked against the cache
before anything runs. The labels are those of the checkpoint's task
(``spec["task"]``, in its ``spec["classes"]`` order; superdiagnostic for
checkpoints written before ``--task``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.train.config import DataConfig

NOISE_MV = (0.05, 0.1, 0.2)
MASK_FRACTIONS = (0.1, 0.25)


def load_classifier_checkpoint(path: Path, device: torch.device | str = "cpu"):
    """(the classifier in eval mode on ``device``, the checkpoint dict, its Normalizer): the one classifier
    loader, ``ecgfast.models.pretrained.load_classifier_and_checkpoint`` (a ``PretrainedClassifier``, which is
    an ``ECGClassifier`` with the checkpoint's state dict)."""
    from ecgfast.models.pretrained import load_classifier_and_checkpoint

    model, ckpt = load_classifier_and_checkpoint(path, device)
    return model, ckpt, model.normalizer


def _perturbation(kind: str, level: float, length: int, seed: int, device: torch.device):
    """Gaussian noise of ``level`` mV, or a zeroed span of ``level`` x T per record, seeded."""
    g = torch.Generator().manual_seed(seed)

    def perturb(x: torch.Tensor) -> torch.Tensor:
        if kind == "noise":
            return x + level * torch.randn(x.shape, generator=g).to(x.device, non_blocking=True)
        span = int(level * length)
        starts = torch.randint(0, length - span + 1, (len(x),), generator=g).to(x.device)
        t = torch.arange(length, device=x.device)
        mask = (t >= starts[:, None]) & (t < (starts + span)[:, None])
        return x.masked_fill(mask[:, None, :], 0.0)

    return perturb


def evaluate(checkpoint: Path, data: DataConfig | None = None, *, cache_path: Path | None = None,
             n_boot: int = 1000, seed: int = 0, robustness: bool = False, device: str = "auto",
             progress: bool = False) -> dict:
    """Fold-10 metrics of a classifier checkpoint (``data`` or ``cache_path`` names the cache)."""
    from ecgfast.base.checkpoint import check_matches_cache, task_of
    from ecgfast.base.runtime import resolve_device
    from ecgfast.models.inference import forward_cache
    from ecgfast.models.windows import crop_samples
    from ecgfast.report.metrics import bootstrap_ci, classification_metrics

    if n_boot < 0:
        raise ConfigError(f"--bootstrap {n_boot}: must be >= 0")
    dev = resolve_device(device)
    model, ckpt, normalizer = load_classifier_checkpoint(checkpoint, dev)
    spec = model.spec  # checkpoint_spec's answer, the one every loader gives
    if data is None:
        data = DataConfig(data_root=None, cache=cache_path, sampling_rate=spec["sampling_rate"])
    cache = data.open(progress=progress)
    if spec.get("task") is not None:  # its task's labels, columns in the checkpoint's class order
        task, classes = task_of(ckpt)
        cache = cache.with_task(task, classes)
    check_matches_cache(ckpt, checkpoint, cache)
    idx = cache.split_indices("test", labelled_only=True)
    if len(idx) == 0:
        raise ConfigError(f"cache {cache.path}: no labelled records in fold 10 to evaluate on")
    length = int(spec["signal_length"])
    y = cache.labels[idx]

    crop = crop_samples(spec)  # a model trained on crops scores the mean over the window's crops

    def probs(perturb=None):
        return torch.sigmoid(forward_cache(model, cache, idx, normalizer, length, dev, perturb=perturb,
                                           crop_length=crop)).numpy()

    p = probs()
    thresholds = ckpt.get("thresholds")
    result = {"checkpoint": str(checkpoint), "n_records": int(len(idx)), "task": task_of(ckpt)[0],
              "classes": list(cache.classes),
              **classification_metrics(y, p, cache.classes), "ci95": bootstrap_ci(y, p, n_boot, seed),
              "y_true": y.astype(int).tolist(), "y_prob": p.tolist(), "device": str(dev)}
    if thresholds:  # F1 also at the per-class thresholds chosen on fold 9 (threshold broadcasts per class)
        tuned = classification_metrics(y, p, cache.classes, threshold=np.asarray(thresholds, dtype=np.float64))
        result["thresholds"] = [float(t) for t in thresholds]
        result["macro_f1_fold9_thresholds"] = tuned["macro_f1"]
    if robustness:
        rob = {}
        for kind, levels in (("noise", NOISE_MV), ("mask", MASK_FRACTIONS)):
            for level in levels:
                pk = probs(_perturbation(kind, level, length, seed, dev))
                rob[f"{kind}={level:g}"] = classification_metrics(y, pk, cache.classes)["macro_auroc"]
        result["robustness_macro_auroc"] = rob
    return result


def format_report(r: dict) -> str:
    ci = r["ci95"]
    task = f", task {r['task']}" if r.get("task") else ""
    lines = [f"fold 10: {r['n_records']} labelled records{task}   ({r['checkpoint']})", "",
             f"{'metric':<20}{'value':>8}   95% bootstrap CI"]
    for k in ("macro_auroc", "macro_f1", "micro_sensitivity", "micro_specificity"):
        lines.append(f"{k:<20}{r[k]:>8.4f}   [{ci[k][0]:.4f}, {ci[k][1]:.4f}]")
    lines += ["", f"{'class':<8}{'AUROC':>8}{'F1':>8}{'sens':>8}{'spec':>8}{'n':>7}"]
    for c, m in r["per_class"].items():
        lines.append(f"{c:<8}{m['auroc']:>8.4f}{m['f1']:>8.4f}{m['sensitivity']:>8.4f}{m['specificity']:>8.4f}"
                     f"{m['support']:>7}")
    if "robustness_macro_auroc" in r:
        lines += ["", "robustness (macro AUROC): " + ", ".join(
            f"{k}: {v:.4f}" for k, v in r["robustness_macro_auroc"].items())]
    return "\n".join(lines)
