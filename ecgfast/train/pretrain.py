"""Self-supervised pretraining (SimCLR, BYOL): one engine behind both entry points.

Per step: a batch in mV from the data -> two views by the fused augmentation
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

The engine is method- and data-agnostic: what differs between SimCLR and BYOL is
a :class:`~ecgfast.train.methods.Method`, what differs between PTB-XL folds and
corpora a :class:`~ecgfast.train.pretrain_data.PretrainData` (which also holds
the run's position: epoch and batch).
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ecgfast.augment import AugmentPipeline
from ecgfast.base.checkpoint import atomic_save, checkpoint_header, load_checkpoint, with_checksum
from ecgfast.base.errors import CheckpointError, TrainingError
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
from ecgfast.train.config import PretrainConfig, resume_mismatches
from ecgfast.train.methods import METHODS, Method, byol_loss_of, simclr_loss  # noqa: F401  (importable from here)
from ecgfast.train.pretrain_data import PretrainData, dataset_digest, open_pretrain_data  # noqa: F401
from ecgfast.train.spec import preprocessing_spec

log = logging.getLogger("ecgfast")
MAX_WEIGHT_GROWTH = 1e3  # weight norm growing this much since the start (or resume) counts as divergence


def resume_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


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
    """Holds the model, optimiser, data and augmentation of one run; ``fit()`` trains it.

    What differs between SimCLR and BYOL is the ``method`` (:mod:`ecgfast.train.methods`), what differs
    between PTB-XL folds and corpora is the ``data`` (:mod:`ecgfast.train.pretrain_data`); both are made
    from ``cfg`` unless given (the tests give their own).
    """

    def __init__(self, cfg: PretrainConfig, method: Method | None = None, data: PretrainData | None = None):
        from ecgfast.models import build_encoder

        cfg.validate()
        if int(os.environ.get("RANK", "0")) == 0:  # rank 0 writes every output: refuse a bad --out up front
            check_training_outputs(cfg.out, cfg.log or cfg.out.with_suffix(".jsonl"))
        self.cfg = cfg
        self.device = resolve_device(cfg.run.device)
        self.precision = resolve_precision(cfg.run.precision, self.device)
        self.compiled = resolve_compile(cfg.run.compile, self.device)
        self.rank, self.world = _distributed(self.device)
        deterministic_kernels(self.device)  # resume is bitwise on CUDA too
        set_seed(cfg.run.seed)
        self.t_start = time.perf_counter()
        self.method = method if method is not None else METHODS[cfg.method].from_config(cfg, self.world)
        self.data = data if data is not None else open_pretrain_data(cfg, self.rank, self.world, self.device)
        if self.rank == 0:
            for level, note in self.data.notes:
                log.log(level, f"ecgfast pretrain-{self.method.name}: {note}")
        self.augment = AugmentPipeline(self.data.sampling_rate, seed=cfg.run.seed, enabled=cfg.augment,
                                       crop_seconds=cfg.crop_seconds, resized_crop_min=cfg.resized_crop_min)
        model = self.method.build(build_encoder(cfg.encoder, in_ch=len(self.data.leads)))
        self.memory_format = resolve_memory_format(cfg.run.memory_format, self.device, self.precision)
        set_memory_format(model, self.memory_format)
        if self.world > 1 and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BN statistics over the global batch
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, self.device, cfg.weight_decay)
        # The rate of every step is a function of the global step alone: a resumed run continues bitwise.
        self.schedule = make_schedule(cfg.schedule, cfg.warmup_epochs, cfg.epochs, len(self.data))
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        if self.compiled:  # in place: the state dict keeps the plain encoder's keys (no _orig_mod.)
            self.method.encoder(model).compile()
        self.net = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.global_step = 0
        self.log = JsonlLogger((cfg.log or cfg.out.with_suffix(".jsonl")) if self.rank == 0 else None)
        self._reset_health()

    # The data holds the position in the run (the epoch and the batches of it done); the engine counts steps.
    @property
    def epoch(self) -> int:
        return self.data.epoch

    @property
    def step_in_epoch(self) -> int:
        return self.data.position

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
        steps = len(self.data)
        epoch, in_epoch = step // steps + 1, step % steps + 1
        kept = resume_path(self.cfg.out)
        where = (f"The last good checkpoint is kept at {kept}: rerun the same command with --resume and a lower "
                 f"--lr (e.g. --lr {self.cfg.lr / 10:g}) and/or --precision fp32, or start over without --resume"
                 if kept.is_file() else "No checkpoint was written before it: start over with a lower --lr "
                 f"(e.g. --lr {self.cfg.lr / 10:g}) or --precision fp32")
        raise TrainingError(f"{what} at epoch {epoch}, step {in_epoch}; stopping. {where}")

    # -- one step -----------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The SSL loss of a batch ``x`` (mV): views, normalisation, model, the method's loss."""
        v1, v2 = self.augment(x, step=self.global_step)  # keyed by the step: resumable
        v1, v2 = self.data.normalizer(v1), self.data.normalizer(v2)
        with autocast(self.precision, self.device):
            return self.method.loss(self.net, self.model, v1, v2)

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
        self.method.after_step(self.model)
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
            "model": _cpu(self.method.resume_state(self.model)), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "augment": self.augment.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "config": self.config(), "torch_rng": torch.get_rng_state(),
            "dataset": self.data.digest,
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
        changed = resume_mismatches(theirs, self.cfg)  # the fields' resume rules (ecgfast.train.config)
        if changed:
            diffs = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {mine.get(k)!r}" for k in changed)
            raise CheckpointError(f"--resume: {path} was written by a different run ({diffs}); only a lower --lr "
                                  "or another --precision may change on resume: start over without --resume, "
                                  "or use the original settings")
        if ckpt.get("dataset") not in (None, self.data.digest):
            raise CheckpointError(f"--resume: {path} was trained on other data than {self.data.where} (the "
                                  "dataset fingerprint differs): resume with the data it was trained on, or "
                                  "start over without --resume")
        self._keep_memory_format(theirs.get("memory_format", CONTIGUOUS), path)
        try:
            self.method.load_resume_state(self.model, ckpt["model"])
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
        self.data.load_state_dict({"epoch": ckpt["epoch"], "position": ckpt["step_in_epoch"]})
        self.global_step = ckpt["global_step"]
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
        spec = preprocessing_spec(self.data.sampling_rate, self.cfg.signal_length, self.data.normalizer.state_dict(),
                                  self.data.leads, encoder=self.cfg.encoder, recipe=self.cfg.recipe,
                                  memory_format=self.memory_format)
        if self.cfg.crop_seconds is not None:  # optional key: trained on crops, scored by window averaging
            spec["crop_seconds"] = float(self.cfg.crop_seconds)
        return spec

    def output_checkpoint(self) -> dict:
        records_seen = self.global_step * self.cfg.batch_size
        return {
            **checkpoint_header("encoder"),
            "encoder": _cpu(self.method.encoder(self.model).state_dict()),
            "spec": self.spec(),
            "classes": list(self.data.classes), "normalizer": self.data.normalizer.state_dict(),
            "config": self.config(),
            "data": {"corpora": self.data.corpora_info, "records_seen": int(records_seen)},
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
        steps = len(self.data)
        length = cfg.signal_length
        while self.epoch < cfg.epochs:
            bar = progress_bar(total=steps, initial=self.step_in_epoch,
                               desc=f"{self.method.name} epoch {self.epoch + 1}/{cfg.epochs}",
                               unit="step", enabled=cfg.run.progress and self.rank == 0, dynamic_ncols=True)
            t0, seen = time.perf_counter(), 0
            self._loss_sum, self._steps = torch.zeros((), device=self.device, dtype=torch.float64), 0
            for batch in self.data:  # from the data's position on (mid-epoch after a resume)
                loss = self.train_step(batch.signals[..., :length])
                self.global_step += 1
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
            self.log.log(epoch=self.epoch + 1, step=self.global_step, loss=mean_loss,
                         samples_per_s=seen / max(time.perf_counter() - t0, 1e-9), method=self.method.name,
                         device=str(self.device), **self.data.epoch_stats())
            self.data.set_epoch(self.epoch + 1)
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

