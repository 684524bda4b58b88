"""Spawning gloo ranks for the data-parallel tests, with a deadline.

A rank that finished its work has been seen to hang at interpreter exit, joining gloo's
background thread; ``mp.spawn(join=True)`` would then wait forever and stall the suite. Here each
rank leaves with ``os._exit`` once its function returns (its results are already on disk), and
the parent joins with a deadline, killing every rank and failing the test if it passes.
"""
from __future__ import annotations

import os
import time
import traceback

import pytest
import torch.multiprocessing as mp


def _run_then_exit(rank, fn, args):
    code = 0
    try:
        fn(rank, *args)
    except BaseException:  # noqa: BLE001 - reported on stderr, then the exit code says it failed
        traceback.print_exc()
        code = 1
    os._exit(code)  # skip interpreter teardown (and its gloo thread join)


def spawn_ranks(fn, args, nprocs: int = 2, timeout: float = 240.0) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` spawned processes; fail the test on error or timeout."""
    context = mp.start_processes(_run_then_exit, args=(fn, args), nprocs=nprocs, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"{nprocs} gloo ranks did not finish within {timeout:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
