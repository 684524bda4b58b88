"""Batches from a cache: splits, normalisation, label fractions, deterministic shuffling.

At 100 Hz a whole split is held in memory as int16 (about 0.5 GB for all of
PTB-XL) and each batch is one ``gather_dequantize`` call; at 500 Hz each batch
is read from the HDF5 file as one chunked read. No per-sample Python runs on
the hot path either way.

With ``device=cuda``, a split that fits (at most half the free GPU memory) is
held in GPU memory and each batch is one CUDA gather, with the epoch's order
copied to the GPU once; otherwise batches are made on the host, pinned, and
copied ``non_blocking`` on a side stream while the previous step runs. The
on-device assembly is device-generic (every tensor of a batch is made on the
device; tests/data/test_loader_devices.py runs it on ``meta``). The shuffle
(a seeded CPU permutation) and the HDF5 reads are host work by design.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from ecgfast.data._ops import gather_dequantize
from ecgfast.data.cache import SPLITS, ECGCache

TRAIN_FOLDS = SPLITS["train"]
GPU_RESIDENT_SHARE = 0.5  # of the free GPU memory a split may take to live on the GPU


class Batch(NamedTuple):
    signals: torch.Tensor  # float32 (B, 12, T) in mV
    labels: torch.Tensor   # float32 (B, n_classes) multi-hot
    index: torch.Tensor    # int64 (B,) row indices into the cache


class ECGBatchLoader:
    """Iterates (B, 12, T) float32 batches of ``indices`` of a cache.

    Shuffling is a permutation seeded by ``(seed, epoch)`` (``set_epoch``), so an
    epoch's batches are the same on every run. With ``num_replicas > 1`` each
    rank takes a disjoint, equal share of the permutation (padded by wrapping,
    as ``DistributedSampler`` does) for DistributedDataParallel.
    """

    def __init__(self, cache: ECGCache, indices, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, pin_memory: bool = False, num_replicas: int = 1, rank: int = 0,
                 in_memory: bool | None = None, device: torch.device | str | None = None):
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self.per_rank = math.ceil(len(self.indices) / num_replicas)
        if drop_last and self.per_rank < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the {self.per_rank} records "
                             f"available{' per rank' if num_replicas > 1 else ''}: no full batch")
        self.pin_memory = pin_memory and torch.cuda.is_available()
        if pin_memory and not self.pin_memory:
            warnings.warn("pin_memory needs CUDA; batches are not pinned", stacklevel=2)
        self.in_memory = cache.sampling_rate == 100 if in_memory is None else in_memory
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._raw = cache.raw(self.indices) if self.in_memory else None
        self._labels = torch.from_numpy(cache.labels[self.indices])
        self._gain, self._baseline = cache.gain, cache.baseline
        self.device_resident = False  # the split held on self.device, each batch gathered there
        if self.device.type == "cuda":
            self.pin_memory = True
        if (self.device.type != "cpu" and self._raw is not None
                and self._raw.numel() * 2 <= GPU_RESIDENT_SHARE * _free_bytes(self.device)):
            self._raw = self._raw.to(self.device)
            self._labels = self._labels.to(self.device)
            self._gain, self._baseline = self._gain.to(self.device), self._baseline.to(self.device)
            self._index_dev = torch.from_numpy(self.indices).to(self.device)
            self.device_resident = True

    @property
    def gpu_resident(self) -> bool:
        return self.device_resident

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def order(self) -> torch.Tensor:
        """Positions (into ``indices``) this rank visits this epoch, in order."""
        n = len(self.indices)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.per_rank * self.num_replicas
        if total > n:  # pad by wrapping so every rank gets the same number
            order = torch.cat([order, order[: total - n]])
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[Batch]:
        order = self.order()
        if self.device_resident:  # the order goes to the device once an epoch; each batch is one gather there
            order = order.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" \
                else order.to(self.device)
            for b in range(len(self)):
                pos = order[b * self.batch_size:(b + 1) * self.batch_size]
                x = gather_dequantize(self._raw, pos, self._gain, self._baseline)
                yield Batch(x, self._labels.index_select(0, pos), self._index_dev.index_select(0, pos))
            return
        batches = (self._host_batch(order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(len(self)))
        if self.device.type == "cuda":
            yield from _prefetch_to(self.device, batches)
        elif self.device.type != "cpu":
            yield from (Batch(*(t.to(self.device) for t in batch)) for batch in batches)
        else:
            yield from batches

    def _host_batch(self, pos: torch.Tensor) -> Batch:
        pinned = self.pin_memory
        if self._raw is not None:
            # Pinned: gathered and converted straight into page-locked memory, not copied there afterwards.
            out = torch.empty((len(pos), *self._raw.shape[1:]), pin_memory=True) if pinned else None
            x = gather_dequantize(self._raw, pos, self._gain, self._baseline, out=out)
        else:
            x = self.cache.signals(self.indices[pos.numpy()])
            x = x.pin_memory() if pinned else x
        y = self._labels.index_select(0, pos)
        index = torch.from_numpy(self.indices[pos.numpy()])
        if pinned:
            y, index = y.pin_memory(), index.pin_memory()
        return Batch(x, y, index)


def _free_bytes(device: torch.device) -> float:
    """Memory a split may be held in on ``device``: the free GPU memory; unbounded on ``meta`` (it holds no
    data: the tests take the on-device path there); none on the CPU (batches are made there anyway) or on
    devices without a memory query."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return math.inf if device.type == "meta" else 0


