"""``ecgfast corpus``: build pretraining corpora (shards + manifest) and inspect them.

    ecgfast corpus build --layout cinc2021 --source DIR --out DIR/corpus --sampling-rate 100 \\
        --workers 2 [--seconds 10] [--skip-bad] [--skip-missing] [--exclude-ptbxl PTBXL_CACHE.h5]
    ecgfast corpus info DIR/corpus/manifest.json [--verify]
    ecgfast corpus upgrade DIR/corpus/manifest.json   (a version-1 manifest -> this version, in place)
    ecgfast corpus stream --corpus a/manifest.json:0.7 --corpus b/manifest.json:0.3 --batch-size 256 \\
        [--epoch-samples N] [--memory-budget-mb 256]   (reads one epoch, prints counts and rate)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from ecgfast.base.errors import DataError
from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import non_negative_int, number, positive_float, positive_int, unit_fraction
from ecgfast.data.records import RATE_RANGE
from ecgfast.train.config import Range

# the target rate: within the readers' RATE_RANGE
sampling_rate = number(float, [Range(*RATE_RANGE, note="Hz")])
fold = number(int, [Range(1, 10, text="a PTB-XL fold in 1-10")])


def _corpus_arg(text: str):
    """MANIFEST[:WEIGHT]; a weight must be a finite number > 0 (a path may itself hold ':')."""
    path, sep, weight = text.rpartition(":")
    if sep and path and not weight.startswith(("/", "\\")):
        try:
            w = float(weight)
        except ValueError:
            return text, 1.0
        if not math.isfinite(w) or w <= 0:
            raise argparse.ArgumentTypeError(f"weight of {path} must be a finite number > 0, got {weight}")
        return path, w
    return text, 1.0


def _out_folder(text: str) -> Path:
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is an existing file; name a folder (new, or a corpus to resume)")
    return p


def _build(args) -> int:
    from ecgfast.data.corpus.build import build_corpus

    options = {}
    if args.source_rate is not None:
        options["sampling_rate"] = args.source_rate
    if args.adc_gain is not None:
        if args.layout != "numpy":
            raise DataError("--adc-gain applies to --layout numpy only (WFDB headers carry their own gains)")
        options["adc_gain"] = args.adc_gain
    if args.max_record_samples is not None:
        options["max_record_samples"] = args.max_record_samples
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
    if t["windows"] == 0:  # a manifest is written (for inspection) but nothing could train on it
        raise DataError(f"corpus {args.out} is empty: no record gave a window ({t['records']} read, "
                        f"{t['missing']} missing, {t['bad']} bad, {t['short']} too short)")
    return 0


def _info(args) -> int:
    from ecgfast.data.corpus.store import open_corpus

    c = open_corpus(args.manifest, verify="full" if args.verify else False)
    print(repr(c) + ("  [empty: holds no windows]" if len(c) == 0 else ""))
    print(json.dumps({"layout": c.layout, "fingerprint_digest": c.fingerprint_digest, **c.totals}, indent=1))
    if args.verify:
        v = c.verification
        print(f"verified: {v['files']} shard files hashed ({v['bytes_hashed'] / 2**20:,.1f} MiB in "
              f"{v['seconds']:.2f} s), all match the manifest")
    return 0


def _upgrade(args) -> int:
    from ecgfast.data.corpus.build import FORMAT_VERSION, upgrade_corpus
    from ecgfast.data.corpus.store import open_corpus

    _, upgraded = upgrade_corpus(args.manifest)
    c = open_corpus(args.manifest)  # what training will do: every file checked against the new manifest
    how = "upgraded to" if upgraded else "already"
    print(f"{c.path}: {how} format version {FORMAT_VERSION} ({len(c.shard_names)} shards, {len(c)} windows, "
          f"fingerprint {c.fingerprint_digest[:12]}… unchanged)")
    return 0


def _stream(args) -> int:
    from ecgfast.data.corpus.store import open_corpus
    from ecgfast.data.corpus.stream import StreamingLoader

    pairs = [(open_corpus(p), w) for p, w in args.corpus]
    loader = StreamingLoader(pairs, args.batch_size, seed=args.seed, epoch_samples=args.epoch_samples,
                             memory_budget_mb=args.memory_budget_mb)
    loader.set_epoch(args.epoch)
    for c in loader.corpora:
        v = c.verification
        print(f"{c.path}: {v['files']} shard files verified ({v['hashed']} hashed, {v['remembered']} remembered "
              f"unchanged) in {v['seconds']:.2f} s", file=sys.stderr)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch.index)
    dt = time.perf_counter() - t0
    print(f"{n} windows in {len(loader)} batches, {n / max(dt, 1e-9):,.0f} windows/s; per corpus: {loader.counts}")
    return 0


def main(argv: list[str] | None = None, prog: str = "ecgfast corpus", command: str = "corpus") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="harmonise a corpus into shards + manifest")
    b.add_argument("--layout", required=True, choices=["ptbxl", "cinc2021", "mimic-iv-ecg", "code15", "numpy"])
    b.add_argument("--source", required=True, type=Path, help="the corpus folder (or .npy/.npz for numpy)")
    b.add_argument("--out", required=True, type=_out_folder, help="output folder (shards + manifest.json)")
    b.add_argument("--sampling-rate", type=sampling_rate, default=100, help="target rate in Hz (default 100)")
    b.add_argument("--seconds", type=positive_float, default=10.0, help="window length in s (default 10)")
    b.add_argument("--min-fraction", type=unit_fraction, default=0.5,
                   help="keep a remainder/short record padded if it fills this fraction (0, 1] of a window "
                        "(default 0.5)")
    b.add_argument("--source-rate", type=sampling_rate, default=None, help="numpy layout: the arrays' rate in Hz")
    b.add_argument("--adc-gain", type=positive_float, default=None,
                   help="numpy layout: counts per mV of the arrays (required for integer arrays; 1000 for uV)")
    b.add_argument("--max-record-samples", type=positive_int, default=None,
                   help="refuse records longer than this many samples per lead (default 2**21, bounds memory)")
    b.add_argument("--shard-records", type=positive_int, default=2048, help="records per shard (default 2048)")
    b.add_argument("--workers", type=positive_int, default=1, help="processes (default 1)")
    b.add_argument("--skip-missing", action="store_true", help="skip (and count) absent records instead of failing")
    b.add_argument("--skip-bad", action="store_true", help="skip (and count) invalid records instead of failing")
    b.add_argument("--exclude-ptbxl", type=Path, default=None,
                   help="a PTB-XL HDF5 cache: drop records duplicating its held-out folds")
    b.add_argument("--exclude-folds", type=fold, nargs="+", default=[9, 10],
                   help="PTB-XL folds (1-10) whose duplicates --exclude-ptbxl drops (default 9 10)")
    b.add_argument("--refuse-stale", action="store_true", help="fail on a stale shard instead of rebuilding it")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    i = sub.add_parser("info", help="summarise a built corpus")
    i.add_argument("manifest", type=Path)
    i.add_argument("--verify", action="store_true",
                   help="re-hash every shard file against the manifest (even those remembered as verified)")
    u = sub.add_parser("upgrade", help="upgrade a version-1 corpus manifest in place (adds label/metadata hashes)")
    u.add_argument("manifest", type=Path)
    s = sub.add_parser("stream", help="read one epoch through the streaming loader (a smoke test / benchmark)")
    s.add_argument("--corpus", action="append", required=True, type=_corpus_arg,
                   help="MANIFEST[:WEIGHT] (weight > 0), repeatable")
    s.add_argument("--batch-size", type=positive_int, default=256)
    s.add_argument("--epoch-samples", type=positive_int, default=None)
    s.add_argument("--memory-budget-mb", type=positive_float, default=256.0)
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.add_argument("--epoch", type=non_negative_int, default=0)
    args = p.parse_args(argv)
    # EcgfastError and file-system errors: one line "ecgfast corpus: error: ...", exit 1
    commands = {"build": _build, "info": _info, "stream": _stream, "upgrade": _upgrade}
    return run_command(command, commands[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
