"""What the machine can do, measured in the same run as the benchmarks."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time

import numpy as np
import torch


def _median_time(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes/s of a large tensor copy (read + write counted), with torch's threads."""
    src = torch.empty(nbytes // 4, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    return 2 * nbytes / _median_time(lambda: dst.copy_(src))


def matmul_flops(n: int = 2048) -> float:
    """fp32 FLOP/s of an n x n matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _median_time(lambda: torch.mm(a, b), repeat=3)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict:
    import numba

    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        gcc = "unknown"
    from benchmarks.roofline import matmul_peaks
    from ecgfast.base.extension import EXTENSION_AVAILABLE

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "compiler": gcc,
        "extension": EXTENSION_AVAILABLE,
        "copy_bandwidth_GBps": copy_bandwidth() / 1e9,
        "matmul_GFLOPs": matmul_flops() / 1e9,
        **matmul_peaks("cpu"),  # the bf16 peak where bf16 is native: the roofline of the bf16 steps
    }
