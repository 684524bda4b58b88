"""Streaming batches from corpora of any size, in memory bounded by a budget, not by the corpus.

``StreamingLoader(corpora, batch_size, seed=...)`` draws an epoch of
``epoch_samples`` windows (default: every window of every corpus once) from one
or several corpora, each with a weight. How:

* each corpus is cut into **blocks** of ``block_windows`` consecutive windows of
  one shard; each pass over a corpus visits its blocks in a permutation seeded
  by (seed, epoch, corpus, pass), rank ``r`` of ``num_replicas`` taking blocks
  ``r, r + R, ...`` of it (disjoint across ranks; a rank whose share runs out
  goes on into the next pass, so every rank yields the same number of batches);
* corpora are interleaved block by block, the one furthest behind its quota
  going next; the quota of corpus ``c`` is ``weight_c / sum(weights)`` of the
  rank's ``ceil(epoch_samples / num_replicas)`` samples (largest remainder), met
  exactly -- ``loader.counts`` holds the samples yielded from each corpus this epoch;
* consecutive blocks fill a **shuffle buffer** of ``group`` windows (as many
  whole batches as the memory budget allows), which is permuted (seeded by
  (seed, epoch, rank, group)) and cut into batches; batches never straddle two
  buffers, so skipping the first k batches (``set_epoch(e, start_batch=k)``)
  needs no data read and gives exactly the batches a full run gives after them.

Memory: the shuffle buffer (int16 windows, labels, indices) and a pool of
``POOL_BATCHES`` float32 batches stay within ``memory_budget_mb``. The buffer is
filled by ``pread`` from the shard files, i.e. from the OS page cache, which all
ranks on a machine share (``Corpus.shard(k)`` is a memory map of the same file),
so anonymous memory does not grow with the corpus; the only per-corpus tables are
the block lists (20 bytes per ``block_windows`` windows). A batch is one
``ecgfast::gather_dequantize`` call from the buffer straight into a batch (gather
and int16 to mV in one pass, bit-identical to ``Corpus.signals``). Batches live in
recycled anonymous mappings (``_BatchPool``): a batch the consumer still holds is
never overwritten, and no freed batches pile up on the malloc heap. With
``pin_memory=True`` (for a CUDA step) they are written into page-locked memory
from torch's caching host allocator instead, which recycles a block only once its
copies to the GPU are done, so a ``non_blocking`` copy needs no second host copy.
The buffer is kept across epochs; an iterator started while another is live gets
its own.

``Batch.index`` is the window's index in its corpus plus the total length of
the corpora before it in the list.

Trust: every corpus is verified against its manifest before the first batch (each
shard file's sha256; ``Corpus.verify``, remembered for unchanged files), and a shard
file that changed since is refused when first mapped (``Corpus.shard``).
"""
from __future__ import annotations

import math
import mmap
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.data._ops import gather_dequantize
from ecgfast.data.corpus.store import Corpus, open_corpus
from ecgfast.data.loader import Batch

POOL_BATCHES = 4  # float32 batch arrays the loader recycles


class _BatchPool:
    """Float32 batch arrays, each in its own anonymous mapping, recycled once the consumer drops them.

    Batches from the heap would leave glibc holding tens to hundreds of MB of freed batches
    (its mmap threshold rises to the batch size after the first free), so a process would
    grow well past the budget. Here a batch's pages are reused when no tensor references
    them any more (the array's reference count, which every tensor sharing its storage
    holds, is back to the pool's own), and a batch still held when the pool is full is
    replaced by a fresh mapping that goes back to the OS with its last reference.
    """

    def __init__(self, shape, size: int = POOL_BATCHES):
        self.shape, self.size, self.items = tuple(shape), size, []

    def _fresh(self) -> np.ndarray:
        count = int(np.prod(self.shape))
        m = mmap.mmap(-1, max(count * 4, 1))
        if hasattr(m, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)  # a few faults per batch instead of thousands
        return np.frombuffer(m, dtype=np.float32, count=count)  # 1-D: every view's base is this array

    def get(self, n: int) -> np.ndarray:
        """A (n, *shape[1:]) view of a free batch array (n <= shape[0])."""
        return self._get()[: n * int(np.prod(self.shape[1:]))].reshape((n,) + self.shape[1:])

    def _get(self) -> np.ndarray:
        for i in range(len(self.items)):
            if sys.getrefcount(self.items[i]) <= 2:  # the list's reference and getrefcount's argument
                return self.items[i]
        a = self._fresh()
        if len(self.items) < self.size:
            self.items.append(a)
        else:
            # the first slot; the old batch lives on with its holder
            self.items[int(np.argmin([0] * len(self.items)))] = a
        return a


