"""Backbones stage: one SimCLR training step per encoder (``--encoder``), at the entry points' default
precision and memory format, all on the same batch -- augment, normalise, forward, fused NT-Xent, backward,
Adam -- with its FLOP (``torch.utils.flop_counter``), achieved GFLOP/s and share of the matmul peak.

The seed's ``ecg1dcnn`` is the baseline: ``vs plain`` reads as each backbone's speed relative to it
(below 1: slower). ``params`` is the encoder's parameter count (12 leads, no head).
"""
from __future__ import annotations

import torch

from benchmarks.cases_train import SHORT_FORMATS, StepTimeShare, ecgfast_step
from benchmarks.harness import Case


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    from benchmarks.roofline import count_flops
    from ecgfast.base.runtime import resolve_precision
    from ecgfast.models.backbones import ENCODER_NAMES, ENCODERS

    B = 16 if quick else 128  # the deepest backbones take seconds a step on a 2-core CPU
    x = (torch.randn(B, 12, 1000, generator=torch.Generator().manual_seed(0)) * 0.3).to(device)
    precision = resolve_precision("auto", torch.device(device))  # what a run uses here by default
    compiled = torch.device(device).type == "cuda"  # --compile auto
    out, baseline = [], None
    for name in ENCODER_NAMES:
        step = ecgfast_step("simclr", precision, False, device=device, encoder=name)  # --memory-format auto
        flops = count_flops(lambda s=step: s(x))  # counted eager (the compiled step is the same work)
        if compiled:
            step = ecgfast_step("simclr", precision, compiled, device=device, encoder=name)
        label = f"simclr {precision} {name} {SHORT_FORMATS[step.memory_format]} (B={B})"
        baseline = baseline or label
        case = Case("backbones", label, (lambda s=step: s(x)), B, "samples", device=device,
                    baseline=None if label == baseline else baseline, repeat=2 if quick else 3, warmup=1,
                    flops=flops, precision=precision)
        case.extra = _Figures(step.timings, ENCODERS[name].parameters)
        out.append(case)
    return out


class _Figures(StepTimeShare):
    """The share of step time in data + augmentation (read at report time), and the parameter count."""

    def __init__(self, timings, parameters: int):
        super().__init__(timings, {"params": f"{parameters / 1e6:.2f}M"})
