"""What every benchmark stage provides, and how one case is timed.

A stage module ``benchmarks/cases_<stage>.py`` defines ``cases(quick: bool)
-> list[Case]``: each case is one callable doing a fixed amount of work on
inputs prepared beforehand. The plain version of the stage is a case too, and
every other case names it as ``baseline`` so the report shows ratios measured
side by side in one run. ``benchmarks/bench_<stage>.py`` feeds the same cases
(their quick sizes) to pytest-benchmark through ``pytest_benchmark_test``.

``python -m benchmarks --device cuda`` passes ``device="cuda"`` to the stages
whose ``cases`` take it; their cases carry ``device`` and are timed with CUDA
events (the GPU's own clock, after a synchronize), beside the GPU's peaks.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    stage: str                      # e.g. "augment"
    name: str                       # e.g. "cpp (2 threads)"
    fn: Callable[[], Any]           # one timed call; inputs prepared beforehand
    items: int                      # work items per call (for throughput)
    unit: str = "samples"           # what an item is: samples, records, pairs ...
    baseline: str | None = None     # name of the plain case of the same stage
    bytes_moved: int | None = None  # bytes read+written per call: fraction of copy bandwidth
    flops: int | None = None        # floating-point operations per call: fraction of matmul FLOP/s
    precision: str = "fp32"         # whose matmul peak ``flops`` is held against (benchmarks.roofline)
    repeat: int = 5                 # timed calls (the median is reported)
    warmup: int = 1                 # untimed calls first (JIT, caches)
    extra: dict = field(default_factory=dict)  # other figures to report, e.g. {"peak_MB": 123}
    device: str = "cpu"             # where the work runs: "cuda" cases are timed with CUDA events


def pytest_benchmark_test(stage: str):
    """A pytest-benchmark test over the stage's quick cases, one parametrized test per case."""
    import importlib

    import pytest

    cases = importlib.import_module(f"benchmarks.cases_{stage}").cases(quick=True)

    @pytest.mark.parametrize("case", cases, ids=[f"{c.stage}:{c.name}" for c in cases])
    def test(benchmark, case):
        benchmark.group = case.stage
        benchmark.extra_info.update(items=case.items, unit=case.unit, baseline=case.baseline)
        benchmark.pedantic(case.fn, rounds=max(case.repeat, 1), warmup_rounds=case.warmup)

    return test


@dataclass
class Result:
    case: Case
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def throughput(self) -> float:
        return self.case.items / self.median


def measure(case: Case, repeat: int | None = None, warmup: int | None = None) -> Result:
    """Time ``case.fn``: ``warmup`` untimed calls, then ``repeat`` timed ones."""
    for _ in range(case.warmup if warmup is None else warmup):
        case.fn()
    repeat = case.repeat if repeat is None else repeat
    if case.device.startswith("cuda"):
        return Result(case, _cuda_times(case.fn, repeat))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        case.fn()
        times.append(time.perf_counter() - t0)
    return Result(case, times)


def _cuda_times(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds per call between two CUDA events: the GPU's time, host-side launch gaps included."""
    import torch

    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()  # nothing queued before the start event
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


def peak_extra_mb(fn: Callable[[], Any], device: str) -> float | None:
    """Peak device memory one call allocates beyond what was allocated before it (MiB); None on the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    gc.collect()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def release_device_memory(device: str) -> None:
    """After an out-of-memory probe: drop the cached blocks so the next case starts clean."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


# Datasheet peaks: memory bandwidth (GB/s) and dense FP32 without tensor cores (TFLOP/s; the
# NT-Xent matmuls run in IEEE float32 by default). Matched by substring of the device name, in order.
GPU_PEAKS = (
    ("H100 NVL", 3900, 60.0),
    ("H100 PCIe", 2000, 51.0),
    ("H100", 3350, 67.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("GH200", 4000, 67.0),
    ("H200", 4800, 67.0),
    ("A100-SXM4-80GB", 2039, 19.5),
    ("A100 80GB PCIe", 1935, 19.5),
    ("A100", 1555, 19.5),  # 40 GB
    ("L40S", 864, 91.6),
    ("L4", 300, 30.3),
    ("A10", 600, 31.2),
    ("RTX 4090", 1008, 82.6),
)


def gpu_peaks(name: str) -> tuple[float, float] | None:
    """(GB/s, FP32 TFLOP/s) of a GPU by its torch.cuda.get_device_name(), or None if not in the table."""
    for key, gbps, tflops in GPU_PEAKS:
        if key in name:
            return float(gbps), tflops
    return None
