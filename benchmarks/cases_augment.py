"""Augmentation stage: two views of a (B, 12, 1000) batch at 100 Hz, all seven augmentations at their rates."""
from __future__ import annotations

import torch

from benchmarks.harness import Case, peak_extra_mb
from benchmarks.plain_augment import PerSampleAugment


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    if device != "cpu":
        return device_cases(quick, device)
    from ecgfast.augment import AugmentPipeline
    from ecgfast.base.extension import EXTENSION_AVAILABLE

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

    def agreement(backend) -> dict:
        """How far the backend's views are from the torch reference's on this input (same draws):
        the share of elements that differ at all, and the largest difference (mV)."""
        ref = torch.stack(AugmentPipeline(100, seed=0, backend="torch")(x, step=0))
        d = (torch.stack(AugmentPipeline(100, seed=0, backend=backend)(x, step=0)) - ref).abs()
        return {"differ_vs_torch": f"{(d > 0).double().mean().item():.1%}", "max_diff": float(d.max())}

    plain = "per-sample Python loop"
    out = [
        Case("augment", plain, per_sample, B, "samples", repeat=3),
        Case("augment", "torch reference (vectorised)", pipeline("torch"), B, "samples", baseline=plain,
             bytes_moved=bytes_moved, repeat=3),
        Case("augment", "Numba", pipeline("numba"), B, "samples", baseline=plain, bytes_moved=bytes_moved,
             repeat=10, warmup=2, extra=agreement("numba")),
    ]
    if EXTENSION_AVAILABLE:
        full = f"C++ op ({torch.get_num_threads()} threads)"
        out.append(Case("augment", full, pipeline("cpp"), B, "samples",
                        baseline=plain, bytes_moved=bytes_moved, repeat=20, warmup=2, extra=agreement("cpp")))
        # Views beyond the seven: 2.5 s crops with the random-resized-crop (views a quarter of the record).
        crops = AugmentPipeline(100, seed=0, backend="cpp", crop_seconds=2.5, resized_crop_min=0.5)
        out.append(Case("augment", "C++ op, 2.5 s resized crops", lambda: crops(x), B, "samples", baseline=full,
                        bytes_moved=B * 12 * (T + 2 * 250) * 4, repeat=20, warmup=2))
    return out


def device_cases(quick: bool, device: str) -> list[Case]:
    """On one device (a GPU): the torch reference pipeline vs the fused op, the latter both as a whole
    pipeline step (parameters drawn on the host, copied from pinned memory) and as the kernel alone."""
    from ecgfast.augment import AugmentPipeline
    from ecgfast.base.extension import EXTENSION_AVAILABLE

    dev_type = torch.device(device).type
    if not (EXTENSION_AVAILABLE and torch._C._dispatch_has_kernel_for_dispatch_key(
            "ecgfast::augment_views", dev_type.upper())):
        raise RuntimeError(f"ecgfast._C has no {dev_type} kernel for augment_views: rebuild it with the CUDA "
                           "toolkit (CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e .)")
    B, T = (256 if quick else 2048), 1000
    x = (torch.randn(B, 12, T) * 0.5).to(device)
    bytes_moved = B * 12 * T * 4 * 3  # read the input, write two views
    reference = AugmentPipeline(100, seed=0, backend="torch")
    fused = AugmentPipeline(100, seed=0, backend="cpp")
    params = fused.draw(B, T, step=0).to(device)
    crop_params = AugmentPipeline(100, seed=0, crop_seconds=2.5, resized_crop_min=0.5).draw(B, T, step=0).to(device)

    def case(name, fn, **kw):
        fn()  # compile/initialise before the memory probe
        peak = peak_extra_mb(fn, device)
        extra = {} if peak is None else {"peak_MB": peak}
        return Case("augment", name, fn, B, "samples", bytes_moved=bytes_moved, device=device, extra=extra, **kw)

    plain = f"torch reference ({dev_type})"
    return [
        case(plain, lambda: reference(x), repeat=5),
        case(f"fused op, pipeline step ({dev_type})", lambda: fused(x), baseline=plain, repeat=20, warmup=3),
        case(f"fused op, kernel only ({dev_type})", lambda: torch.ops.ecgfast.augment_views(x, params, 100.0),
             baseline=plain, repeat=20, warmup=3),
        case(f"fused op, 2.5 s resized crops, kernels only ({dev_type})",
             lambda: torch.ops.ecgfast.augment_views(x, crop_params, 100.0, 250), baseline=plain, repeat=20, warmup=3),
    ]
