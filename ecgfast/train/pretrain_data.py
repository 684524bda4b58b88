"""Where a pretraining run's ECGs come from: PTB-XL folds 1-8 or weighted corpora, behind one loader protocol.

:func:`open_pretrain_data` returns a :class:`PretrainData`; the engine iterates it
and asks it what a checkpoint records (sampling rate, leads, normaliser, dataset
digest, provenance) and never asks which kind it is. The object is a stateful
loader: ``set_epoch(epoch, start_batch)`` chooses the epoch (the shuffle is seeded
by the run's seed and the epoch) and the batch to start from, iterating hands out
the rest of that epoch, and ``state_dict()`` says where it stands, so a run stopped
mid-epoch resumes with the very batches it would have seen.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist

from ecgfast.base.errors import ConfigError
from ecgfast.data.loader import Batch, Normalizer, _prefetch_to

CPU = torch.device("cpu")
NORMALIZER_WINDOWS = 4096  # windows drawn (seeded, evenly over the corpora) for the corpora's statistics


class PretrainData(Protocol):
    """The loader protocol of the pretraining engine (one rank's share of the data)."""

    sampling_rate: int
    leads: tuple
    classes: tuple
    normalizer: Normalizer  # statistics of the training data (mV -> normalised)
    digest: str  # the dataset fingerprint a resume file must match
    where: str  # the data's name in messages (a path, or the corpus entries)
    corpora_info: list  # provenance for the encoder checkpoint's data.corpora
    notes: list  # (logging level, message) for the user about the data (rank 0 logs them once)
    epoch: int
    position: int  # batches of ``epoch`` handed out (or skipped on resume)

    def __len__(self) -> int: ...  # batches (steps) per epoch
    def __iter__(self) -> Iterator[Batch]: ...  # the rest of this epoch's batches, from ``position`` on
    def set_epoch(self, epoch: int, start_batch: int = 0) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def epoch_stats(self) -> dict: ...  # extra fields of the epoch's log record


def dataset_digest(cache) -> str:
    """A short digest of what the cache was built from (its fingerprint)."""
    digest = getattr(cache, "fingerprint_digest", None)
    if digest:
        return digest
    return hashlib.sha256(json.dumps(cache.fingerprint, sort_keys=True).encode()).hexdigest()


def check_length(signal_length: int, available: int, where) -> None:
    if signal_length > available:
        raise ConfigError(f"--signal-length {signal_length} exceeds the {available} samples of {where}")


def check_batch(batch_size: int, world: int, available: int, what: str) -> None:
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} must be divisible by the {world} processes")
    if batch_size > available:
        raise ConfigError(f"--batch-size {batch_size} is larger than the {available} {what}: lower it")


