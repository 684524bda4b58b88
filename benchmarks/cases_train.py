"""Training-step stage: a full SimCLR (and BYOL) step at batch B -- augment, forward, loss, backward, Adam."""
from __future__ import annotations

import time

import torch

from benchmarks.harness import Case
from benchmarks.plain_step import PlainSimCLRStep


class _Args:
    """The flags a Pretrainer step reads, without building one from a cache."""

    def __init__(self, precision):
        self.precision, self.temperature = precision, 0.07


def ecgfast_step(method: str, precision: str, compiled: bool = False, sampling_rate: float = 100):
    """A step of ecgfast's engine (fused augmentation, fused loss), from public modules."""
    from ecgfast.augment import AugmentPipeline
    from ecgfast.losses import nt_xent
    from ecgfast.models import BYOLModel, SimCLRModel
    from ecgfast.train.common import autocast

    torch.manual_seed(0)
    model = SimCLRModel() if method == "simclr" else BYOLModel()
    if compiled:
        model.encoder = torch.compile(model.encoder)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    pipe = AugmentPipeline(sampling_rate, seed=0)
    timings = {"augment_s": 0.0, "total_s": 0.0}

    def step(x):
        t0 = time.perf_counter()
        v1, v2 = pipe(x)
        v1, v2 = (v1 - 0.0) / 0.2, (v2 - 0.0) / 0.2  # a fitted global normaliser is this affine map
        t1 = time.perf_counter()
        with autocast(precision):
            if method == "simclr":
                z1, z2 = model(torch.cat([v1, v2])).float().chunk(2)
                loss = nt_xent(z1, z2, 0.07)
            else:
                loss = model(v1, v2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if method == "byol":
            model.update_target()
        timings["augment_s"] += t1 - t0
        timings["total_s"] += time.perf_counter() - t0
        return loss.item()

    step.timings = timings
    return step


def cases(quick: bool) -> list[Case]:
    B = 64 if quick else 256
    x = torch.randn(B, 12, 1000) * 0.3
    plain_step = PlainSimCLRStep()
    plain = f"plain SimCLR step fp32 (B={B})"
    out = [Case("train", plain, lambda: plain_step(x), B, "samples", repeat=3)]
    variants = [("simclr", "fp32", False), ("simclr", "bf16", False), ("byol", "bf16", False)]
    if not quick:
        variants.insert(2, ("simclr", "bf16", True))
    for method, precision, compiled in variants:
        step = ecgfast_step(method, precision, compiled)
        name = f"ecgfast {method} {precision} {'compiled' if compiled else 'eager'}"
        case = Case("train", name, (lambda s=step: s(x)), B, "samples", baseline=plain, repeat=3, warmup=2)
        out.append(case)
        case.extra = StepTimeShare(step.timings)
    return out


class StepTimeShare(dict):
    """Reports the share of step time spent in augmentation + normalisation, read at report time."""

    def __init__(self, timings):
        super().__init__()
        self._t = timings

    def items(self):
        t = self._t
        return [("data+aug", f"{t['augment_s'] / t['total_s']:.1%}" if t["total_s"] else "-")]
