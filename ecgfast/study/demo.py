"""``ecgfast demo``: the whole job on a synthetic PTB-XL, end to end, on a laptop-sized budget.

Writes a synthetic PTB-XL, caches it, pretrains SimCLR, fine-tunes it on 10 %
of the labels, trains the supervised baseline and the random-init linear probe
on the same labels (plus the 100 %-label supervised reference), evaluates each on
fold 10 and prints the comparison table and the wall time of every stage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from ecgfast.train.common import positive_int, unit_fraction

    p = argparse.ArgumentParser(prog="ecgfast demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--records", type=positive_int, default=3000, help="synthetic records (default 3000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--pretrain-epochs", type=positive_int, default=25)
    p.add_argument("--finetune-epochs", type=positive_int, default=25)
    p.add_argument("--label-fraction", type=unit_fraction, default=0.1)
    from ecgfast.cli.flags import add_device_flag

    add_device_flag(p)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from ecgfast.train.common import run_command

    return run_command("demo", _demo, args)


def _demo(args) -> int:
    from ecgfast.data import ensure_cache, write_synthetic_ptbxl
    from ecgfast.data.info import summarize
    from ecgfast.study import experiment
    from ecgfast.train.config import DataConfig, RunConfig
    from ecgfast.base.checkpoint import atomic_write_text

    root, cache_path = args.out / "PTB-XL", args.out / "ptbxl100.h5"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    print(f"[1/3] synthetic PTB-XL: {args.records} records at 100 Hz -> {root}", flush=True)
    if not (root / "ptbxl_database.csv").is_file():
        write_synthetic_ptbxl(root, args.records, seed=0, sampling_rates=(100,), progress=not args.no_progress)
    timings["synthesize"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    print(f"[2/3] HDF5 cache -> {cache_path}", flush=True)
    cache = ensure_cache(root, cache_path, 100, workers=2, progress=not args.no_progress)
    timings["cache"] = time.perf_counter() - t1
    print(summarize(cache.folds, cache.labels, cache.classes), flush=True)

    print("[3/3] SimCLR pretraining, fine-tuning, supervised baseline, random-init probe, evaluation",
          flush=True)
    exp = experiment.ExperimentConfig(
        data=DataConfig(data_root=root, cache=cache_path), run=RunConfig(device=args.device, progress=not args.no_progress),
        out=args.out / "experiment", arms=("simclr", "supervised", "random-init-probe"), seeds=tuple(args.seeds),
        label_fractions=(args.label_fraction,), pretrain_epochs=args.pretrain_epochs, pretrain_batch_size=128,
        finetune_epochs=args.finetune_epochs, probe_epochs=200)
    table = experiment.run(exp, timings)
    timings["total"] = time.perf_counter() - t0
    atomic_write_text(args.out / "timings.json", json.dumps(timings, indent=1))
    print("\n" + table)
    print("\nwall time per stage:")
    for k, v in timings.items():
        print(f"  {k:<40} {v:7.1f} s")
    print(f"\nresults, plots and checkpoints in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
