"""Self-supervised pretraining (SimCLR, BYOL): one engine behind both entry points.

Per step: a batch in mV from the cache -> two views by the fused augmentation
op -> normalisation (training-fold statistics) -> model -> fused loss -> Adam.
Periodic checkpoints (atomic) hold everything a resumed run needs to finish
with the same encoder as an uninterrupted one: weights, optimiser, the epoch
and step, the augmentation step counter (views are keyed by the global step)
and the loader's order (seeded by epoch). ``torchrun`` runs it data-parallel.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ecgfast.augment import CONFIGS, AugmentPipeline
from ecgfast.train.checkpoint import atomic_save, load_checkpoint
from ecgfast.train.common import PRECISIONS, JsonlLogger, autocast, set_seed, versions

METHODS = ("simclr", "byol")
# Flags that must match between a run and the checkpoint it resumes.
RESUME_KEYS = ("method", "batch_size", "lr", "temperature", "projection_dim", "tau", "signal_length",
               "sampling_rate", "seed", "config", "epochs", "precision")


def build_parser(method: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m ecgfast.train_ssl_{method}",
                                description=f"Self-supervised pretraining of the ECG encoder with {method.upper()}.")
    p.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"), help="PTB-XL folder")
    p.add_argument("--cache", type=Path, default=None,
                   help="HDF5 cache (built from --data-root when missing; default DATA_ROOT/ecgfast_cache_<rate>hz.h5)")
    p.add_argument("--sampling-rate", type=int, default=100, choices=[100, 500])
    p.add_argument("--skip-missing", action="store_true", help="cache a partial PTB-XL")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256, help="ECG pairs per step (global, over all ranks)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--signal-length", type=int, default=1000, help="samples per lead (the first ones are kept)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=Path(f"checkpoints/ssl_{method}.pt"))
    if method == "simclr":
        p.add_argument("--temperature", type=float, default=0.07)
        p.add_argument("--projection-dim", type=int, default=128)
    else:
        p.add_argument("--tau", type=float, default=0.999, help="EMA rate of the target network")
    p.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="autocast precision (default bf16: 2.4-2.8x fp32 here; accuracy check in BENCHMARKS.md)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder (off by default: -6%% to +25%% on a 2-core CPU, slow to compile)")
    p.add_argument("--config", choices=CONFIGS, default="full", help="augmentations: full or an ablation")
    p.add_argument("--workers", type=int, default=1, help="processes that build the cache")
    p.add_argument("--resume", action="store_true", help="continue from the periodic checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between periodic checkpoints")
    p.add_argument("--log-every", type=int, default=10, help="steps between progress-bar updates")
    p.add_argument("--log", type=Path, default=None, help="JSON-lines log (default: OUT with .jsonl)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def simclr_loss(net, v1: torch.Tensor, v2: torch.Tensor, temperature: float, world: int = 1) -> torch.Tensor:
    """NT-Xent of the two views' projections; with ``world > 1`` over the global batch.

    Each rank gathers every rank's projections with gradient, so all ranks compute
    the same global loss; all_gather's backward sums the ranks' gradients (K times
    the local share) and DDP's averaging divides by K: the gradients equal a single
    process's on the global batch.
    """
    from ecgfast.losses import nt_xent

    z1, z2 = net(torch.cat([v1, v2])).float().chunk(2)  # one forward: BN sees both views
    if world > 1:
        from torch.distributed.nn.functional import all_gather

        z1, z2 = torch.cat(all_gather(z1)), torch.cat(all_gather(z2))
    return nt_xent(z1, z2, temperature)


def resume_path(out: Path) -> Path:
    return out.with_name(out.stem + ".resume.pt")


def _distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _validate(args, method: str, n_train: int, world: int) -> None:
    if method == "simclr" and not args.temperature > 0:
        raise ValueError(f"--temperature must be positive, got {args.temperature}")
    if method == "byol" and not 0 < args.tau < 1:
        raise ValueError(f"--tau must be in (0, 1), got {args.tau}")
    if args.batch_size < 2:
        raise ValueError(f"--batch-size must be at least 2, got {args.batch_size}")
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the {world} processes")
    if args.batch_size > n_train:
        raise ValueError(f"--batch-size {args.batch_size} is larger than the {n_train} training records "
                         "(folds 1-8): lower it")
    if args.epochs < 1 or args.lr <= 0:
        raise ValueError("--epochs must be >= 1 and --lr positive")


class Pretrainer:
    """Holds the model, optimiser, data and augmentation of one run; ``fit()`` trains it."""

    def __init__(self, args, method: str):
        from ecgfast.data import ECGBatchLoader, Normalizer, ensure_cache
        from ecgfast.models import BYOLModel, SimCLRModel

        self.args, self.method = args, method
        self.rank, self.world = _distributed()
        set_seed(args.seed)
        if self.rank == 0:  # one process builds the cache, the others wait for it
            cache = ensure_cache(args.data_root, args.cache, args.sampling_rate, args.skip_missing, args.workers)
        if self.world > 1:
            dist.barrier()
        if self.rank != 0:
            cache = ensure_cache(None, cache_path(args), args.sampling_rate)
        self.cache = cache
        if args.signal_length > cache.signal_length:
            raise ValueError(f"--signal-length {args.signal_length} exceeds the cache's {cache.signal_length} samples")
        train = cache.split_indices("train")  # every record of folds 1-8, labelled or not
        _validate(args, method, len(train), self.world)
        self.normalizer = Normalizer.fit(cache, train)
        self.loader = ECGBatchLoader(cache, train, args.batch_size // self.world, shuffle=True, seed=args.seed,
                                     drop_last=True, num_replicas=self.world, rank=self.rank)
        self.augment = AugmentPipeline(args.sampling_rate, seed=args.seed, enabled=args.config)
        if method == "simclr":
            model = SimCLRModel(projection_dim=args.projection_dim)
        else:
            model = BYOLModel(tau=args.tau)
        if self.world > 1 and torch.cuda.is_available():
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BN statistics over the global batch
        self.model = model
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
        self.net = model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(model)
        if args.compile:
            model.encoder = torch.compile(model.encoder)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.log = JsonlLogger((args.log or args.out.with_suffix(".jsonl")) if self.rank == 0 else None)

    # -- one step -----------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The SSL loss of a batch ``x`` (mV): views, normalisation, model, fused loss."""
        v1, v2 = self.augment(x, step=self.global_step)  # keyed by the step: resumable
        v1, v2 = self.normalizer(v1), self.normalizer(v2)
        with autocast(self.args.precision):
            if self.method == "simclr":
                return simclr_loss(self.net, v1, v2, self.args.temperature, self.world)
            return self.net(v1, v2)

    def train_step(self, x: torch.Tensor) -> float:
        loss = self.loss(x)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"loss became {value} at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}; stopping. "
                f"The last good checkpoint is kept at {resume_path(self.args.out)} (if one was written): "
                "lower --lr or use --precision fp32, then --resume")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.method == "byol":
            self.model.update_target()
        return value

    # -- checkpoints ----------------------------------------------------------------
    def config(self) -> dict:
        a = vars(self.args)
        return {"method": self.method, **{k: (str(v) if isinstance(v, Path) else v) for k, v in a.items()}}

    def save_resume(self) -> None:
        if self.rank != 0:
            return
        atomic_save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "augment": self.augment.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "config": self.config(), "torch_rng": torch.get_rng_state(),
        }, resume_path(self.args.out))

    def load_resume(self) -> None:
        path = resume_path(self.args.out)
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path} (a run writes it every "
                                    "--checkpoint-every steps); start without --resume")
        ckpt = load_checkpoint(path, ("model", "optimizer", "augment", "epoch", "step_in_epoch", "config"))
        mine, theirs = self.config(), ckpt["config"]
        changed = [k for k in RESUME_KEYS if k in mine and mine.get(k) != theirs.get(k)]
        if changed:
            diffs = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {mine.get(k)!r}" for k in changed)
            raise ValueError(f"--resume: {path} was written by a different run ({diffs})")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise ValueError(f"--resume: {path} does not fit this model: {exc}") from exc
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.augment.load_state_dict(ckpt["augment"])
        self.epoch, self.step_in_epoch, self.global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        torch.set_rng_state(ckpt["torch_rng"])

    def save_output(self) -> Path:
        if self.rank == 0:
            atomic_save({"encoder": self.model.encoder.state_dict(), "config": self.config(),
                         "classes": list(self.cache.classes), "normalizer": self.normalizer.state_dict(),
                         "versions": versions()}, self.args.out)
        return self.args.out

    # -- the loop -------------------------------------------------------------------
    def fit(self) -> Path:
        args = self.args
        if args.resume:
            self.load_resume()
        self.model.train()
        steps = len(self.loader)
        length = args.signal_length
        while self.epoch < args.epochs:
            self.loader.set_epoch(self.epoch)
            bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"{self.method} epoch {self.epoch + 1}/{args.epochs}",
                       unit="step", disable=args.no_progress or self.rank != 0, dynamic_ncols=True)
            t0, seen, total, done = time.perf_counter(), 0, 0.0, 0
            for i, batch in enumerate(self.loader):
                if i < self.step_in_epoch:  # already done before the resume
                    continue
                value = self.train_step(batch.signals[..., :length])
                self.step_in_epoch, self.global_step = i + 1, self.global_step + 1
                seen += batch.signals.shape[0] * self.world
                total, done = total + value, done + 1
                if self.step_in_epoch % args.log_every == 0 or self.step_in_epoch == steps:
                    bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
                bar.update(1)
                if self.global_step % args.checkpoint_every == 0:
                    self.save_resume()
            bar.close()
            self.log.log(epoch=self.epoch + 1, step=self.global_step, loss=total / max(done, 1),
                         samples_per_s=seen / max(time.perf_counter() - t0, 1e-9), method=self.method)
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.save_resume()
        out = self.save_output()
        if self.world > 1:
            dist.barrier()  # rank 0 has written the output before any rank tears down
        return out


def cache_path(args) -> Path:
    from ecgfast.data.cache import default_cache_path

    return args.cache or default_cache_path(args.data_root, args.sampling_rate)


def main_for(method: str, argv=None) -> int:
    args = build_parser(method).parse_args(argv)
    try:
        out = Pretrainer(args, method).fit()
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"ecgfast {method}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"saved the encoder to {out}")
    return 0
