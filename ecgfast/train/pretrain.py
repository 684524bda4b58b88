"""Self-supervised pretraining (SimCLR, BYOL): one engine behind both entry points.

Per step: a batch in mV from the cache -> two views by the fused augmentation
op -> normalisation (training-fold statistics) -> model -> fused loss -> Adam,
all on one device (``--device``; CUDA when present). On CUDA the split lives in
GPU memory when it fits, the encoder is compiled (``--compile auto``) and a
step makes no host synchronisation: the loss and a non-finite/divergence flag
are accumulated on the device and read only every ``--log-every`` steps and
before each checkpoint, so a checkpoint is only ever written from good weights.

Periodic checkpoints (atomic) hold everything a resumed run needs to finish
with the same encoder as an uninterrupted one: weights, optimiser, the epoch
and step, the augmentation step counter (views are keyed by the global step)
and the loader's order (seeded by epoch). ``torchrun`` runs it data-parallel:
one GPU per rank (``LOCAL_RANK``), NCCL, SyncBatchNorm, and NT-Xent over the
global batch with each rank computing its own rows against all columns.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ecgfast.augment import AugmentPipeline
from ecgfast.base.checkpoint import atomic_save, checkpoint_header, load_checkpoint, with_checksum
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
from ecgfast.models.backbones import DEFAULT_ENCODER
from ecgfast.models.layout import CONTIGUOUS, resolve_memory_format, set_memory_format
from ecgfast.train.common import JsonlLogger, check_training_outputs, make_optimizer, make_schedule
from ecgfast.train.config import PretrainConfig
from ecgfast.train.spec import preprocessing_spec

METHODS = ("simclr", "byol")
# Settings that must match between a run and the checkpoint it resumes. lr may be
# lowered and precision changed on resume (the advice after a divergence).
RESUME_KEYS = ("encoder", "method", "batch_size", "temperature", "projection_dim", "tau", "signal_length",
               "sampling_rate", "seed", "augment", "epochs", "crop_seconds", "resized_crop_min", "optimizer",
               "weight_decay", "schedule", "warmup_epochs", "recipe")
log = logging.getLogger("ecgfast")
MAX_WEIGHT_GROWTH = 1e3  # weight norm growing this much since the start (or resume) counts as divergence


def simclr_loss(net, v1: torch.Tensor, v2: torch.Tensor, temperature: float, world: int = 1) -> torch.Tensor:
    """NT-Xent of the two views' projections; with ``world > 1`` over the global batch.

    One forward of both views (BatchNorm sees both). With several ranks each rank
    gathers every rank's projections with gradient and computes the loss of its
    own 2n rows against all 2N columns (lightly's ``gather_distributed``); the mean
    of the ranks' losses is the global loss, and with all_gather's backward summing
    the column gradients and DDP averaging, the gradients equal one process's.
    """
    from ecgfast.losses import NTXentLoss

    z1, z2 = net(torch.cat([v1, v2])).chunk(2)  # the loss ops compute in float32 under autocast
    return NTXentLoss(temperature, gather_distributed=world > 1)(z1, z2)


def byol_loss_of(net, model, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetrised loss: byol(q(v1), z'(v2)) + byol(q(v2), z'(v1)); the target gets no gradient."""
    from ecgfast.losses import byol_loss

    n = v1.shape[0]
    p = net(torch.cat([v1, v2]))
    with torch.no_grad():
        z = model.target(torch.cat([v2, v1]))
    return byol_loss(p[:n], z[:n]) + byol_loss(p[n:], z[n:])


def resume_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


def dataset_digest(cache) -> str:
    """A short digest of what the cache was built from (its fingerprint)."""
    digest = getattr(cache, "fingerprint_digest", None)
    if digest:
        return digest
    return hashlib.sha256(json.dumps(cache.fingerprint, sort_keys=True).encode()).hexdigest()


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world); joins the process group under ``torchrun`` (NCCL on CUDA, gloo on the CPU)."""
    launched = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launched and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _total_norm(tensors) -> torch.Tensor:
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)).float())


class Pretrainer:
    """Holds the model, optimiser, data and augmentation of one run; ``fit()`` trains it."""

    def __init__(self, cfg: PretrainConfig):
        from ecgfast.data import ECGBatchLoader, Normalizer, ensure_cache
        from ecgfast.models import BYOLModel, SimCLRModel, build_encoder

        cfg.validate()
        if int(os.environ.get("RANK", "0")) == 0:  # rank 0 writes every output: refuse a bad --out up front
            check_training_outputs(cfg.out, cfg.log or cfg.out.with_suffix(".jsonl"))
        self.cfg, self.method = cfg, cfg.method
        self.device = resolve_device(cfg.run.device)
        self.precision = resolve_precision(cfg.run.precision, self.device)
        self.compiled = resolve_compile(cfg.run.compile, self.device)
        self.rank, self.world = _distributed(self.device)
        deterministic_kernels(self.device)  # resume is bitwise on CUDA too
        set_seed(cfg.run.seed)
        self.t_start = time.perf_counter()
        if cfg.corpus:
            self._init_corpora(cfg)
        else:
            self._init_ptbxl(cfg)
        self.augment = AugmentPipeline(self.sampling_rate, seed=cfg.run.seed, enabled=cfg.augment,
                                       crop_seconds=cfg.crop_seconds, resized_crop_min=cfg.resized_crop_min)
        encoder = build_encoder(cfg.encoder, in_ch=len(self.leads))
        model = (SimCLRModel(encoder, projection_dim=cfg.projection_dim) if self.method == "simclr"
                 else BYOLModel(encoder, tau=cfg.tau))
        self.memory_format = resolve_memory_format(cfg.run.memory_format, self.device, self.precision)
        set_memory_format(model, self.memory_format)
        if self.world > 1 and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BN statistics over the global batch
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, self.device, cfg.weight_decay)
        # The rate of every step is a function of the global step alone: a resumed run continues bitwise.
        self.schedule = make_schedule(cfg.schedule, cfg.warmup_epochs, cfg.epochs, len(self.loader))
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        if self.compiled:  # in place: the state dict keeps the plain encoder's keys (no _orig_mod.)
            model.encoder.compile()
        self.net = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.log = JsonlLogger((cfg.log or cfg.out.with_suffix(".jsonl")) if self.rank == 0 else None)
        self._reset_health()

    def _init_ptbxl(self, cfg: PretrainConfig) -> None:
        """Every record of PTB-XL folds 1-8, labelled or not, from the cache (in GPU memory when it fits)."""
        from ecgfast.data import ECGBatchLoader, Normalizer, ensure_cache

        if self.rank == 0:  # one process builds the cache, the others wait for it
            cache = cfg.data.open(progress=cfg.run.progress)
        if self.world > 1:
            dist.barrier()
        if self.rank != 0:
            cache = ensure_cache(None, cfg.data.cache_path(), cfg.data.sampling_rate)
        self.cache = cache
        self._check_length(cache.signal_length, cache.path)
        train = cache.split_indices("train")
        self.n_train = len(train)
        self._check_batch(f"training records (folds 1-8) of {cache.path}")
        self.normalizer = Normalizer.fit(cache, train)
        self.loader = ECGBatchLoader(cache, train, cfg.batch_size // self.world, shuffle=True, seed=cfg.run.seed,
                                     drop_last=True, num_replicas=self.world, rank=self.rank, device=self.device)
        self.sampling_rate, self.leads, self.classes = cache.sampling_rate, cache.leads, cache.classes
        self.dataset = dataset_digest(cache)
        self.corpora_info = [{"name": "ptbxl", "path": str(cache.path), "split": "folds 1-8",
                              "fingerprint": self.dataset, "records": int(self.n_train)}]

    def _init_corpora(self, cfg: PretrainConfig) -> None:
        """Weighted corpora built by ``ecgfast corpus build``, streamed from their shards (memory bounded)."""
        import numpy as np

        from ecgfast.data import Normalizer
        from ecgfast.data.corpus import StreamingLoader, open_corpus
        from ecgfast.train.config import parse_corpus

        # open_corpus verifies every shard file against its manifest before a window is read
        corpora = [(open_corpus(path), weight) for path, weight in map(parse_corpus, cfg.corpus)]
        for c, _ in corpora:
            if len(c) == 0:
                raise ConfigError(f"corpus {c.path} is empty: it holds no windows (`ecgfast corpus info {c.path}` "
                                  "shows what its build skipped)")
        first = corpora[0][0]
        self.cache = None
        self._check_length(first.signal_length, first.path)
        self.n_train = int(sum(len(c) for c, _ in corpora))
        self._check_batch(f"windows of the corpora ({', '.join(str(c.path) for c, _ in corpora)})")
        self.loader = StreamingLoader(corpora, cfg.batch_size // self.world, seed=cfg.run.seed,
                                      epoch_samples=cfg.epoch_samples, num_replicas=self.world, rank=self.rank,
                                      memory_budget_mb=cfg.memory_budget_mb, drop_last=True,
                                      pin_memory=self.device.type == "cuda")
        # Global statistics of up to 4,096 windows drawn evenly over the corpora (seeded).
        rng = np.random.default_rng(cfg.run.seed)
        s1 = s2 = count = 0.0
        for c, _ in corpora:
            take = np.sort(rng.choice(len(c), size=min(len(c), 4096 // len(corpora) + 1), replace=False))
            x = c.signals(take)[..., :cfg.signal_length].astype(np.float64)
            s1, s2, count = s1 + x.sum(), s2 + (x * x).sum(), count + x.size
        mean = s1 / count
        self.normalizer = Normalizer([mean], [max(s2 / count - mean ** 2, 1e-12) ** 0.5])
        self.sampling_rate = int(round(first.sampling_rate))
        self.leads, self.classes = tuple(first.leads), tuple(first.classes)
        self.dataset = hashlib.sha256("".join(f"{c.fingerprint_digest}:{w}" for c, w in corpora).encode()).hexdigest()
        self.corpora_info = []
        for c, w in corpora:
            excluded = (c.manifest.get("settings") or {}).get("exclude_ptbxl")
            totals = c.totals
            dropped = int(totals.get("excluded_by_id", 0)) + int(totals.get("excluded_by_fingerprint", 0))
            self.corpora_info.append({"name": str((c.manifest.get("settings") or {}).get("layout", c.layout)),
                                      "path": str(c.path), "fingerprint": c.fingerprint_digest, "records": len(c),
                                      "weight": w, "ptbxl_duplicates_dropped": dropped if excluded else None})
            if self.rank == 0:
                if excluded:
                    log.info(f"ecgfast pretrain-{self.method}: corpus {c.path}: {dropped} windows duplicating PTB-XL folds "
                             f"{excluded.get('folds')} were dropped when it was built")
                else:
                    log.warning(f"ecgfast pretrain-{self.method}: warning: corpus {c.path} was not deduplicated against "
                                "PTB-XL (build it with --exclude-ptbxl CACHE.h5): do not evaluate this encoder on "
                                "PTB-XL folds 9-10 if it may hold their records")

    def _check_length(self, available: int, where) -> None:
        if self.cfg.signal_length > available:
            raise ConfigError(f"--signal-length {self.cfg.signal_length} exceeds the {available} samples of {where}")

    def _check_batch(self, what: str) -> None:
        cfg = self.cfg
        if cfg.batch_size % self.world:
            raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the {self.world} processes")
        if cfg.batch_size > self.n_train:
            raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {self.n_train} {what}: lower it")

    def _batches(self):
        """This epoch's batches from ``step_in_epoch`` on (streamed corpora skip without reading)."""
        from ecgfast.data.loader import _prefetch_to

        if self.cache is None:
            self.loader.set_epoch(self.epoch, start_batch=self.step_in_epoch)
            batches = enumerate(self.loader, start=self.step_in_epoch)
            if self.device.type == "cuda":
                return zip(range(self.step_in_epoch, len(self.loader)), _prefetch_to(self.device, (b for _, b in batches)))
            return batches
        self.loader.set_epoch(self.epoch)
        return ((i, b) for i, b in enumerate(self.loader) if i >= self.step_in_epoch)

    # -- health: accumulated on the device, read on logged steps and before checkpoints ----
    def _reset_health(self) -> None:
        zeros = lambda dtype: torch.zeros((), device=self.device, dtype=dtype)  # noqa: E731
        self._loss_sum, self._steps = zeros(torch.float64), 0
        self._first_bad_step = zeros(torch.long) - 1
        self._bad_value = zeros(torch.float32)
        self._bad_what = zeros(torch.long)  # 1: loss, 2: gradient norm
        self._weight_norm0 = _total_norm([p.detach() for p in self.model.parameters()])

    def _track(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        loss = loss.detach().float()
        loss_ok, grad_ok = torch.isfinite(loss), torch.isfinite(grad_norm)
        first = (self._first_bad_step < 0) & ~(loss_ok & grad_ok)
        step = torch.full((), self.global_step, device=self.device, dtype=torch.long)
        self._first_bad_step = torch.where(first, step, self._first_bad_step)
        self._bad_value = torch.where(first, torch.where(loss_ok, grad_norm.float(), loss), self._bad_value)
        self._bad_what = torch.where(first, torch.where(loss_ok, 2, 1), self._bad_what)
        self._loss_sum = self._loss_sum + torch.where(loss_ok, loss, 0).double()
        self._steps += 1

    def check_health(self) -> None:
        """Raise :class:`TrainingError` if a step since the last check diverged (one host sync)."""
        bad_step = int(self._first_bad_step)
        if bad_step >= 0:
            what = "loss" if int(self._bad_what) == 1 else "gradient norm"
            self._diverged(f"{what} became {float(self._bad_value)}", bad_step)
        norm = float(_total_norm([p.detach() for p in self.model.parameters()]))
        start = float(self._weight_norm0)
        if not math.isfinite(norm) or norm > MAX_WEIGHT_GROWTH * start:
            self._diverged(f"the weights ran away (norm {start:.3g} at the start, {norm:.3g} now)",
                           self.global_step - 1)

    def _diverged(self, what: str, step: int) -> None:
        steps = len(self.loader)
        epoch, in_epoch = step // steps + 1, step % steps + 1
        kept = resume_path(self.cfg.out)
        where = (f"The last good checkpoint is kept at {kept}: rerun the same command with --resume and a lower "
                 f"--lr (e.g. --lr {self.cfg.lr / 10:g}) and/or --precision fp32, or start over without --resume"
                 if kept.is_file() else "No checkpoint was written before it: start over with a lower --lr "
                 f"(e.g. --lr {self.cfg.lr / 10:g}) or --precision fp32")
        raise TrainingError(f"{what} at epoch {epoch}, step {in_epoch}; stopping. {where}")

    # -- one step -----------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The SSL loss of a batch ``x`` (mV): views, normalisation, model, fused loss."""
        v1, v2 = self.augment(x, step=self.global_step)  # keyed by the step: resumable
        v1, v2 = self.normalizer(v1), self.normalizer(v2)
        with autocast(self.precision, self.device):
            if self.method == "simclr":
                return simclr_loss(self.net, v1, v2, self.cfg.temperature, self.world)
            return byol_loss_of(self.net, self.model, v1, v2)

    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        """One optimisation step; returns the loss as a device tensor (no host sync)."""
        self.schedule.apply(self.optimizer, self.global_step)
        loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = _total_norm([p.grad for p in params])
            self.scaler.step(self.optimizer)  # skips the step on inf/nan gradients (fp16 overflow)
            self.scaler.update()
            grad_norm = torch.zeros_like(grad_norm)  # overflow is the scaler's business, not divergence
        else:
            loss.backward()
            grad_norm = _total_norm([p.grad for p in params])
            self.optimizer.step()
        if self.method == "byol":
            self.model.update_target()
        self._track(loss, grad_norm)
        return loss.detach()

    # -- checkpoints ----------------------------------------------------------------
    def config(self) -> dict:
        return {**self.cfg.flat(), "device": str(self.device), "precision": self.precision,
                "compile": self.compiled, "world_size": self.world, "memory_format": self.memory_format}

    def save_resume(self) -> None:
        self.check_health()  # never write weights from a diverged run
        if self.rank != 0:
            return
        atomic_save(with_checksum({
            **checkpoint_header("resume"),
            "model": _cpu(self.model.state_dict()), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "augment": self.augment.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "config": self.config(), "torch_rng": torch.get_rng_state(),
            "dataset": self.dataset,
        }), resume_path(self.cfg.out))

    def load_resume(self) -> None:
        path = resume_path(self.cfg.out)
        if not path.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {path} (a run writes it every "
                                  "--checkpoint-every steps); start without --resume")
        ckpt = load_checkpoint(path, ("model", "optimizer", "augment", "epoch", "step_in_epoch", "config"),
                               kind="resume")
        from ecgfast.train.recipe import SEED_VALUES

        # Older resume files name no encoder, recipe or optimiser: they ran the seed's.
        mine, theirs = self.config(), {"encoder": DEFAULT_ENCODER, **SEED_VALUES, **ckpt["config"]}
        changed = [k for k in RESUME_KEYS if k in mine and mine.get(k) != theirs.get(k)]
        if mine["lr"] > theirs.get("lr", mine["lr"]):
            changed.append("lr")
        if changed:
            diffs = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {mine.get(k)!r}" for k in changed)
            raise CheckpointError(f"--resume: {path} was written by a different run ({diffs}); only a lower --lr "
                                  "or another --precision may change on resume: start over without --resume, "
                                  "or use the original settings")
        if ckpt.get("dataset") not in (None, self.dataset):
            where = self.cache.path if self.cache is not None else ", ".join(self.cfg.corpus)
            raise CheckpointError(f"--resume: {path} was trained on other data than {where} (the "
                                  "dataset fingerprint differs): resume with the data it was trained on, or "
                                  "start over without --resume")
        self._keep_memory_format(theirs.get("memory_format", CONTIGUOUS), path)
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--resume: {path} does not fit this model: {exc}") from None
        stored = ckpt.get("schedule")
        if stored is not None and stored != self.schedule.state_dict():
            raise CheckpointError(f"--resume: {path} was written with the schedule {stored}, this run has "
                                  f"{self.schedule.state_dict()} (another number of steps per epoch?): start over "
                                  "without --resume, or use the original settings")
        fresh = [{k: g[k] for k in ("initial_lr", "lars_exclude")} for g in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"--resume: {path}'s optimiser state does not fit this run's "
                                  f"{self.cfg.optimizer} ({exc}): start over without --resume") from None
        for group, mine_ in zip(self.optimizer.param_groups, fresh):  # a lower --lr given on resume takes
            group.update(mine_)  # effect (and files of the seed's Adam have no initial_lr)
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.augment.load_state_dict(ckpt["augment"])
        self.epoch, self.step_in_epoch, self.global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        torch.set_rng_state(ckpt["torch_rng"])
        self._reset_health()

    def _keep_memory_format(self, theirs: str, path: Path) -> None:
        """A resumed run computes in the layout it was started in (runs before format 4: contiguous), so it
        continues bitwise; an explicit other --memory-format is refused."""
        if theirs == self.memory_format:
            return
        if self.cfg.run.memory_format != "auto":
            raise CheckpointError(f"--resume: {path} was trained with --memory-format {theirs}, not "
                                  f"{self.cfg.run.memory_format}; resume with --memory-format {theirs} (or auto)")
        self.memory_format = theirs
        set_memory_format(self.model, theirs)

    def spec(self) -> dict:
        spec = preprocessing_spec(self.sampling_rate, self.cfg.signal_length, self.normalizer.state_dict(),
                                  self.leads, encoder=self.cfg.encoder, recipe=self.cfg.recipe,
                                  memory_format=self.memory_format)
        if self.cfg.crop_seconds is not None:  # optional key: trained on crops, scored by window averaging
            spec["crop_seconds"] = float(self.cfg.crop_seconds)
        return spec

    def output_checkpoint(self) -> dict:
        records_seen = self.global_step * self.cfg.batch_size
        return {
            **checkpoint_header("encoder"),
            "encoder": _cpu(self.model.encoder.state_dict()),
            "spec": self.spec(),
            "classes": list(self.classes), "normalizer": self.normalizer.state_dict(),
            "config": self.config(),
            "data": {"corpora": self.corpora_info, "records_seen": int(records_seen)},
            "versions": versions(), "device": str(self.device),
            "wall_time_s": float(time.perf_counter() - self.t_start),
        }

    def save_output(self) -> Path:
        if self.rank == 0:
            ckpt = self.output_checkpoint()
            atomic_save(ckpt, self.cfg.out)
            _write_card(self.cfg.out, ckpt)
        return self.cfg.out

    # -- the loop -------------------------------------------------------------------
    def fit(self) -> Path:
        cfg = self.cfg
        if cfg.resume:
            self.load_resume()
        self.model.train()
        steps = len(self.loader)
        length = cfg.signal_length
        while self.epoch < cfg.epochs:
            bar = progress_bar(total=steps, initial=self.step_in_epoch, desc=f"{self.method} epoch {self.epoch + 1}/{cfg.epochs}",
                               unit="step", enabled=cfg.run.progress and self.rank == 0, dynamic_ncols=True)
            t0, seen = time.perf_counter(), 0
            self._loss_sum, self._steps = torch.zeros((), device=self.device, dtype=torch.float64), 0
            for i, batch in self._batches():  # from step_in_epoch on (after a resume)
                loss = self.train_step(batch.signals[..., :length])
                self.step_in_epoch, self.global_step = i + 1, self.global_step + 1
                seen += batch.signals.shape[0] * self.world
                bar.update(1)
                if self.step_in_epoch % cfg.log_every == 0 or self.step_in_epoch == steps:
                    self.check_health()  # the only host sync of a step, on logged steps
                    bar.set_postfix(loss=f"{float(loss):.4f}", samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
                if self.global_step % cfg.checkpoint_every == 0:
                    self.save_resume()
            bar.close()
            self.check_health()
            mean_loss = float(self._loss_sum) / max(self._steps, 1)
            if self.world > 1:  # the logged loss is the global one (each rank's loss is its rows' share)
                t = torch.tensor([mean_loss], device=self.device)
                dist.all_reduce(t)
                mean_loss = float(t) / self.world
            counts = {}
            if self.cache is None:  # samples drawn from each corpus this epoch (this rank's)
                counts = {"samples_per_corpus": {info["path"]: int(n) for info, n in
                                                 zip(self.corpora_info, self.loader.counts)}}
            self.log.log(epoch=self.epoch + 1, step=self.global_step, loss=mean_loss,
                         samples_per_s=seen / max(time.perf_counter() - t0, 1e-9), method=self.method,
                         device=str(self.device), **counts)
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.save_resume()
        out = self.save_output()
        if self.world > 1:
            dist.barrier()  # rank 0 has written the output before any rank tears down
        return out


def _cpu(state: dict) -> dict:
    """A state dict on the CPU: a checkpoint written on a GPU loads anywhere."""
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.items()}


def _write_card(out: Path, ckpt: dict, metrics: dict | None = None) -> None:
    try:
        from ecgfast.report.card import write_model_card
    except ImportError:  # the model-card writer is optional for the engine
        return
    write_model_card(out, ckpt, wall_time_s=ckpt.get("wall_time_s", 0.0), device=ckpt.get("device", "cpu"),
                     metrics=metrics)


def pretrain(cfg: PretrainConfig) -> Path:
    """Run one pretraining; returns the encoder checkpoint's path."""
    try:
        return Pretrainer(cfg).fit()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
