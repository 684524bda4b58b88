"""Training the 5-class classifier: fine-tuning, linear probing and the supervised baseline.

One loop for all three: the labelled fraction of folds 1-8 trains, fold 9
selects the epoch by macro AUROC (the best weights are kept as a deep copy),
fold 10 is left for ``ecgfast.evaluate``. A frozen encoder (linear probe) is run
once to embed the records, and only the head is trained on the embeddings.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ecgfast.train.checkpoint import atomic_save, load_checkpoint
from ecgfast.train.common import PRECISIONS, JsonlLogger, autocast, set_seed, versions

LOSSES = ("bce", "focal", "weighted", "class_balanced")
SAMPLINGS = ("standard", "oversample")


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"), help="PTB-XL folder")
    p.add_argument("--cache", type=Path, default=None, help="HDF5 cache (built from --data-root when missing)")
    p.add_argument("--sampling-rate", type=int, default=100, choices=[100, 500])
    p.add_argument("--skip-missing", action="store_true", help="cache a partial PTB-XL")
    p.add_argument("--label-fraction", type=float, default=0.1,
                   help="share of the labelled records of folds 1-8 to train on (stratified, by seed)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--signal-length", type=int, default=1000)
    p.add_argument("--loss", choices=LOSSES, default="bce")
    p.add_argument("--sampling", choices=SAMPLINGS, default="standard")
    p.add_argument("--precision", choices=PRECISIONS, default="bf16")
    p.add_argument("--no-progress", action="store_true")


def load_encoder_weights(model, path: Path) -> dict:
    """Load an SSL checkpoint's encoder into ``model.encoder``; a clear error on a wrong shape."""
    ckpt = load_checkpoint(path, ("encoder",))
    own = model.encoder.state_dict()
    theirs = ckpt["encoder"]
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    wrong = sorted(k for k in set(own) & set(theirs) if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch: " + ", ".join(
                f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:4]))
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:4])}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:4])}")
        raise ValueError(f"encoder checkpoint {path} does not fit ECGEncoder1DCNN(in_ch=12, width=64): "
                         + "; ".join(parts))
    model.encoder.load_state_dict(theirs, strict=True)
    return ckpt


def make_loss(kind: str, train_labels: np.ndarray):
    """Multi-label loss on logits: BCE, focal (gamma 2), positive-weighted BCE, or class-balanced BCE."""
    y = torch.as_tensor(train_labels, dtype=torch.float32)
    pos = y.sum(0).clamp_min(1)
    if kind == "bce":
        return lambda logits, t: F.binary_cross_entropy_with_logits(logits, t)
    if kind == "weighted":  # positives weighted by negatives / positives per class
        pos_weight = (len(y) - pos) / pos
        return lambda logits, t: F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
    if kind == "class_balanced":  # Cui et al. 2019: weight (1 - beta) / (1 - beta^n_c), beta = 0.999
        beta = 0.999
        w = (1 - beta) / (1 - beta ** pos)
        w = w / w.sum() * len(w)
        return lambda logits, t: (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * w).mean()
    if kind == "focal":  # Lin et al. 2017: (1 - p_t)^gamma BCE, gamma = 2
        def focal(logits, t, gamma=2.0):
            bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
            p_t = torch.exp(-bce)
            return ((1 - p_t) ** gamma * bce).mean()
        return focal
    raise ValueError(f"unknown loss {kind!r}: expected one of {', '.join(LOSSES)}")


