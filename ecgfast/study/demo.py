"""The whole job on a synthetic PTB-XL, end to end, on a laptop-sized budget (``ecgfast demo``).

Writes a synthetic PTB-XL, caches it, pretrains SimCLR, fine-tunes it on 10 %
of the labels, trains the supervised baseline and the random-init linear probe
on the same labels (plus the 100 %-label supervised reference), evaluates each on
fold 10, and returns the comparison table and the wall time of every stage.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger("ecgfast")


def run_demo(out: Path, records: int = 3000, seeds: tuple = (42,), pretrain_epochs: int = 25,
             finetune_epochs: int = 25, label_fraction: float = 0.1, device: str = "auto",
             progress: bool = True) -> tuple[str, dict[str, float]]:
    """(the comparison table, seconds per stage); the stages are logged as they start."""
    from ecgfast.base.checkpoint import atomic_write_text
    from ecgfast.data import ensure_cache, write_synthetic_ptbxl
    from ecgfast.data.info import summarize
    from ecgfast.study import experiment
    from ecgfast.train.config import DataConfig, RunConfig

    out = Path(out)
    root, cache_path = out / "PTB-XL", out / "ptbxl100.h5"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    log.info(f"[1/3] synthetic PTB-XL: {records} records at 100 Hz -> {root}")
    if not (root / "ptbxl_database.csv").is_file():
        write_synthetic_ptbxl(root, records, seed=0, sampling_rates=(100,), progress=progress)
    timings["synthesize"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    log.info(f"[2/3] HDF5 cache -> {cache_path}")
    cache = ensure_cache(root, cache_path, 100, workers=2, progress=progress)
    timings["cache"] = time.perf_counter() - t1
    log.info(summarize(cache.folds, cache.labels, cache.classes))

    log.info("[3/3] SimCLR pretraining, fine-tuning, supervised baseline, random-init probe, evaluation")
    exp = experiment.ExperimentConfig(
        data=DataConfig(data_root=root, cache=cache_path), run=RunConfig(device=device, progress=progress),
        out=out / "experiment", arms=("simclr", "supervised", "random-init-probe"), seeds=tuple(seeds),
        label_fractions=(label_fraction,), pretrain_epochs=pretrain_epochs, pretrain_batch_size=128,
        finetune_epochs=finetune_epochs, probe_epochs=200)
    table = experiment.run(exp, timings)
    timings["total"] = time.perf_counter() - t0
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=1))
    return table, timings
