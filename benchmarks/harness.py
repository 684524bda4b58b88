"""What every benchmark stage provides, and how one case is timed.

A stage module ``benchmarks/cases_<stage>.py`` defines ``cases(quick: bool)
-> list[Case]``: each case is one callable doing a fixed amount of work on
inputs prepared beforehand. The plain version of the stage is a case too, and
every other case names it as ``baseline`` so the report shows ratios measured
side by side in one run. ``benchmarks/bench_<stage>.py`` feeds the same cases
to pytest-benchmark.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable


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
    repeat: int = 5                 # timed calls (the median is reported)
    warmup: int = 1                 # untimed calls first (JIT, caches)
    extra: dict = field(default_factory=dict)  # other figures to report, e.g. {"peak_MB": 123}


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
    times = []
    for _ in range(case.repeat if repeat is None else repeat):
        t0 = time.perf_counter()
        case.fn()
        times.append(time.perf_counter() - t0)
    return Result(case, times)