class _Position:
    """The epoch / batch position shared by both kinds of data: the resumable part of a loader."""

    epoch, position = 0, 0

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose the epoch (the shuffle's seed with the run's seed); ``start_batch`` resumes mid-epoch."""
        self.epoch, self.position = int(epoch), int(start_batch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epoch"], start_batch=state["position"])

    def _counted(self, batches) -> Iterator[Batch]:
        """Hand out ``batches`` (those from ``position`` on), advancing ``position`` as each is handed out."""
        for batch in batches:
            self.position += 1
            yield batch

    def epoch_stats(self) -> dict:
        return {}


class PTBXLFolds(_Position):
    """Every record of PTB-XL folds 1-8, labelled or not, from the HDF5 cache (in GPU memory when it fits)."""

    def __init__(self, cache, batch_size: int, signal_length: int, *, seed: int, rank: int = 0, world: int = 1,
                 device: torch.device = CPU):
        from ecgfast.data import ECGBatchLoader

        self.cache = cache
        check_length(signal_length, cache.signal_length, cache.path)
        train = cache.split_indices("train")
        check_batch(batch_size, world, len(train), f"training records (folds 1-8) of {cache.path}")
        self.normalizer = Normalizer.fit(cache, train)
        self.loader = ECGBatchLoader(cache, train, batch_size // world, shuffle=True, seed=seed, drop_last=True,
                                     num_replicas=world, rank=rank, device=device)
        self.sampling_rate, self.leads, self.classes = cache.sampling_rate, cache.leads, cache.classes
        self.digest, self.where, self.notes = dataset_digest(cache), str(cache.path), []
        self.corpora_info = [{"name": "ptbxl", "path": str(cache.path), "split": "folds 1-8",
                              "fingerprint": self.digest, "records": len(train)}]

    def __iter__(self) -> Iterator[Batch]:
        # The loader has no start offset: the batches before ``position`` are made and dropped.
        self.loader.set_epoch(self.epoch)
        start = self.position
        return self._counted(b for i, b in enumerate(self.loader) if i >= start)


class WeightedCorpora(_Position):
    """Weighted corpora built by ``ecgfast corpus build``, streamed from their shards (memory bounded)."""

    def __init__(self, corpora, batch_size: int, signal_length: int, *, seed: int, epoch_samples: int | None = None,
                 memory_budget_mb: float = 256.0, rank: int = 0, world: int = 1,
                 device: torch.device = CPU, where: str | None = None):
        """``corpora``: (Corpus, weight) pairs, opened (and so verified against their manifests); ``where``:
        how messages name them (default: their paths)."""
        from ecgfast.data.corpus import StreamingLoader

        for c, _ in corpora:
            if len(c) == 0:
                raise ConfigError(f"corpus {c.path} is empty: it holds no windows (`ecgfast corpus info {c.path}` "
                                  "shows what its build skipped)")
        first = corpora[0][0]
        check_length(signal_length, first.signal_length, first.path)
        check_batch(batch_size, world, int(sum(len(c) for c, _ in corpora)),
                    f"windows of the corpora ({', '.join(str(c.path) for c, _ in corpora)})")
        self.device = device
        self.loader = StreamingLoader(corpora, batch_size // world, seed=seed, epoch_samples=epoch_samples,
                                      num_replicas=world, rank=rank, memory_budget_mb=memory_budget_mb,
                                      drop_last=True, pin_memory=device.type == "cuda")
        self.normalizer = corpora_normalizer(corpora, signal_length, seed)
        self.sampling_rate = int(round(first.sampling_rate))  # noqa: RUF046  (a numpy float may come back)
        self.leads, self.classes = tuple(first.leads), tuple(first.classes)
        self.digest = hashlib.sha256("".join(f"{c.fingerprint_digest}:{w}" for c, w in corpora).encode()).hexdigest()
        self.where = where or ", ".join(str(c.path) for c, _ in corpora)
        self.corpora_info, self.notes = [], []
        for c, w in corpora:
            excluded = (c.manifest.get("settings") or {}).get("exclude_ptbxl")
            totals = c.totals
            dropped = int(totals.get("excluded_by_id", 0)) + int(totals.get("excluded_by_fingerprint", 0))
            self.corpora_info.append({"name": str((c.manifest.get("settings") or {}).get("layout", c.layout)),
                                      "path": str(c.path), "fingerprint": c.fingerprint_digest, "records": len(c),
                                      "weight": w, "ptbxl_duplicates_dropped": dropped if excluded else None})
            self.notes.append(
                (logging.INFO, f"corpus {c.path}: {dropped} windows duplicating PTB-XL folds "
                               f"{excluded.get('folds')} were dropped when it was built") if excluded else
                (logging.WARNING, f"warning: corpus {c.path} was not deduplicated against PTB-XL (build it with "
                                  "--exclude-ptbxl CACHE.h5): do not evaluate this encoder on PTB-XL folds 9-10 if "
                                  "it may hold their records"))

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.loader.set_epoch(epoch, start_batch=start_batch)  # checks both; skips without reading
        super().set_epoch(epoch, start_batch)

    def __iter__(self) -> Iterator[Batch]:
        self.loader.set_epoch(self.epoch, start_batch=self.position)
        batches = iter(self.loader)
        if self.device.type == "cuda":  # copied on a side stream one batch ahead; stop at the epoch's last
            batches = (b for _, b in zip(range(self.position, len(self)), _prefetch_to(self.device, batches)))
        return self._counted(batches)

    def epoch_stats(self) -> dict:
        """Samples drawn from each corpus this epoch (this rank's)."""
        return {"samples_per_corpus": {info["path"]: int(n) for info, n in zip(self.corpora_info, self.loader.counts)}}


def corpora_normalizer(corpora, signal_length: int, seed: int) -> Normalizer:
    """Global statistics of up to ``NORMALIZER_WINDOWS`` windows drawn evenly over the corpora (seeded)."""
    rng = np.random.default_rng(seed)
    s1 = s2 = count = 0.0
    for c, _ in corpora:
        take = np.sort(rng.choice(len(c), size=min(len(c), NORMALIZER_WINDOWS // len(corpora) + 1), replace=False))
        x = c.signals(take)[..., :signal_length].astype(np.float64)
        s1, s2, count = s1 + x.sum(), s2 + (x * x).sum(), count + x.size
    mean = s1 / count
    return Normalizer([mean], [max(s2 / count - mean ** 2, 1e-12) ** 0.5])


def open_pretrain_data(cfg, rank: int = 0, world: int = 1,
                       device: torch.device = CPU) -> PretrainData:
    """The data of a run (``cfg``: a PretrainConfig): its corpora when it names any, else PTB-XL folds 1-8.

    Under torchrun rank 0 builds the PTB-XL cache while the others wait for it.
    """
    common = {"seed": cfg.run.seed, "rank": rank, "world": world, "device": device}
    if cfg.corpus:
        from ecgfast.data.corpus import open_corpus
        from ecgfast.train.config import parse_corpus

        # open_corpus verifies every shard file against its manifest before a window is read
        corpora = [(open_corpus(path), weight) for path, weight in map(parse_corpus, cfg.corpus)]
        return WeightedCorpora(corpora, cfg.batch_size, cfg.signal_length, epoch_samples=cfg.epoch_samples,
                               memory_budget_mb=cfg.memory_budget_mb, where=", ".join(cfg.corpus), **common)
    from ecgfast.data import ensure_cache

    if rank == 0:  # one process builds the cache, the others wait for it
        cache = cfg.data.open(progress=cfg.run.progress)
    if world > 1:
        dist.barrier()
    if rank != 0:
        cache = ensure_cache(None, cfg.data.cache_path(), cfg.data.sampling_rate)
    return PTBXLFolds(cache, cfg.batch_size, cfg.signal_length, **common)
