"""Training the classifier: fine-tuning, linear probing and the supervised baseline.

The labels are those of ``--task`` (``ClassifierConfig.task``: a PTB-XL benchmark
task, the seed's 5 superdiagnostic classes by default; ``ECGCache.with_task``);
the head has one output per class of the task, and the checkpoint's spec names
the task and its classes (``spec["task"]``, ``spec["classes"]``) for evaluation.

One loop for all three: the labelled fraction of folds 1-8 trains, fold 9
selects the epoch by macro AUROC (the best weights are kept as a deep copy)
and sets each class's decision threshold (the one that maximises its F1 on
fold 9), fold 10 is left for evaluation. A frozen encoder (linear probe) is
run once to embed the records, and only the head is trained on the embeddings.
Everything runs on ``--device``; the training loss is accumulated on the device
and checked for divergence once an epoch (no host sync per step).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ecgfast.base.checkpoint import atomic_save, check_matches_cache, checkpoint_header, load_checkpoint
from ecgfast.base.errors import CheckpointError, ConfigError, TrainingError
from ecgfast.base.progress import progress_bar
from ecgfast.base.runtime import (
    autocast,
    deterministic_kernels,
    resolve_compile,
    resolve_device,
    resolve_precision,
    set_seed,
    versions,
)
from ecgfast.models.inference import embed, predict
from ecgfast.models.pretrained import encoder_of
from ecgfast.models.windows import random_crops
from ecgfast.train.common import JsonlLogger, check_training_outputs, make_optimizer, make_schedule
from ecgfast.train.config import LOSSES, SAMPLINGS, ClassifierConfig
from ecgfast.train.spec import preprocessing_spec

__all__ = ["LOSSES", "SAMPLINGS", "ClassifierConfig", "encoder_name", "train", "train_classifier",
           "load_encoder_weights"]


def load_encoder_weights(model, path: Path) -> dict:
    """Load an SSL checkpoint's encoder into ``model.encoder`` (``ecgfast.models.pretrained.load_state``: the
    one "does this state dict fit" check, a clear error on a wrong backbone or shape); returns the checkpoint."""
    from ecgfast.models.pretrained import encoder_of, load_state

    ckpt = load_checkpoint(path, ("encoder",), kind="encoder")
    load_state(model.encoder, ckpt["encoder"], path, "encoder", encoder_of(ckpt, path))
    return ckpt


def encoder_name(cfg: ClassifierConfig) -> str:
    """The run's backbone: the ``--ssl-checkpoint``'s (``--encoder``, when given, must be the same: another
    one is refused naming both), else ``--encoder``, else the seed's ``ecg1dcnn``."""
    from ecgfast.models.backbones import DEFAULT_ENCODER

    if cfg.ssl_checkpoint is None:
        return cfg.encoder or DEFAULT_ENCODER
    theirs = encoder_of(load_checkpoint(cfg.ssl_checkpoint, ("encoder",), kind="encoder"), cfg.ssl_checkpoint)
    if cfg.encoder is not None and cfg.encoder != theirs:
        raise CheckpointError(f"--ssl-checkpoint {cfg.ssl_checkpoint} holds a {theirs} encoder, but --encoder "
                              f"{cfg.encoder} was asked for: use --encoder {theirs}, or leave --encoder out to take "
                              "the checkpoint's")
    return theirs


def make_loss(kind: str, train_labels: np.ndarray, device: torch.device | str = "cpu"):
    """Multi-label loss on logits: BCE, focal (gamma 2), positive-weighted BCE, or class-balanced BCE."""
    y = torch.as_tensor(train_labels, dtype=torch.float32)
    pos = y.sum(0).clamp_min(1)
    if kind == "bce":
        return lambda logits, t: F.binary_cross_entropy_with_logits(logits, t)
    if kind == "weighted":  # positives weighted by negatives / positives per class
        pos_weight = ((len(y) - pos) / pos).to(device)
        return lambda logits, t: F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
    if kind == "class_balanced":  # Cui et al. 2019: weight (1 - beta) / (1 - beta^n_c), beta = 0.999
        beta = 0.999
        w = (1 - beta) / (1 - beta ** pos)
        w = (w / w.sum() * len(w)).to(device)
        return lambda logits, t: (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * w).mean()
    if kind == "focal":  # Lin et al. 2017: (1 - p_t)^gamma BCE, gamma = 2
        def focal(logits, t, gamma=2.0):
            bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
            p_t = torch.exp(-bce)
            return ((1 - p_t) ** gamma * bce).mean()
        return focal
    raise ConfigError(f"--loss {kind!r}: expected one of {', '.join(LOSSES)}")


