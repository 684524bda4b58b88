"""``python -m benchmarks [--quick] [--device cpu|cuda] [--stages ...] [--json FILE]``: every stage against
its plain version.

All stages run in one process and one sitting, after the machine itself is
measured (copy bandwidth, matmul FLOP/s), and one table is printed: median
time, min-max, throughput, the ratio to the stage's plain baseline, and where
it applies the fraction of copy bandwidth or matmul FLOP/s reached.

``--device cuda`` runs the stages that have device cases (augmentation, losses)
on the GPU: timed with CUDA events, with peak extra GPU memory, and the
achieved GB/s or TFLOP/s beside the GPU's datasheet peaks.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback

from benchmarks import machine
from benchmarks.harness import gpu_peaks, measure
from benchmarks.roofline import PEAK_KEYS

STAGES = ("data", "corpus", "augment", "losses", "train", "backbones", "epoch", "eval")


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
        figures = dict(c.extra.items())  # items(): StepTimeShare computes its figures there
        if c.device.startswith("cuda"):
            peak, achieved = _gpu_peak(c, r, mach)
            figures.update(achieved)
        elif c.bytes_moved:
            peak = f"{c.bytes_moved / r.median / 1e9 / mach['copy_bandwidth_GBps']:7.0%}"
        elif c.flops:
            achieved = c.flops / r.median / 1e9
            figures["GFLOP/s"] = float(achieved)
            ceiling = mach.get(PEAK_KEYS.get(c.precision, "matmul_GFLOPs"))
            peak = f"{achieved / ceiling:7.0%}" if ceiling else ""
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        span = f"{_t(min(r.times))}-{_t(max(r.times))}"
        rate = f"{r.throughput:,.0f} {c.unit}/s"
        lines.append(f"{c.stage:<12} {c.name[:44]:<44} {_t(r.median):>10} {span:>19} {rate:>20} "
                     f"{ratio:>9} {peak:>8}  {extra}")
    return "\n".join(lines)


def _gpu_peak(case, result, mach) -> tuple[str, dict]:
    """The fraction of the GPU's peak bandwidth (bytes_moved) or FP32 FLOP/s (flops) reached, and the
    achieved figure with the peak beside it."""
    if case.bytes_moved:
        achieved, peak, unit = case.bytes_moved / result.median / 1e9, mach.get("gpu_peak_GBps"), "GB/s"
    elif case.flops and case.precision in ("bf16", "fp16"):  # against the matmul peak measured in this run
        achieved, peak, unit = case.flops / result.median / 1e12, mach.get("gpu_matmul_bf16_TFLOPs"), "TFLOP/s"
    elif case.flops:
        achieved, peak, unit = case.flops / result.median / 1e12, mach.get("gpu_peak_fp32_TFLOPs"), "TFLOP/s"
    else:
        return "", {}
    figures = {unit: float(achieved)}
    if not peak:
        return "", figures
    figures[f"peak_{unit}"] = float(peak)
    return f"{achieved / peak:7.0%}", figures


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
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where the augmentation and loss cases run (default: cpu, every stage)")
    args = p.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: torch.cuda.is_available() is False")
    t0 = time.perf_counter()
    mach = machine.describe()
    if args.device == "cuda":
        mach.update(_describe_gpu())
    print("machine: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in mach.items()),
          flush=True)
    results, failures = [], {}
    for stage in args.stages:
        try:
            module = importlib.import_module(f"benchmarks.cases_{stage}")
            if args.device == "cpu":
                stage_cases = module.cases(args.quick)
            elif "device" in inspect.signature(module.cases).parameters:
                stage_cases = module.cases(args.quick, device=args.device)
            else:
                print(f"  {stage}: no {args.device} cases (CPU only), skipped", flush=True)
                continue
            for case in stage_cases:
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
            json.dump({"machine": mach, "device": args.device, "quick": args.quick, "wall_s": wall,
                       "failures": failures,
                       "results": [{"stage": r.case.stage, "case": r.case.name, "times_s": r.times,
                                    "median_s": r.median, "items": r.case.items, "unit": r.case.unit,
                                    "baseline": r.case.baseline, "device": r.case.device,
                                    "extra": dict(r.case.extra.items())} for r in results]},
                      f, indent=1)
    return 1 if failures else 0


def _describe_gpu() -> dict:
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    out = {"gpu": props.name, "gpu_memory_GiB": props.total_memory / 2**30, "gpu_sms": props.multi_processor_count}
    from benchmarks.roofline import matmul_peak

    out["gpu_matmul_bf16_TFLOPs"] = matmul_peak(torch.bfloat16, n=8192, device="cuda", repeat=5) / 1e12
    peaks = gpu_peaks(props.name)
    if peaks is None:
        print(f"  (no datasheet peaks for {props.name!r} in benchmarks/harness.py GPU_PEAKS: no 'of peak' column)")
    else:
        out["gpu_peak_GBps"], out["gpu_peak_fp32_TFLOPs"] = peaks
    return out


if __name__ == "__main__":
    sys.exit(main())
