"""``ecgfast corpus``: build pretraining corpora (shards + manifest) and inspect them.

    ecgfast corpus build --layout cinc2021 --source DIR --out DIR/corpus --sampling-rate 100 \\
        --workers 2 [--seconds 10] [--skip-bad] [--skip-missing] [--exclude-ptbxl PTBXL_CACHE.h5]
    ecgfast corpus info DIR/corpus/manifest.json [--verify]
    ecgfast corpus stream --corpus a/manifest.json:0.7 --corpus b/manifest.json:0.3 --batch-size 256 \\
        [--epoch-samples N] [--memory-budget-mb 256]   (reads one epoch, prints counts and rate)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ecgfast.errors import EcgfastError


def _corpus_arg(text: str):
    path, sep, weight = text.rpartition(":")
    if sep and path and not weight.startswith(("/", "\\")):
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 1.0


def _build(args) -> int:
    from ecgfast.data.corpus.build import build_corpus

    options = {}
    if args.source_rate is not None:
        options["sampling_rate"] = args.source_rate
    m = build_corpus(args.layout, args.source, args.out, sampling_rate=args.sampling_rate, seconds=args.seconds,
                     min_fraction=args.min_fraction, shard_records=args.shard_records, workers=args.workers,
                     skip_missing=args.skip_missing, skip_bad=args.skip_bad, exclude_ptbxl=args.exclude_ptbxl,
                     exclude_folds=tuple(args.exclude_folds), source_options=options,
                     on_stale="refuse" if args.refuse_stale else "rebuild", progress=not args.quiet)
    t = m["totals"]
    print(f"corpus {args.out}: {t['windows']} windows from {t['records']} records in {len(m['shards'])} shards "
          f"({m['built_now']} built now, {len(m['rebuilt_stale'])} stale rebuilt); skipped: {t['missing']} missing, "
          f"{t['bad']} bad; {t['short']} too short; {t['clipped_samples']} samples clipped")
    if args.exclude_ptbxl:
        print(f"PTB-XL folds {args.exclude_folds} duplicates dropped: {t['excluded_by_id']} by id, "
              f"{t['excluded_by_fingerprint']} by signal fingerprint")
    for msg in m["skipped_messages"][:5]:
        print(f"  skipped: {msg}", file=sys.stderr)
    return 0


def _info(args) -> int:
    from ecgfast.data.corpus.store import open_corpus

    c = open_corpus(args.manifest, verify=args.verify)
    print(repr(c))
    print(json.dumps({"layout": c.layout, "fingerprint_digest": c.fingerprint_digest, **c.totals}, indent=1))
    return 0


def _stream(args) -> int:
    from ecgfast.data.corpus.store import open_corpus
    from ecgfast.data.corpus.stream import StreamingLoader

    pairs = [(open_corpus(p), w) for p, w in map(_corpus_arg, args.corpus)]
    loader = StreamingLoader(pairs, args.batch_size, seed=args.seed, epoch_samples=args.epoch_samples,
                             memory_budget_mb=args.memory_budget_mb)
    loader.set_epoch(args.epoch)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch.index)
    dt = time.perf_counter() - t0
    print(f"{n} windows in {len(loader)} batches, {n / max(dt, 1e-9):,.0f} windows/s; per corpus: {loader.counts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ecgfast corpus", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="harmonise a corpus into shards + manifest")
    b.add_argument("--layout", required=True, choices=["ptbxl", "cinc2021", "mimic-iv-ecg", "code15", "numpy"])
    b.add_argument("--source", required=True, type=Path, help="the corpus folder (or .npy/.npz for numpy)")
    b.add_argument("--out", required=True, type=Path, help="output folder (shards + manifest.json)")
    b.add_argument("--sampling-rate", type=float, default=100, help="target rate in Hz (default 100)")
    b.add_argument("--seconds", type=float, default=10.0, help="window length in s (default 10)")
    b.add_argument("--min-fraction", type=float, default=0.5,
                   help="keep a remainder/short record padded if it fills this fraction of a window (default 0.5)")
    b.add_argument("--source-rate", type=float, default=None, help="numpy layout: the arrays' rate in Hz")
    b.add_argument("--shard-records", type=int, default=2048, help="records per shard (default 2048)")
    b.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    b.add_argument("--skip-missing", action="store_true", help="skip (and count) absent records instead of failing")
    b.add_argument("--skip-bad", action="store_true", help="skip (and count) invalid records instead of failing")
    b.add_argument("--exclude-ptbxl", type=Path, default=None,
                   help="a PTB-XL HDF5 cache: drop records duplicating its held-out folds")
    b.add_argument("--exclude-folds", type=int, nargs="+", default=[9, 10])
    b.add_argument("--refuse-stale", action="store_true", help="fail on a stale shard instead of rebuilding it")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    i = sub.add_parser("info", help="summarise a built corpus")
    i.add_argument("manifest", type=Path)
    i.add_argument("--verify", action="store_true", help="re-hash every shard against the manifest")
    s = sub.add_parser("stream", help="read one epoch through the streaming loader (a smoke test / benchmark)")
    s.add_argument("--corpus", action="append", required=True, help="MANIFEST[:WEIGHT], repeatable")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--epoch-samples", type=int, default=None)
    s.add_argument("--memory-budget-mb", type=float, default=256.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--epoch", type=int, default=0)
    args = p.parse_args(argv)
    try:
        return {"build": _build, "info": _info, "stream": _stream}[args.cmd](args)
    except EcgfastError as exc:
        print(f"ecgfast corpus: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