def _prefetch_to(device: torch.device, batches: Iterator[Batch]) -> Iterator[Batch]:
    """Copy pinned host batches to ``device`` on a side stream, one batch ahead of the consumer.

    The copy of batch k + 1 is queued before batch k is handed out, so it overlaps
    the step on batch k; the consumer's stream waits for the copy (no host sync),
    and ``record_stream`` keeps the caching allocator from reusing the memory early.
    """
    stream = torch.cuda.Stream(device)

    def start(batch: Batch) -> Batch:
        with torch.cuda.stream(stream):
            return Batch(*(t.to(device, non_blocking=True) for t in (
                t if t.is_pinned() else t.pin_memory() for t in batch)))

    it = iter(batches)
    nxt = next(it, None)
    nxt = start(nxt) if nxt is not None else None
    while nxt is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(stream)
        batch = nxt
        for t in batch:
            t.record_stream(current)
        following = next(it, None)
        nxt = start(following) if following is not None else None
        yield batch


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The input scaling of every ecgfast model, ``(x - mean) / std``: the one place the formula is written
    (``Normalizer`` in training and evaluation, ``Preprocessing`` of loaded models, exported graphs)."""
    return (x - mean) / std


class Normalizer:
    """(x - mean) / std with statistics of the training folds: global by default, per lead as an option."""

    def __init__(self, mean, std, per_lead: bool = False):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        self.per_lead = bool(per_lead)
        self._on: dict = {}
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()) or torch.any(self.std <= 0):
            raise ValueError(f"Normalizer: mean and std must be finite and std positive, got {self!r}")

    @classmethod
    def fit(cls, cache: ECGCache, indices, per_lead: bool = False, chunk: int = 512) -> Normalizer:
        """Fit on ``indices`` (pass the training folds' records: never fit on folds 9 or 10)."""
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        if idx.size == 0:
            raise ValueError("Normalizer.fit: no records to fit on")
        s1 = np.zeros(len(cache.leads))
        s2 = np.zeros(len(cache.leads))
        for start in range(0, idx.size, chunk):
            x = cache.signals(idx[start:start + chunk]).double().numpy()
            s1 += x.sum(axis=(0, 2))
            s2 += (x * x).sum(axis=(0, 2))
        count = idx.size * cache.signal_length
        if not per_lead:
            s1, s2, count = s1.sum(keepdims=True), s2.sum(keepdims=True), count * len(cache.leads)
        mean = s1 / count
        std = np.sqrt(np.maximum(s2 / count - mean ** 2, 1e-12))
        return cls(mean, std, per_lead)

    def stats(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        """(mean, std) on ``device`` in ``dtype``, shaped to broadcast over (B, C, T): (1, C, 1) per lead, else
        (1, 1, 1). Cached per (device, dtype): no host-to-device copy (and sync) per batch. A module that
        must carry the statistics (an exported graph) registers these as buffers and applies :func:`normalize`."""
        key = (torch.device(device), dtype)
        if key not in self._on:
            shape = (1, -1, 1) if self.per_lead else (1, 1, 1)
            self._on[key] = (self.mean.to(*key).view(shape), self.std.to(*key).view(shape))
        return self._on[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, *self.stats(x.device, x.dtype))

    def state_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "per_lead": self.per_lead}

    @classmethod
    def from_state_dict(cls, state: dict) -> Normalizer:
        return cls(state["mean"], state["std"], state["per_lead"])

    def __repr__(self) -> str:
        return f"Normalizer(mean={self.mean.tolist()}, std={self.std.tolist()}, per_lead={self.per_lead})"


def label_fraction_indices(labels, folds, fraction: float, seed: int, has_label=None) -> np.ndarray:
    """A stratified, seeded ``fraction`` of the labelled records of folds 1-8 (sorted indices).

    Strata are the label combinations (multi-label powerset), so rare
    combinations keep their share. Each stratum contributes ``fraction`` of its
    records, rounded by largest remainder so the total is ``round(fraction * n)``.
    """
    labels = np.asarray(labels)
    folds = np.asarray(folds)
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    labelled = labels.any(axis=1) if has_label is None else np.asarray(has_label, dtype=bool)
    pool = np.flatnonzero(labelled & np.isin(folds, TRAIN_FOLDS))
    if pool.size == 0:
        raise ValueError("no labelled records in folds 1-8")
    if fraction == 1:
        return pool.astype(np.int64)
    # One key per label combination, over all classes (a task may have up to 71), sorted as bytes.
    keys = np.packbits(labels[pool].astype(bool), axis=1, bitorder="little")
    strata, stratum_of = np.unique(keys, axis=0, return_inverse=True)
    stratum_of = stratum_of.reshape(-1)
    sizes = np.bincount(stratum_of, minlength=len(strata))
    exact = fraction * sizes
    take = np.floor(exact).astype(int)
    short = int(round(fraction * pool.size)) - take.sum()
    if short > 0:  # largest remainders first; ties broken by stratum key for determinism
        order = np.lexsort((np.arange(len(strata)), -(exact - take)))
        take[order[:short]] += 1
    rng = np.random.default_rng([seed, 0x1AB])
    chosen = [rng.permutation(pool[stratum_of == s])[:k] for s, k in enumerate(take) if k]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