class StreamingLoader:
    def __init__(self, corpora, batch_size: int, *, seed: int, epoch_samples: int | None = None,
                 num_replicas: int = 1, rank: int = 0, memory_budget_mb: float = 256.0, drop_last: bool = True,
                 block_windows: int = 64, pin_memory: bool = False):
        if isinstance(corpora, (Corpus, str)) or not isinstance(corpora, (list, tuple)):
            corpora = [(corpora, 1.0)]
        pairs = []
        for item in corpora:
            c, w = item if isinstance(item, tuple) and len(item) == 2 else (item, 1.0)
            if isinstance(w, bool) or not isinstance(w, (int, float, np.number)):
                raise ConfigError(f"corpus weight must be a number > 0, got {w!r}")
            if not isinstance(c, (Corpus, str)) and not hasattr(c, "__fspath__"):
                raise ConfigError(f"a corpus is a Corpus or a manifest path, got {c!r}")
            # every shard hashed against its manifest before the first batch (a Corpus opened with
            # verify=False is verified here; one verified already, or remembered unchanged, costs stats)
            c = c if isinstance(c, Corpus) else open_corpus(c)
            if not c.verified:
                c.verify()
            pairs.append((c, float(w)))
        if not pairs:
            raise ConfigError("StreamingLoader needs at least one corpus")
        self.corpora = [c for c, _ in pairs]
        self.weights = np.array([w for _, w in pairs], dtype=np.float64)
        first = self.corpora[0]
        for c in self.corpora[1:]:
            if (c.sampling_rate, c.signal_length, c.classes, c.gain) != (
                    first.sampling_rate, first.signal_length, first.classes, first.gain):
                raise ConfigError(f"corpus {c.path} ({c.sampling_rate:g} Hz x {c.signal_length}, {c.classes}) does "
                                  f"not match {first.path} ({first.sampling_rate:g} Hz x {first.signal_length}, "
                                  f"{first.classes}): build them with the same --sampling-rate and --seconds")
        if np.any(self.weights <= 0) or not np.all(np.isfinite(self.weights)):
            raise ConfigError(f"corpus weights must be positive, got {self.weights.tolist()}")
        for c in self.corpora:
            if len(c) == 0:
                raise ConfigError(f"corpus {c.path} holds no windows")
        for name, value, low in (("batch_size", batch_size, 1), ("num_replicas", num_replicas, 1),
                                 ("block_windows", block_windows, 1), ("seed", seed, 0),
                                 ("epoch_samples", 1 if epoch_samples is None else epoch_samples, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank!r} is not in [0, {num_replicas})")
        if isinstance(memory_budget_mb, bool) or not (isinstance(memory_budget_mb, (int, float, np.number))
                                                      and math.isfinite(memory_budget_mb) and memory_budget_mb > 0):
            raise ConfigError(f"memory_budget_mb must be a finite number > 0, got {memory_budget_mb!r}")
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), bool(drop_last)
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        if pin_memory and not self.pin_memory:
            warnings.warn("pin_memory needs CUDA; batches are not pinned", stacklevel=2)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self.start_batch = 0, 0
        self.sampling_rate, self.signal_length, self.classes = first.sampling_rate, first.signal_length, first.classes
        T, C = self.signal_length, len(self.classes)
        row = 12 * T * 2 + C + 8 + 1
        out_bytes = self.batch_size * ((POOL_BATCHES + 1) * 12 * T * 4 + 2 * (C * 4 + 8))
        budget = float(memory_budget_mb) * 2**20
        per_group = (budget - out_bytes) // row // self.batch_size
        if per_group < 1:
            need = (out_bytes + self.batch_size * row) / 2**20
            raise ConfigError(f"memory_budget_mb={memory_budget_mb} cannot hold one batch of {batch_size} "
                              f"windows of {T} samples: give at least {math.ceil(need)} MB")
        total = int(sum(len(c) for c in self.corpora))
        self.epoch_samples = total if epoch_samples is None else int(epoch_samples)
        self.per_rank = math.ceil(self.epoch_samples / self.num_replicas)
        # a buffer beyond the rank's epoch holds nothing more (one group is the whole epoch either way)
        per_group = int(min(per_group, math.ceil(self.per_rank / self.batch_size)))
        self.memory_budget_mb = float(memory_budget_mb)
        # ... nor more windows than the rank's epoch (a batch size beyond the epoch is one short batch)
        self.group_size = int(min(per_group * self.batch_size, self.per_rank))
        self.block_windows = int(block_windows)
        self.bases = np.concatenate([[0], np.cumsum([len(c) for c in self.corpora])])[:-1]
        self._blocks = []
        for c in self.corpora:
            shard, start = [], []
            for k, n in enumerate(c.shard_sizes):
                s = np.arange(0, n, self.block_windows)
                shard.append(np.full(len(s), k, np.int32))
                start.append(s)
            start = np.concatenate(start).astype(np.int64)
            shard = np.concatenate(shard)
            stop = np.minimum(start + self.block_windows, c.shard_sizes[shard])
            self._blocks.append((shard, start, stop))
        if self.drop_last and self.per_rank < self.batch_size:
            raise ConfigError(f"batch size {batch_size} exceeds the {self.per_rank} samples per rank: no full batch")
        share = self.per_rank * self.weights / self.weights.sum()
        quota = np.floor(share).astype(np.int64)
        for i in np.argsort(-(share - quota), kind="stable")[: self.per_rank - int(quota.sum())]:
            quota[i] += 1
        self.quotas = quota
        self.counts = [0] * len(self.corpora)
        self._buffers = None
        self._gain = torch.full((12,), first.gain, dtype=torch.float32)
        self._baseline = torch.zeros(12, dtype=torch.float32)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose the epoch (the shuffle's seed with ``seed``); ``start_batch`` resumes mid-epoch."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ConfigError(f"epoch must be an integer >= 0, got {epoch!r}")
        if not 0 <= start_batch <= len(self):
            raise ConfigError(f"start_batch {start_batch} is not in [0, {len(self)}]")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def _corpus_blocks(self, c: int):
        shard, start, stop = self._blocks[c]
        nb = len(shard)
        p = 0
        while True:
            perm = np.random.default_rng([self.seed, self.epoch, c, p, 17]).permutation(nb)
            mine = perm[self.rank::self.num_replicas] if nb >= self.num_replicas else perm[[self.rank % nb]]
            for b in mine:
                yield int(shard[b]), int(start[b]), int(stop[b])
            p += 1

    def _segments(self):
        """(corpus, shard, start, stop) runs of this rank's epoch, in order."""
        streams = [self._corpus_blocks(c) for c in range(len(self.corpora))]
        drawn = np.zeros(len(self.corpora), np.int64)
        quota = self.quotas
        while True:
            open_ = np.flatnonzero(drawn < quota)
            if open_.size == 0:
                return
            c = int(open_[np.argmin(drawn[open_] / quota[open_])])
            k, s, e = next(streams[c])
            e = min(e, s + int(quota[c] - drawn[c]))
            drawn[c] += e - s
            yield c, k, s, e

    def _groups(self):
        group, n = [], 0
        for c, k, s, e in self._segments():
            while s < e:
                take = min(e - s, self.group_size - n)
                group.append((c, k, s, s + take))
                n += take
                s += take
                if n == self.group_size:
                    yield group
                    group, n = [], 0
        if group:
            yield group

    def __iter__(self) -> Iterator[Batch]:
        n_batches, start_batch = len(self), self.start_batch
        self.counts = [0] * len(self.corpora)
        buffers, self._buffers = self._buffers, None  # reused across epochs; a second live iterator gets its own
        buf, lab = buffers if buffers is not None else (None, None)
        raw = None if buf is None else torch.from_numpy(buf)
        idx = np.empty(self.group_size, np.int64)
        cid = np.empty(self.group_size, np.int16)
        held = {"buffers": buffers}
        try:
            yield from self._iterate(buf, lab, raw, idx, cid, n_batches, start_batch, held)
        finally:
            if held["buffers"] is not None:
                self._buffers = held["buffers"]

    def _iterate(self, buf, lab, raw, idx, cid, n_batches, start_batch, held):
        B = self.batch_size
        T, C = self.signal_length, len(self.classes)
        pool = None  # the float32 batches, reused
        b = 0
        for g, segs in enumerate(self._groups()):
            if b >= n_batches:
                return
            n = sum(e - s for _, _, s, e in segs)
            group_batches = min(n // B if self.drop_last else math.ceil(n / B), n_batches - b)
            load = b + group_batches > start_batch
            if load and buf is None:
                buf = np.empty((self.group_size, 12, T), np.int16)
                lab = np.empty((self.group_size, C), np.uint8)
                raw = torch.from_numpy(buf)
                held["buffers"] = (buf, lab)
            pos = 0
            for c, k, s, e in segs:
                m = e - s
                corpus = self.corpora[c]
                if load:
                    corpus.read_into(k, s, e, buf[pos:pos + m])
                    lab[pos:pos + m] = corpus.shard_labels(k)[s:e]
                idx[pos:pos + m] = self.bases[c] + corpus.offsets[k] + np.arange(s, e)
                cid[pos:pos + m] = c
                pos += m
            perm = np.random.default_rng([self.seed, self.epoch, self.rank, g, 29]).permutation(n)
            for j in range(group_batches):
                p = perm[j * B:(j + 1) * B]
                for c, m in enumerate(np.bincount(cid[p], minlength=len(self.corpora))):
                    self.counts[c] += int(m)
                if b >= start_batch:
                    if self.pin_memory:
                        x = torch.empty((len(p), 12, T), pin_memory=True)
                    else:
                        if pool is None:
                            pool = _BatchPool((min(B, self.group_size), 12, T))
                        x = torch.from_numpy(pool.get(len(p)))
                    gather_dequantize(raw, torch.from_numpy(p), self._gain, self._baseline, out=x)
                    y, i = torch.from_numpy(lab[p].astype(np.float32)), torch.from_numpy(idx[p].copy())
                    if self.pin_memory:
                        y, i = y.pin_memory(), i.pin_memory()
                    batch = Batch(x, y, i)
                    x = None  # only the batch's tensors keep its pages from reuse
                    yield batch
                    batch = None
                b += 1
