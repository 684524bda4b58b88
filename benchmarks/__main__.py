"""``python -m benchmarks [--quick] [--stages ...] [--json FILE]``: every stage against its plain version.

All stages run in one process and one sitting, after the machine itself is
measured (copy bandwidth, matmul FLOP/s), and one table is printed: median
time, min-max, throughput, the ratio to the stage's plain baseline, and where
it applies the fraction of copy bandwidth or matmul FLOP/s reached.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback

from benchmarks import machine
from benchmarks.harness import measure

STAGES = ("data", "augment", "losses", "train", "epoch", "eval")


def format_table(results, mach) -> str:
    by_name = {(r.case.stage, r.case.name): r for r in results}
    head = (f"{'stage':<12} {'case':<44} {'median':>10} {'min-max':>19} {'throughput':>20} "
            f"{'vs plain':>9} {'of peak':>8}  extra")
    lines = [head, "-" * len(head)]
    for r in results:
        c = r.case
        base = by_name.get((c.stage, c.baseline)) if c.baseline else None
        ratio = f"{base.median / r.median:8.1f}x" if base else ("   plain" if _is_baseline(c, results) else "")
        peak = ""
        if c.bytes_moved:
            peak = f"{c.bytes_moved / r.median / 1e9 / mach['copy_bandwidth_GBps']:7.0%}"
        elif c.flops:
            peak = f"{c.flops / r.median / 1e9 / mach['matmul_GFLOPs']:7.0%}"
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.extra.items())
        span = f"{_t(min(r.times))}-{_t(max(r.times))}"
        rate = f"{r.throughput:,.0f} {c.unit}/s"
        lines.append(f"{c.stage:<12} {c.name[:44]:<44} {_t(r.median):>10} {span:>19} {rate:>20} "
                     f"{ratio:>9} {peak:>8}  {extra}")
    return "\n".join(lines)


def _is_baseline(case, results) -> bool:
    return any(r.case.baseline == case.name and r.case.stage == case.stage for r in results)


def _t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run of every stage")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--json", default=None, help="write results and the machine description here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    mach = machine.describe()
    print("machine: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in mach.items()),
          flush=True)
    results, failures = [], {}
    for stage in args.stages:
        try:
            module = importlib.import_module(f"benchmarks.cases_{stage}")
            for case in module.cases(args.quick):
                print(f"  {case.stage}: {case.name} ...", flush=True)
                results.append(measure(case, repeat=min(case.repeat, 3) if args.quick else None))
        except Exception as exc:  # a broken stage is reported, the others still run
            failures[stage] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(f"  {stage}: FAILED: {failures[stage]}", file=sys.stderr, flush=True)
    print()
    print(format_table(results, mach))
    for stage, why in failures.items():
        print(f"{stage:<12} FAILED: {why}")
    wall = time.perf_counter() - t0
    print(f"\n{'quick' if args.quick else 'full'} run: {wall:.0f} s wall time")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": mach, "quick": args.quick, "wall_s": wall, "failures": failures,
                       "results": [{"stage": r.case.stage, "case": r.case.name, "times_s": r.times,
                                    "median_s": r.median, "items": r.case.items, "unit": r.case.unit,
                                    "baseline": r.case.baseline, "extra": dict(r.case.extra.items())} for r in results]},
                      f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
