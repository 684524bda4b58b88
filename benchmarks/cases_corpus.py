"""Corpus stage: building corpora per layout, streaming from shards, memory flat in corpus size.

In ``python -m benchmarks`` (stage ``corpus``, via ``cases``): one epoch streamed
from a corpus on disk by ``StreamingLoader`` against the plain ``DataLoader``
over the shards' memory maps (2,000 windows with ``--quick``, else 20,000), and the
cost of opening that corpus for training: every shard file hashed against the manifest
(first open) against the same corpus reopened unchanged (its files remembered as verified).

The scale measurements run alone (the big corpus takes minutes and gigabytes)::

    python -m benchmarks.cases_corpus --records 200000 [--dir /tmp/corpus-bench] [--keep]

1. a synthetic corpus of ``--records`` 10-s records at 100 Hz written straight
   from arrays (a pool of heart-vector ECGs, shifted and with fresh noise per
   record) with ``build_corpus_from_arrays`` -- 200k records are 4.8 GB of int16;
2. the build rate with 2 worker processes per source layout, from synthetic
   folders in each real layout (small counts for the WFDB layouts; the rate
   includes starting the workers);
3. streamed loader throughput over the whole big corpus from the page cache
   (records/s in one process, B=256, 256 MB budget), after one warming pass;
4. RssAnon (anonymous memory, /proc/self/status) of a fresh process streaming
   a 20,000- and the 200,000-record corpus under the same budget (peak and the
   growth over a warmed-up loader);
5. two ranks (num_replicas=2) side by side against one process: RssAnon each
   and summed, and Pss (page-cache pages shared between them count half).
6. opening the big corpus for training: the first open (every shard file hashed,
   from the page cache just after the build) against a second (remembered unchanged).

The corpus folder is deleted at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROBE = r"""
import json, sys, time
import torch
from ecgfast.data.corpus import StreamingLoader, open_corpus

def status():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("RssAnon:", "RssFile:", "VmRSS:")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Pss:"):
            out["Pss"] = int(line.split()[1]) * 1024
    return out

torch.set_num_threads(1)
path, budget = sys.argv[1], float(sys.argv[2])
replicas, rank, passes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
c = open_corpus(path)
loader = StreamingLoader([(c, 1.0)], 256, seed=0, memory_budget_mb=budget, num_replicas=replicas, rank=rank)
warm = StreamingLoader([(c, 1.0)], 256, seed=0, memory_budget_mb=budget, epoch_samples=512)
for b in warm:
    pass
before = status()
peak = dict(before)
rates = []
for e in range(passes):
    loader.set_epoch(e)
    t0, n = time.perf_counter(), 0
    for i, b in enumerate(loader):
        n += len(b.index)
        if i % 50 == 0:
            s = status()
            peak = {k: max(peak[k], s[k]) for k in s}
    rates.append(n / (time.perf_counter() - t0))
    s = status()
    peak = {k: max(peak[k], s[k]) for k in s}
