"""Augmentation stage: two views of a (B, 12, 1000) batch at 100 Hz, all seven augmentations at their rates."""
from __future__ import annotations

import torch

from benchmarks.harness import Case
from benchmarks.plain_augment import PerSampleAugment


def cases(quick: bool) -> list[Case]:
    from ecgfast._extension import EXTENSION_AVAILABLE
    from ecgfast.augment import AugmentPipeline

    B, T = (64 if quick else 256), 1000
    x = torch.randn(B, 12, T) * 0.5
    loop = PerSampleAugment(100, seed=0)
    bytes_moved = B * 12 * T * 4 * 3  # read the input, write two views

    def per_sample():
        for i in range(B):
            loop(x[i]), loop(x[i])

    def pipeline(backend):
        pipe = AugmentPipeline(100, seed=0, backend=backend)
        return lambda: pipe(x)

    plain = "per-sample Python loop"
    out = [
        Case("augment", plain, per_sample, B, "samples", repeat=3),
        Case("augment", "torch reference (vectorised)", pipeline("torch"), B, "samples", baseline=plain,
             bytes_moved=bytes_moved, repeat=3),
        Case("augment", "Numba", pipeline("numba"), B, "samples", baseline=plain, bytes_moved=bytes_moved,
             repeat=10, warmup=2),
    ]
    if EXTENSION_AVAILABLE:
        out.append(Case("augment", f"C++ op ({torch.get_num_threads()} threads)", pipeline("cpp"), B, "samples",
                        baseline=plain, bytes_moved=bytes_moved, repeat=20, warmup=2))
    return out