def oversample(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample (with replacement, same size) weighting each record by its rarest class's inverse frequency."""
    freq = labels.sum(0).clip(min=1)
    weight = np.where(labels > 0, 1.0 / freq, 0).max(axis=1)
    return rng.choice(indices, size=len(indices), replace=True, p=weight / weight.sum())


@torch.no_grad()
def predict(model, cache, indices, normalizer, signal_length: int, precision: str = "fp32",
            batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities (n, n_classes) of ``model`` on ``indices`` of the cache."""
    from ecgfast.data import ECGBatchLoader

    model.eval()
    out = np.zeros((len(indices), len(cache.classes)), dtype=np.float32)
    loader = ECGBatchLoader(cache, indices, batch_size, shuffle=False)
    row = 0
    for batch in loader:
        with autocast(precision):
            logits = model(normalizer(batch.signals[..., :signal_length]))
        out[row:row + len(logits)] = torch.sigmoid(logits.float()).numpy()
        row += len(logits)
    return out


@torch.no_grad()
def embed(encoder, cache, indices, normalizer, signal_length: int, precision: str, batch_size: int = 256):
    """Encoder representations (n, 256) of ``indices``: what a linear probe trains on."""
    from ecgfast.data import ECGBatchLoader

    encoder.eval()
    feats = []
    for batch in ECGBatchLoader(cache, indices, batch_size, shuffle=False):
        with autocast(precision):
            feats.append(encoder(normalizer(batch.signals[..., :signal_length])).float())
    return torch.cat(feats)


def macro_auroc(y: np.ndarray, p: np.ndarray) -> float:
    from ecgfast.eval.metrics import classification_metrics

    return classification_metrics(y, p, [str(i) for i in range(y.shape[1])])["macro_auroc"]


def train_classifier(model, cache, train_idx, val_idx, normalizer, args, freeze_encoder: bool,
                     log: JsonlLogger | None = None):
    """Train ``model`` (an ECGClassifier); returns (best state dict, best val macro AUROC, history)."""
    from ecgfast.data import ECGBatchLoader

    rng = np.random.default_rng(args.seed)
    loss_fn = make_loss(args.loss, cache.labels[train_idx])
    y_val = cache.labels[val_idx]
    history, best_state, best_auroc = [], None, -np.inf
    if freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        train_feats = embed(model.encoder, cache, train_idx, normalizer, args.signal_length, args.precision)
        val_feats = embed(model.encoder, cache, val_idx, normalizer, args.signal_length, args.precision)
        # The head trains on standardised features (an encoder's scale, a random one's
        # especially, is arbitrary); the standardisation is folded into the saved head.
        mu, sigma = train_feats.mean(0), train_feats.std(0).clamp_min(1e-8)
        train_feats, val_feats = (train_feats - mu) / sigma, (val_feats - mu) / sigma
        position = {int(i): k for k, i in enumerate(train_idx)}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    bar = tqdm(range(args.epochs), desc="probe" if freeze_encoder else "fine-tune", unit="epoch",
               disable=getattr(args, "no_progress", False), dynamic_ncols=True)
    for epoch in bar:
        t0 = time.perf_counter()
        idx = oversample(train_idx, cache.labels[train_idx], rng) if args.sampling == "oversample" else train_idx
        total, steps = 0.0, 0
        if freeze_encoder:
            model.head.train()
            order = torch.from_numpy(rng.permutation(len(idx)))
            rows = torch.tensor([position[int(i)] for i in idx])[order]
            for s in range(0, len(rows), args.batch_size):
                r = rows[s:s + args.batch_size]
                loss = loss_fn(model.head(train_feats[r]), torch.from_numpy(cache.labels[train_idx[r.numpy()]]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, steps = total + loss.item(), steps + 1
            model.head.eval()
            with torch.no_grad():
                p_val = torch.sigmoid(model.head(val_feats)).numpy()
        else:
            model.train()
            loader = ECGBatchLoader(cache, idx, min(args.batch_size, len(idx)), shuffle=True,
                                    seed=args.seed, drop_last=len(idx) > args.batch_size)
            loader.set_epoch(epoch)
            for batch in loader:
                with autocast(args.precision):
                    logits = model(normalizer(batch.signals[..., :args.signal_length]))
                loss = loss_fn(logits.float(), batch.labels)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}: lower --lr")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, steps = total + loss.item(), steps + 1
            p_val = predict(model, cache, val_idx, normalizer, args.signal_length, args.precision)
        auroc = macro_auroc(y_val, p_val)
        if auroc > best_auroc:  # a real copy: the live weights keep training
            best_auroc, best_state = auroc, copy.deepcopy(model.state_dict())
            if freeze_encoder:  # head(standardise(f)) as one Linear on f
                w = best_state["head.weight"] / sigma
                best_state["head.bias"] = best_state["head.bias"] - w @ mu
                best_state["head.weight"] = w
        record = {"epoch": epoch + 1, "train_loss": total / max(steps, 1), "val_macro_auroc": auroc,
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        if log:
            log.log(**record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_auroc=f"{auroc:.3f}", best=f"{best_auroc:.3f}")
    return best_state, float(best_auroc), history


def run(args, ssl_checkpoint: Path | None, freeze_encoder: bool, mode: str) -> Path:
    """Fine-tune / probe / supervised run from parsed flags; writes the classifier checkpoint."""
    from ecgfast.data import Normalizer, ensure_cache, label_fraction_indices
    from ecgfast.models import ECGClassifier

    if not 0 < args.label_fraction <= 1:
        raise ValueError(f"--label-fraction must be in (0, 1], got {args.label_fraction}")
    set_seed(args.seed)
    cache = ensure_cache(args.data_root, args.cache, args.sampling_rate, args.skip_missing)
    if args.signal_length > cache.signal_length:
        raise ValueError(f"--signal-length {args.signal_length} exceeds the cache's {cache.signal_length} samples")
    model = ECGClassifier(num_classes=len(cache.classes))
    normalizer = None
    if ssl_checkpoint is not None:
        ckpt = load_encoder_weights(model, ssl_checkpoint)
        if ckpt.get("normalizer"):  # normalise as the encoder was pretrained
            normalizer = Normalizer.from_state_dict(ckpt["normalizer"])
    if normalizer is None:
        normalizer = Normalizer.fit(cache, cache.split_indices("train"))
    train_idx = label_fraction_indices(cache.labels, cache.folds, args.label_fraction, args.seed, cache.has_label)
    val_idx = cache.split_indices("val", labelled_only=True)
    if len(val_idx) == 0:
        raise ValueError(f"cache {cache.path}: no labelled records in fold 9 to select the model on")
    log = JsonlLogger(args.out.with_suffix(".jsonl"))
    best, best_auroc, history = train_classifier(model, cache, train_idx, val_idx, normalizer, args,
                                                 freeze_encoder, log)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    atomic_save({"classifier": best, "classes": list(cache.classes), "normalizer": normalizer.state_dict(),
                 "config": {**config, "mode": mode, "freeze_encoder": freeze_encoder,
                            "ssl_checkpoint": str(ssl_checkpoint) if ssl_checkpoint else None,
                            "n_train": int(len(train_idx))},
                 "val_macro_auroc": best_auroc, "history": history, "versions": versions()}, args.out)
    return args.out


def cli(argv, mode: str) -> int:
    finetune = mode == "finetune"
    p = argparse.ArgumentParser(
        prog=f"python -m ecgfast.train_{mode}",
        description=("Fine-tune (or, with --freeze-encoder, linear-probe) a pretrained encoder on a fraction "
                     "of the labels." if finetune else "The supervised baseline: the same classifier from "
                     "random initialisation."))
    if finetune:
        p.add_argument("--ssl-checkpoint", required=True,
                       help="encoder checkpoint of a pretraining run; 'none' for a random-init encoder")
        p.add_argument("--freeze-encoder", action="store_true", help="train the linear head only (probe)")
    add_common_flags(p)
    p.add_argument("--out", type=Path, default=Path(f"checkpoints/{mode}.pt"))
    args = p.parse_args(argv)
    ssl = None
    if finetune and args.ssl_checkpoint.lower() != "none":
        ssl = Path(args.ssl_checkpoint)
    try:
        out = run(args, ssl, finetune and args.freeze_encoder, mode)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"ecgfast {mode}: error: {exc}", file=sys.stderr)
        return 1
    ckpt = torch.load(out, map_location="cpu", weights_only=False)
    print(f"saved the classifier to {out} (best fold-9 macro AUROC {ckpt['val_macro_auroc']:.4f})")
    return 0