print(json.dumps({"windows": len(c), "before": before, "peak": peak, "records_per_s": rates}))
"""


def _probe(path, budget=256, replicas=1, rank=0, passes=2):
    return subprocess.Popen([sys.executable, "-c", PROBE, str(path), str(budget), str(replicas), str(rank),
                             str(passes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p):
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(err)
    return json.loads(out)


def make_big_corpus(out: Path, n_records: int, shard: int = 10000, pool_size: int = 1000, seed: int = 0) -> dict:
    from ecgfast.data.corpus import build_corpus_from_arrays
    from ecgfast.data.synthetic import draw_record, synthesize_ecg

    rng = np.random.default_rng(seed)
    pool = np.empty((pool_size, 12, 1000), np.int16)
    labels = np.zeros((pool_size, 5), np.uint8)
    for i in range(pool_size):
        r = np.random.default_rng([seed, i])
        classes, _ = draw_record(r)
        pool[i] = np.round(synthesize_ecg(r, classes, (100,))[100] * 1000).astype(np.int16)
        labels[i] = [c in classes for c in ("CD", "HYP", "MI", "NORM", "STTC")]

    noise = rng.integers(-15, 16, size=(pool_size, 12, 1000), dtype=np.int16)

    def chunks():
        for s in range(0, n_records, shard):
            n = min(shard, n_records - s)
            pick = rng.integers(0, pool_size, n)
            x = np.roll(pool[pick], int(rng.integers(0, 1000)), axis=2)
            x += noise[rng.integers(0, pool_size, n)]  # every record differs from its pool ECG
            yield x, np.arange(s, s + n), labels[pick]

    return build_corpus_from_arrays(out, chunks(), sampling_rate=100, signal_length=1000, name="synthetic-arrays")


def verify_timings(path: Path) -> dict:
    """Seconds to open ``path`` for training: first (every file hashed) and again (remembered)."""
    from ecgfast.data.corpus import open_corpus

    (path / ".manifest.json.verified").unlink(missing_ok=True)
    out = {}
    for name in ("first", "second"):
        t0 = time.perf_counter()
        v = open_corpus(path).verification
        out[name] = {"seconds": round(time.perf_counter() - t0, 3), "hashed": v["hashed"],
                     "MiB_hashed": round(v["bytes_hashed"] / 2**20, 1)}
    return out


def layout_build_rates(tmp: Path, counts: dict) -> dict:
    from ecgfast.data.corpus import build_corpus
    from ecgfast.data.sources.synthetic import write_layout

    rates = {}
    for layout, n in counts.items():
        src = tmp / f"src-{layout}"
        if layout == "ptbxl":
            from ecgfast.data import write_synthetic_ptbxl

            write_synthetic_ptbxl(src, n, 0, sampling_rates=(100,), progress=False, workers=2)
        else:
            write_layout(layout, src, n, 0)
        t0 = time.perf_counter()
        m = build_corpus(layout, src, tmp / f"corpus-{layout}", sampling_rate=100, workers=2,
                         shard_records=max(1, n // 8), progress=False)
        dt = time.perf_counter() - t0
        rates[layout] = {"records": m["totals"]["records"], "windows": m["totals"]["windows"], "seconds": round(dt, 2),
                         "records_per_s": round(m["totals"]["records"] / dt, 1)}
        print(f"build {layout:<13} {rates[layout]}", flush=True)
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200000)
    p.add_argument("--small", type=int, default=None, help="records of the small corpus (default records/10)")
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--skip-layouts", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="ecgfast-corpus-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    small_n = args.small or max(1, args.records // 10)
    report = {"records": args.records, "small": small_n, "cpus": os.cpu_count()}
    try:
        if not args.skip_layouts:
            report["build"] = layout_build_rates(tmp, {"ptbxl": 300, "cinc2021": 80, "mimic-iv-ecg": 200,
                                                       "code15": 2000, "numpy": 2000})
        t0 = time.perf_counter()
        make_big_corpus(tmp / "big", args.records)
        dt = time.perf_counter() - t0
        report["arrays_build"] = {"seconds": round(dt, 1), "records_per_s": round(args.records / dt)}
        print(f"arrays build: {report['arrays_build']}", flush=True)
        make_big_corpus(tmp / "small", small_n, seed=1)
        report["verify_big"] = verify_timings(tmp / "big")
        print(f"open big corpus: {report['verify_big']}", flush=True)
        for name in ("small", "big"):
            report[f"stream_{name}"] = r = _result(_probe(tmp / name, passes=2))
            print(f"stream {name}: {r['windows']} windows, {[round(x) for x in r['records_per_s']]} records/s, "
                  f"RssAnon peak {r['peak']['RssAnon'] / 2**20:.1f} MB (before {r['before']['RssAnon'] / 2**20:.1f})",
                  flush=True)
        ranks = [_probe(tmp / "big", replicas=2, rank=r, passes=1) for r in range(2)]
        report["two_ranks"] = rr = [_result(p) for p in ranks]
        one = report["stream_big"]
        print(f"two ranks: RssAnon {[round(x['peak']['RssAnon'] / 2**20, 1) for x in rr]} MB "
              f"(sum {sum(x['peak']['RssAnon'] for x in rr) / 2**20:.1f}) vs one {one['peak']['RssAnon'] / 2**20:.1f}; "
              f"Pss {[round(x['peak']['Pss'] / 2**20, 1) for x in rr]} vs one {one['peak']['Pss'] / 2**20:.1f} MB; "
              f"records/s {[round(x['records_per_s'][0]) for x in rr]}", flush=True)
        a, b = report["stream_small"]["peak"]["RssAnon"], one["peak"]["RssAnon"]
        report["rss_anon_ratio_big_vs_small"] = b / a
        print(f"RssAnon {args.records} vs {small_n} records: {b / a:.3f}x")
    finally:
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


class ShardsDataset:
    """The plain way to read a sharded corpus: a map-style Dataset over the shards' memory maps,
    one window per ``__getitem__`` (as float32 mV), batched by a ``DataLoader`` with a shuffling
    sampler and the default collate."""

    def __init__(self, corpus):
        self.shards = [np.load(corpus.root / f"{name}.npy", mmap_mode="r") for name in corpus.shard_names]
        self.labels = [np.load(corpus.root / f"{name}.labels.npy") for name in corpus.shard_names]
        self.offsets, self.scale = corpus.offsets, np.float32(1.0 / corpus.gain)

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, i):
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        r = i - int(self.offsets[k])
        return torch.from_numpy(self.shards[k][r] * self.scale), torch.from_numpy(self.labels[k][r].astype(np.float32))


def verification_cases(path: Path, windows: int):
    """Opening the corpus for training: every shard file hashed (first open, nothing remembered)
    against an unchanged corpus reopened (its files remembered by size, mtime, ctime, inode), and
    the cheap checks alone (names, counts, headers, sizes; ``verify=False``)."""
    from benchmarks.harness import Case
    from ecgfast.data.corpus import open_corpus

    memory = path / ".manifest.json.verified"
    size = sum(f.stat().st_size for f in path.glob("shard-*") if not f.name.endswith(".json"))

    def first():
        memory.unlink(missing_ok=True)
        assert open_corpus(path).verification["hashed"] > 0

    def remembered():
        assert open_corpus(path).verification["hashed"] == 0

    base = "open + verify, first (every shard file hashed)"
    return [Case("corpus", base, first, windows, "records", bytes_moved=size, repeat=5),
            Case("corpus", "open + verify, unchanged (remembered)", remembered, windows, "records", baseline=base,
                 repeat=5),
            Case("corpus", "open, cheap checks only (verify=False)", lambda: open_corpus(path, verify=False), windows,
                 "records", baseline=base, repeat=5)]


def cases(quick: bool):
    """For ``python -m benchmarks``: one epoch over a corpus on disk (from the page cache) at B=256,
    ``StreamingLoader`` against the plain ``DataLoader`` over ``ShardsDataset``, on equal resources,
    two ways: one core each (``DataLoader(num_workers=0)`` against the loader with one torch thread),
    and every core each (``num_workers`` = the cores, persistent across epochs as a user running
    several epochs sets it, against the loader with that many torch threads)."""
    from torch.utils.data import DataLoader

    from benchmarks.harness import Case
    from benchmarks.workdir import WORKDIR
    from ecgfast.data.corpus import StreamingLoader, open_corpus
    from ecgfast.data.corpus.build import FORMAT_VERSION

    n = 2000 if quick else 20000
    path = WORKDIR / f"corpus-arrays-{n}-v{FORMAT_VERSION}"  # a corpus per format: older checkouts keep theirs
    if not (path / "manifest.json").is_file():  # the build writes the manifest last
        make_big_corpus(path, n, pool_size=200)
    corpus = open_corpus(path)
    stream = StreamingLoader([(corpus, 1.0)], 256, seed=0)
    out = verification_cases(path, len(corpus))
    items = len(stream) * 256
    row = 12 * corpus.signal_length
    cores = max(1, min(os.cpu_count() or 1, torch.get_num_threads()))

    def plain_loader(workers):
        return DataLoader(ShardsDataset(corpus), batch_size=256, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(0), num_workers=workers,
                          persistent_workers=workers > 0)

    def epoch(loader, threads=None):
        def run():
            before = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                for _ in loader:
                    pass
            finally:
                torch.set_num_threads(before)
        return run

    for workers, threads, label in ((0, 1, "1 core"), (cores, cores, f"{cores} cores")):
        if workers == cores and cores == 1:
            continue
        base = f"DataLoader, {workers} workers ({label})"
        # with no workers the DataLoader's collate runs in this process: one torch thread there too
        plain = epoch(plain_loader(workers), 1 if workers == 0 else None)
        out += [Case("corpus", base, plain, items, "records", repeat=3),
                Case("corpus", f"StreamingLoader, {threads} thread{'s' if threads > 1 else ''} ({label})",
                     epoch(stream, threads), items, "records", baseline=base,
                     bytes_moved=items * row * (2 + 2 + 2 + 4), repeat=5)]
    return out


if __name__ == "__main__":
    sys.exit(main())
