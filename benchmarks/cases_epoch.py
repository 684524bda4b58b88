"""Epoch stage: one SimCLR epoch over PTB-XL-sized synthetic data (17,489 records at 100 Hz, full run).

Plain: WFDB reads and per-sample augmentation in a Dataset, DataLoader workers,
the plain fp32 step. ecgfast: the cache, ECGBatchLoader, the fused augmentation
and loss, at the entry points' default precision (--precision auto) and, where that is not fp32, at fp32 too
(the fp32-vs-fp32 ratio), each with --memory-format auto. All timed whole, once.
"""
from __future__ import annotations

import os
import time

import torch

from benchmarks.harness import Case
from benchmarks.plain_pipeline import plain_epoch
from benchmarks.plain_step import PlainSimCLRStep
from benchmarks.workdir import synthetic_cache, synthetic_root


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    from ecgfast.data import ECGBatchLoader, load_metadata

    n = 512 if quick else 17489
    B = 64 if quick else 256
    root = synthetic_root(n)
    cache = synthetic_cache(n)
    paths = [str(root / f) for f in load_metadata(root).filenames(100)]
    from benchmarks.cases_train import SHORT_FORMATS, StepTimeShare, ecgfast_step

    cuda = str(device).startswith("cuda")
    from ecgfast.base.runtime import resolve_precision

    precision = resolve_precision("auto", torch.device(device))
    plain_step = PlainSimCLRStep(device=device)
    loader = ECGBatchLoader(cache, range(len(cache)), batch_size=B, seed=0, drop_last=True, device=device)
    steps = len(loader)

    def ecgfast_epoch_case(step_precision: str) -> Case:
        """One ecgfast epoch at ``step_precision`` with the entry points' other defaults (--memory-format auto,
        --compile auto); the loader's time counts as data (the share reported is data + augmentation)."""
        ecg_step = ecgfast_step("simclr", step_precision, compiled=cuda, device=device)
        timings = ecg_step.timings
        timings["data_s"] = 0.0

        def ecgfast_epoch():
            batches = iter(loader)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                timings["data_s"] += time.perf_counter() - t0
                if batch is None:
                    return
                ecg_step(batch.signals)

        fmt = SHORT_FORMATS[ecg_step.memory_format]
        return Case("epoch", f"ecgfast epoch ({step_precision}, {fmt}{', compiled' if cuda else ''}, {n} rec)",
                    ecgfast_epoch, steps * B, "samples", baseline=plain, repeat=1, warmup=0 if not quick else 1,
                    extra=StepTimeShare(timings))

    plain = f"plain epoch (WFDB + per-sample aug, fp32, {n} rec)"
    workers = min(2 if not cuda else 8, os.cpu_count() or 1)  # a seed-style run on a GPU box uses its cores
    out = [Case("epoch", plain, lambda: plain_epoch(paths, plain_step, B, workers), steps * B, "samples",
                repeat=1, warmup=0),
           ecgfast_epoch_case(precision)]
    if precision != "fp32":  # the fp32-vs-fp32 ratio beside the default precision's
        out.append(ecgfast_epoch_case("fp32"))
    return out
