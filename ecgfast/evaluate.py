"""``python -m ecgfast.evaluate --checkpoint CKPT``: a classifier on fold 10, with bootstrap CIs.

Reports macro AUROC, macro F1 at 0.5, micro sensitivity and specificity, the
same per class, and 95 % bootstrap intervals; ``--robustness`` repeats the
evaluation with added Gaussian noise and with masked spans; ``--json FILE``
writes everything.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

NOISE_MV = (0.05, 0.1, 0.2)
MASK_FRACTIONS = (0.1, 0.25)


def load_classifier(path: Path):
    from ecgfast.data import Normalizer
    from ecgfast.models import ECGClassifier
    from ecgfast.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, ("classifier", "classes", "normalizer", "config"))
    model = ECGClassifier(num_classes=len(ckpt["classes"]))
    try:
        model.load_state_dict(ckpt["classifier"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path}: the classifier does not fit ECGClassifier: {exc}") from exc
    return model.eval(), ckpt, Normalizer.from_state_dict(ckpt["normalizer"])


def _perturbed_probs(model, cache, idx, normalizer, length, kind, level, seed):
    """Probabilities on fold 10 with Gaussian noise (mV) or a zeroed span of ``level`` x T per record."""
    from ecgfast.data import ECGBatchLoader

    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for batch in ECGBatchLoader(cache, idx, 256, shuffle=False):
            x = batch.signals[..., :length].clone()
            if kind == "noise":
                x += level * torch.randn(x.shape, generator=g)
            else:
                span = int(level * length)
                starts = torch.randint(0, length - span + 1, (len(x),), generator=g)
                t = torch.arange(length)
                mask = (t >= starts[:, None]) & (t < (starts + span)[:, None])
                x = x.masked_fill(mask[:, None, :], 0.0)
            out.append(torch.sigmoid(model(normalizer(x))).numpy())
    return np.concatenate(out)


def evaluate(checkpoint: Path, data_root, cache_path, sampling_rate=100, n_boot=1000, seed=0,
             robustness=False, skip_missing=False) -> dict:
    from ecgfast.data import ensure_cache
    from ecgfast.eval.metrics import bootstrap_ci, classification_metrics
    from ecgfast.train.classifier import predict

    model, ckpt, normalizer = load_classifier(checkpoint)
    cache = ensure_cache(data_root, cache_path, sampling_rate, skip_missing)
    if list(cache.classes) != list(ckpt["classes"]):
        raise ValueError(f"checkpoint {checkpoint} classes {ckpt['classes']} differ from the cache's {cache.classes}")
    idx = cache.split_indices("test", labelled_only=True)
    if len(idx) == 0:
        raise ValueError(f"cache {cache.path}: no labelled records in fold 10")
    length = int(ckpt["config"].get("signal_length", cache.signal_length))
    y = cache.labels[idx]
    probs = predict(model, cache, idx, normalizer, length)
    result = {"checkpoint": str(checkpoint), "n_records": int(len(idx)), "classes": list(cache.classes),
              **classification_metrics(y, probs, cache.classes), "ci95": bootstrap_ci(y, probs, n_boot, seed),
              "y_true": y.astype(int).tolist(), "y_prob": probs.tolist()}
    if robustness:
        rob = {}
        for kind, levels in (("noise", NOISE_MV), ("mask", MASK_FRACTIONS)):
            for level in levels:
                p = _perturbed_probs(model, cache, idx, normalizer, length, kind, level, seed)
                rob[f"{kind}={level:g}"] = classification_metrics(y, p, cache.classes)["macro_auroc"]
        result["robustness_macro_auroc"] = rob
    return result


def format_report(r: dict) -> str:
    ci = r["ci95"]
    lines = [f"fold 10: {r['n_records']} labelled records   ({r['checkpoint']})", "",
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ecgfast.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="a classifier checkpoint")
    p.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"))
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--sampling-rate", type=int, default=100, choices=[100, 500])
    p.add_argument("--skip-missing", action="store_true")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--robustness", action="store_true", help="also with added noise and masked spans")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    try:
        r = evaluate(args.checkpoint, args.data_root, args.cache, args.sampling_rate, args.bootstrap, args.seed,
                     args.robustness, args.skip_missing)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ecgfast evaluate: error: {exc}", file=sys.stderr)
        return 1
    print(format_report(r))
    if args.json:
        from ecgfast.train.checkpoint import atomic_write_text

        atomic_write_text(args.json, json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
