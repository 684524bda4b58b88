"""The roofline figures: the machine's matmul peak per precision, and the FLOP of a training step.

A step's floating-point work is counted with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matmuls, forward and backward: the operations that bound a CNN step);
the report divides it by the step's median time and by the measured matmul peak of the
step's precision (``matmul_GFLOPs`` for fp32, ``matmul_bf16_GFLOPs`` for bf16/fp16 autocast).
"""
from __future__ import annotations

import time

import torch

PEAK_KEYS = {"fp32": "matmul_GFLOPs", "bf16": "matmul_bf16_GFLOPs", "fp16": "matmul_fp16_GFLOPs"}


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, device: str = "cpu", repeat: int = 3) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` (the best of ``repeat`` after one warm-up: the peak, not the typical)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeat):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times)


def matmul_peaks(device: str = "cpu") -> dict:
    """``{"matmul_bf16_GFLOPs": ...}`` for the reduced precisions (fp32 is ``machine.matmul_flops``); bf16 only
    where it is native on the CPU (emulated bf16 has no peak worth quoting)."""
    from ecgfast.base.runtime import cpu_has_native_bf16

    out = {}
    if device != "cpu" or cpu_has_native_bf16():
        out["matmul_bf16_GFLOPs"] = matmul_peak(torch.bfloat16, device=device) / 1e9
    return out


def count_flops(fn) -> int:
    """Floating-point operations of one call of ``fn`` (forward and backward as it runs them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())