def oversample(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample (with replacement, same size) weighting each record by its rarest class's inverse frequency."""
    freq = labels.sum(0).clip(min=1)
    weight = np.where(labels > 0, 1.0 / freq, 0).max(axis=1)
    return rng.choice(indices, size=len(indices), replace=True, p=weight / weight.sum())


def macro_auroc(y: np.ndarray, p: np.ndarray) -> float:
    from ecgfast.report.metrics import classification_metrics

    return classification_metrics(y, p, [str(i) for i in range(y.shape[1])])["macro_auroc"]


def f1_thresholds(y: np.ndarray, p: np.ndarray) -> list[float]:
    """Per class, the decision threshold with the best F1 on (y, p) (0.5 for a class without positives)."""
    from sklearn.metrics import precision_recall_curve

    out = []
    for j in range(y.shape[1]):
        if y[:, j].sum() == 0 or y[:, j].sum() == len(y):
            out.append(0.5)
            continue
        precision, recall, thresholds = precision_recall_curve(y[:, j], p[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        out.append(float(thresholds[int(np.argmax(f1))]))
    return out


# The L2 strengths tried by the logistic probe (sklearn's C = 1 / lambda): 13 values, 1e-4 ... 1e2,
# half a decade apart, on standardised embeddings.
LOGISTIC_C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 13))


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest L2 logistic regression (scikit-learn, L-BFGS), one per class: weights (K, D), biases (K,).

    A class with a single label value among the training records gets zero weights and the
    log-odds of its (clipped) frequency as bias: a constant score, AUROC 0.5.
    """
    from sklearn.linear_model import LogisticRegression

    weights, biases = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        target = y[:, j] > 0.5
        if target.all() or not target.any():
            rate = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
            biases[j] = np.log(rate / (1 - rate))
            continue
        fit = LogisticRegression(C=c, solver="lbfgs", max_iter=2000).fit(x, target)
        weights[j], biases[j] = fit.coef_[0], fit.intercept_[0]
    return weights, biases


def train_logistic_probe(model, cache, train_idx, val_idx, normalizer, cfg: ClassifierConfig,
                         log: JsonlLogger | None = None, device: torch.device | str = "cpu", precision: str = "fp32"):
    """The linear probe as the field defines it: the frozen encoder's embeddings of folds 1-8 and 9,
    computed once and standardised (training statistics); an L2 logistic regression per class for each
    C of :data:`LOGISTIC_C_GRID`; the C with the best fold-9 macro AUROC kept (the smallest C on a tie).
    Fold 10 is not touched. Returns what :func:`train_classifier` returns, the model's head set to the
    chosen regression (standardisation folded in), so a probe checkpoint is a classifier like any other.
    """
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    length = cfg.signal_length
    x_train = embed(model.encoder, cache, train_idx, normalizer, length, precision, device=device).double().numpy()
    x_val = embed(model.encoder, cache, val_idx, normalizer, length, precision, device=device).double().numpy()
    mu, sigma = x_train.mean(0), np.maximum(x_train.std(0, ddof=1) if len(x_train) > 1 else 1.0, 1e-8)
    z_train, z_val = (x_train - mu) / sigma, (x_val - mu) / sigma
    y_train, y_val = cache.labels[train_idx], cache.labels[val_idx]
    history, best = [], None
    for c in progress_bar(LOGISTIC_C_GRID, desc="logistic probe", unit="C", enabled=cfg.run.progress):
        t0 = time.perf_counter()
        w, b = fit_logistic(z_train, y_train, c)
        p_val = 1 / (1 + np.exp(-(z_val @ w.T + b)))
        auroc = macro_auroc(y_val, p_val)
        record = {"C": c, "val_macro_auroc": auroc, "seconds": time.perf_counter() - t0}
        history.append(record)
        if log:
            log.log(**record)
        if best is None or auroc > best[0]:
            best = (auroc, c, w, b, p_val)
    auroc, c, w, b, p_val = best
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    w_raw = w / sigma  # head(x) = w (x - mu) / sigma + b as one Linear on x
    state["head.weight"] = torch.from_numpy(w_raw).to(state["head.weight"].dtype)
    state["head.bias"] = torch.from_numpy(b - w_raw @ mu).to(state["head.bias"].dtype)
    history.append({"chosen_C": c, "val_macro_auroc": auroc, "C_grid": list(LOGISTIC_C_GRID)})
    return state, float(auroc), history, p_val.astype(np.float32)


def train_classifier(model, cache, train_idx, val_idx, normalizer, cfg: ClassifierConfig, freeze_encoder: bool,
                     log: JsonlLogger | None = None, device: torch.device | str = "cpu", precision: str = "fp32"):
    """Train ``model`` (an ECGClassifier on ``device``); returns (best state dict, best val macro AUROC,
    history, fold-9 probabilities of the best epoch)."""
    from ecgfast.data import ECGBatchLoader

    device = torch.device(device)
    if freeze_encoder and cfg.probe == "logistic":
        return train_logistic_probe(model, cache, train_idx, val_idx, normalizer, cfg, log, device, precision)
    rng = np.random.default_rng(cfg.run.seed)
    loss_fn = make_loss(cfg.loss, cache.labels[train_idx], device)
    y_val = cache.labels[val_idx]
    history, best_state, best_auroc, best_p = [], None, -np.inf, None
    length = cfg.signal_length
    # Crops (--crop-seconds): fine-tuning trains on one random crop per record and step; every score
    # (fold 9, the probe's features) is the mean over the window's crops (ecgfast.models.windows).
    crop = crop_length(cfg, cache.sampling_rate)
    # --resized-crop without crops resizes crops of the whole window (as in pretraining).
    train_crop = crop if crop is not None or cfg.resized_crop_min is None else length
    crop_rng = np.random.default_rng([cfg.run.seed, 1])  # its own stream: the seed's draws stay as they were
    if freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        train_feats = embed(model.encoder, cache, train_idx, normalizer, length, precision, device=device,
                            crop_length=crop).to(device)
        val_feats = embed(model.encoder, cache, val_idx, normalizer, length, precision, device=device,
                          crop_length=crop).to(device)
        # The head trains on standardised features (an encoder's scale, a random one's
        # especially, is arbitrary); the standardisation is folded into the saved head.
        mu, sigma = train_feats.mean(0), train_feats.std(0).clamp_min(1e-8)
        train_feats, val_feats = (train_feats - mu) / sigma, (val_feats - mu) / sigma
        position = {int(i): k for k, i in enumerate(train_idx)}
        train_labels = torch.from_numpy(cache.labels[train_idx]).to(device)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, device, cfg.weight_decay,
                               None if freeze_encoder else cfg.layer_lr_decay)
    oversampling = cfg.sampling == "oversample"
    if not freeze_encoder:
        # Built once: on CUDA each holds its split in GPU memory, uploaded once, not every epoch.
        # An oversampled epoch draws other records each time, so it gets a loader of its own.
        def train_loader(idx):
            return ECGBatchLoader(cache, idx, min(cfg.batch_size, len(idx)), shuffle=True, seed=cfg.run.seed,
                                  drop_last=len(idx) > cfg.batch_size, device=device)

        fixed_loader = None if oversampling else train_loader(train_idx)
        val_loader = ECGBatchLoader(cache, val_idx, 256, shuffle=False, device=device)
        steps_per_epoch = len(train_idx) // cfg.batch_size if len(train_idx) > cfg.batch_size else 1
    else:
        steps_per_epoch = -(-len(train_idx) // cfg.batch_size)
    schedule = make_schedule(cfg.schedule, cfg.warmup_epochs, cfg.epochs, steps_per_epoch)
    step = 0
    bar = progress_bar(range(cfg.epochs), desc="probe" if freeze_encoder else "fine-tune", unit="epoch",
                       enabled=cfg.run.progress, dynamic_ncols=True)
    for epoch in bar:
        t0 = time.perf_counter()
        idx = oversample(train_idx, cache.labels[train_idx], rng) if oversampling else train_idx
        total, steps = torch.zeros((), device=device, dtype=torch.float64), 0
        if freeze_encoder:
            model.head.train()
            order = torch.from_numpy(rng.permutation(len(idx)))
            rows = torch.tensor([position[int(i)] for i in idx])[order].to(device)
            for s in range(0, len(rows), cfg.batch_size):
                r = rows[s:s + cfg.batch_size]
                loss = loss_fn(model.head(train_feats[r]), train_labels[r])
                optimizer.zero_grad()
                loss.backward()
                schedule.apply(optimizer, step)
                optimizer.step()
                total, steps, step = total + loss.detach(), steps + 1, step + 1
            model.head.eval()
            with torch.no_grad():
                p_val = torch.sigmoid(model.head(val_feats)).cpu().numpy()
        else:
            model.train()
            loader = fixed_loader or train_loader(idx)
            loader.set_epoch(epoch)
            for batch in loader:
                x = batch.signals[..., :length]
                if train_crop is not None:
                    x = random_crops(x, train_crop, crop_rng, cfg.resized_crop_min)
                with autocast(precision, device):
                    logits = model(normalizer(x))
                loss = loss_fn(logits.float(), batch.labels)
                optimizer.zero_grad()
                loss.backward()
                schedule.apply(optimizer, step)
                optimizer.step()
                total, steps, step = total + loss.detach(), steps + 1, step + 1
            p_val = predict(model, cache, val_idx, normalizer, length, precision, device=device, loader=val_loader,
                            crop_length=crop)
        train_loss = float(total) / max(steps, 1)  # one host sync an epoch
        if not np.isfinite(train_loss) or not np.isfinite(p_val).all():
            raise TrainingError(f"the training loss became {train_loss} in epoch {epoch + 1}; stopping (nothing "
                                f"was saved): start over with a lower --lr (e.g. --lr {cfg.lr / 10:g}) or "
                                "--precision fp32")
        auroc = macro_auroc(y_val, p_val)
        if auroc > best_auroc:  # a real copy: the live weights keep training
            best_auroc, best_p = auroc, p_val
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if freeze_encoder:  # head(standardise(f)) as one Linear on f
                w = best_state["head.weight"] / sigma.cpu()
                best_state["head.bias"] = best_state["head.bias"] - w @ mu.cpu()
                best_state["head.weight"] = w
        record = {"epoch": epoch + 1, "train_loss": train_loss, "val_macro_auroc": auroc,
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        if log:
            log.log(**record)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_auroc=f"{auroc:.3f}", best=f"{best_auroc:.3f}")
    return best_state, float(best_auroc), history, best_p


def crop_length(cfg, sampling_rate: int) -> int | None:
    """Samples of the run's crops (``--crop-seconds`` at the data's rate), or None for the whole window."""
    if cfg.crop_seconds is None:
        return None
    from ecgfast.augment.params import view_samples

    return view_samples(cfg.crop_seconds, sampling_rate, cfg.signal_length, flag="--crop-seconds")


def train(cfg: ClassifierConfig) -> Path:
    """Fine-tune / probe / supervised run; writes the classifier checkpoint (and its model card)."""
    from ecgfast.data import Normalizer, label_fraction_indices
    from ecgfast.models import ECGClassifier, build_encoder
    from ecgfast.models.layout import resolve_memory_format, set_memory_format
    from ecgfast.train.pretrain import _cpu, _write_card, dataset_digest

    cfg.validate()
    check_training_outputs(cfg.out, cfg.out.with_suffix(".jsonl"))
    device = resolve_device(cfg.run.device)
    precision = resolve_precision(cfg.run.precision, device)
    t_start = time.perf_counter()
    deterministic_kernels(device)
    set_seed(cfg.run.seed)
    encoder = encoder_name(cfg)
    model = ECGClassifier(build_encoder(encoder), num_classes=5)
    normalizer, ssl = None, None
    if cfg.ssl_checkpoint is not None:  # checked before the cache is built: a wrong file fails fast
        ssl = load_encoder_weights(model, cfg.ssl_checkpoint)
    cache = cfg.data.open(progress=cfg.run.progress)
    if cfg.signal_length > cache.signal_length:
        raise ConfigError(f"--signal-length {cfg.signal_length} exceeds the cache's {cache.signal_length} samples "
                          f"({cache.path})")
    if ssl is not None:
        spec = check_matches_cache(ssl, cfg.ssl_checkpoint, cache)
        if spec.get("normalizer"):  # normalise as the encoder was pretrained
            normalizer = Normalizer.from_state_dict(spec["normalizer"])
        if cfg.crop_seconds is None and spec.get("crop_seconds") is not None:  # the encoder's crops
            cfg = dataclasses.replace(cfg, crop_seconds=float(spec["crop_seconds"]))
            cfg.validate()  # the inherited crop must fit this run's --signal-length window
    cache = cache.with_task(cfg.task)  # labels, classes and has_label of the task from here on
    if not cache.classes:
        raise ConfigError(f"--task {cfg.task}: no record of the cache {cache.path} states a {cfg.task} class")
    if len(cache.classes) != 5:
        model = ECGClassifier(model.encoder, num_classes=len(cache.classes))
    if normalizer is None:
        normalizer = Normalizer.fit(cache, cache.split_indices("train"))
    train_idx = label_fraction_indices(cache.labels, cache.folds, cfg.label_fraction, cfg.run.seed, cache.has_label)
    val_idx = cache.split_indices("val", labelled_only=True)
    if len(val_idx) == 0:
        raise ConfigError(f"cache {cache.path}: no labelled records in fold 9 to select the model on")
    model = model.to(device)
    memory_format = resolve_memory_format(cfg.run.memory_format, device, precision)
    set_memory_format(model, memory_format)
    if resolve_compile(cfg.run.compile, device) and not cfg.freeze_encoder:
        model.encoder.compile()
    log = JsonlLogger(cfg.out.with_suffix(".jsonl"))
    best, best_auroc, history, p_val = train_classifier(model, cache, train_idx, val_idx, normalizer, cfg,
                                                        cfg.freeze_encoder, log, device, precision)
    config = {**cfg.flat(), "device": str(device), "precision": precision,
              "ssl_checkpoint": str(cfg.ssl_checkpoint) if cfg.ssl_checkpoint else None, "n_train": int(len(train_idx)),
              "encoder": encoder, "memory_format": memory_format}
    corpora = [{"name": "ptbxl", "path": str(cache.path), "split": f"{cfg.label_fraction:g} of the labelled folds 1-8",
                "fingerprint": dataset_digest(cache), "records": int(len(train_idx))}]
    if ssl is not None:
        corpora = list((ssl.get("data") or {}).get("corpora", [])) + corpora
    spec = {**preprocessing_spec(cache.sampling_rate, cfg.signal_length, normalizer.state_dict(), cache.leads,
                                 encoder=encoder, recipe=cfg.recipe, memory_format=memory_format),
            "task": cfg.task, "classes": list(cache.classes)}
    if cfg.crop_seconds is not None:  # optional key: scorers average over crops (ecgfast.models.windows)
        spec["crop_seconds"] = float(cfg.crop_seconds)
    ckpt = {**checkpoint_header("classifier"), "classifier": _cpu(best), "classes": list(cache.classes),
            "normalizer": normalizer.state_dict(), "thresholds": f1_thresholds(cache.labels[val_idx], p_val),
            "spec": spec,
            "config": config, "data": {"corpora": corpora}, "val_macro_auroc": best_auroc, "history": history,
            "versions": versions(), "device": str(device), "wall_time_s": float(time.perf_counter() - t_start)}
    atomic_save(ckpt, cfg.out)
    _write_card(cfg.out, ckpt)
    return cfg.out
