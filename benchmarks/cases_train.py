"""Training-step stage: a full SimCLR (and BYOL) step at batch B -- augment, forward, loss, backward, Adam."""
from __future__ import annotations

import time

import torch

from benchmarks.harness import Case
from benchmarks.plain_step import PlainSimCLRStep


def ecgfast_step(method: str, precision: str, compiled: bool = False, sampling_rate: float = 100,
                 device: str = "cpu", encoder: str = "ecg1dcnn", memory_format: str = "auto"):
    """A step of ecgfast's engine (fused augmentation, fused loss) on ``device``, from public modules,
    with the backbone ``encoder`` (``ecgfast.models.backbones``; the seed's by default) in ``memory_format``
    (``auto``: what the entry points pick for that device and precision; the resolved one is ``step.memory_format``).

    It ends with ``loss.item()``, so on a GPU each timed step includes its own completion.
    """
    from ecgfast.augment import AugmentPipeline
    from ecgfast.base.runtime import autocast
    from ecgfast.losses import nt_xent
    from ecgfast.models import BYOLModel, SimCLRModel, build_encoder
    from ecgfast.models.layout import resolve_memory_format, set_memory_format
    from ecgfast.train.pretrain import byol_loss_of

    torch.manual_seed(0)
    backbone = build_encoder(encoder)
    model = (SimCLRModel(backbone) if method == "simclr" else BYOLModel(backbone)).to(device)
    memory_format = resolve_memory_format(memory_format, device, precision)
    set_memory_format(model, memory_format)
    if compiled:
        model.encoder.compile()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    pipe = AugmentPipeline(sampling_rate, seed=0)
    timings = {"augment_s": 0.0, "total_s": 0.0}

    def step(x):
        t0 = time.perf_counter()
        v1, v2 = pipe(x)
        v1, v2 = (v1 - 0.0) / 0.2, (v2 - 0.0) / 0.2  # a fitted global normaliser is this affine map
        if v1.is_cuda:  # the share of data + augmentation is read from synchronised times
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        with autocast(precision, v1.device):
            if method == "simclr":
                z1, z2 = model(torch.cat([v1, v2])).float().chunk(2)
                loss = nt_xent(z1, z2, 0.07)
            else:
                loss = byol_loss_of(model, model, v1, v2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if method == "byol":
            model.update_target()
        timings["augment_s"] += t1 - t0
        timings["total_s"] += time.perf_counter() - t0
        return loss.item()

    step.timings, step.memory_format = timings, memory_format
    return step


def bf16_agreement(x: torch.Tensor, sampling_rate: float = 100) -> dict:
    """The accuracy check behind the bf16 default: one SimCLR loss and backward on the same
    views and weights in fp32 and under bf16 autocast; the loss's relative difference and
    the cosine between the two encoder gradients."""
    from ecgfast.augment import AugmentPipeline
    from ecgfast.base.runtime import autocast
    from ecgfast.losses import nt_xent
    from ecgfast.models import SimCLRModel

    torch.manual_seed(0)
    model = SimCLRModel()
    v1, v2 = AugmentPipeline(sampling_rate, seed=0)(x)
    views = torch.cat([v1, v2]) / 0.2
    loss, grad = {}, {}
    for precision in ("fp32", "bf16"):
        model.zero_grad()
        with autocast(precision):
            z1, z2 = model(views).float().chunk(2)
            out = nt_xent(z1, z2, 0.07)
        out.backward()
        loss[precision] = out.item()
        grad[precision] = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    return {"loss_rel_diff": abs(loss["bf16"] - loss["fp32"]) / abs(loss["fp32"]),
            "grad_cos": torch.nn.functional.cosine_similarity(grad["bf16"], grad["fp32"], dim=0).item()}


SHORT_FORMATS = {"channels-last": "CL", "contiguous": "NCW"}  # case names fit the report's column


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    """The plain step, then ecgfast's at fp32 and at the default precision, each in both memory formats
    (contiguous = the layout before channels-last), BYOL and (full runs) the compiled step in the default
    format. Every step's FLOP (``torch.utils.flop_counter``) gives achieved GFLOP/s and the share of the
    measured matmul peak of its precision."""
    from benchmarks.roofline import count_flops
    from ecgfast.base.runtime import resolve_precision

    B = 64 if quick else 256
    x = (torch.randn(B, 12, 1000) * 0.3).to(device)
    plain_step = PlainSimCLRStep(device=device)
    plain = f"plain SimCLR step fp32 (B={B})"
    flops = count_flops(lambda: plain_step(x))  # the same convolutions and matmuls as ecgfast's step
    out = [Case("train", plain, lambda: plain_step(x), B, "samples", repeat=3, flops=flops, device=device)]
    auto = resolve_precision("auto", torch.device(device))  # the entry points' default here
    formats = ("contiguous", "channels-last")
    variants = [("simclr", "fp32", False, f) for f in formats] + [("simclr", auto, False, f) for f in formats]
    if not quick and auto != "bf16":  # bf16 measured even where it is emulated: it shows why auto avoids it
        variants += [("simclr", "bf16", False, f) for f in formats]
    variants.append(("byol", auto, False, "auto"))
    if not quick or device != "cpu":  # compiled: the default on CUDA, measured on the CPU in full runs
        variants.append(("simclr", auto, True, "auto"))
    variants = list(dict.fromkeys(variants))
    counted = {}  # (method, precision) -> FLOP per step, counted on an eager step (a compiled one is the same work)
    for method, precision, compiled, memory_format in variants:
        step = ecgfast_step(method, precision, compiled, device=device, memory_format=memory_format)
        if (method, precision) not in counted:
            counted[method, precision] = count_flops(lambda s=step: s(x))
        fmt = SHORT_FORMATS[step.memory_format] + (" (auto)" if memory_format == "auto" else "")
        name = f"ecgfast {method} {precision} {'compiled' if compiled else 'eager'} {fmt}"
        case = Case("train", name, (lambda s=step: s(x)), B, "samples", baseline=plain, repeat=3, warmup=2,
                    flops=counted[method, precision], precision=precision, device=device)
        out.append(case)
        accuracy = (bf16_agreement(x) if (precision, compiled, memory_format) == ("bf16", False, "contiguous")
                    and method == "simclr" else {})
        case.extra = StepTimeShare(step.timings, accuracy)
    return out


class StepTimeShare(dict):
    """Reports the share of time spent making the views (read at report time), followed by any
    fixed figures (the bf16 accuracy check). ``aug``: augmentation + normalisation, of the step
    (the train stage: the batch is already in memory, no data is loaded). ``data+aug``: where the
    timings also hold ``data_s`` (the epoch stage times the loader too), loading the batch +
    augmentation + normalisation, of loading + step."""

    def __init__(self, timings, fixed: dict | None = None):
        super().__init__()
        self._t, self._fixed = timings, dict(fixed or {})

    def items(self):
        t = self._t
        data = t.get("data_s")
        made, total = t["augment_s"] + (data or 0.0), t["total_s"] + (data or 0.0)
        share = f"{made / total:.1%}" if total else "-"
        return [("data+aug" if data is not None else "aug", share), *self._fixed.items()]
