"""Loss stage: NT-Xent and BYOL forward+backward, plain formula vs the fused ops; peak memory too."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

from benchmarks.harness import Case, peak_extra_mb, release_device_memory

_PEAK = """
import json, sys, torch
import ecgfast.losses as L
from ecgfast.losses.reference import nt_xent_reference
n, impl = int(sys.argv[1]), sys.argv[2]
z1, z2 = torch.randn(n, 128, requires_grad=True), torch.randn(n, 128, requires_grad=True)
fn = L.nt_xent if impl == "fused" else nt_xent_reference
fn(torch.randn(4, 128, requires_grad=True), torch.randn(4, 128, requires_grad=True), 0.07).backward()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
fn(z1, z2, 0.07).backward()
print(json.dumps(status("VmHWM:") - before))
"""


def peak_mb(n: int, impl: str) -> float:
    """Peak resident memory added by one forward+backward, measured in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _PEAK, str(n), impl], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def cases(quick: bool, device: str = "cpu") -> list[Case]:
    if device != "cpu":
        return device_cases(quick, device)
    from ecgfast.losses import byol_loss, nt_xent
    from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference

    out = []
    for n in ((256, 1024) if quick else (256, 1024, 4096, 8192)):
        z1, z2 = torch.randn(n, 128, requires_grad=True), torch.randn(n, 128, requires_grad=True)

        def step(fn, z1=z1, z2=z2):
            return lambda: fn(z1, z2, 0.07).backward()

        plain = f"NT-Xent plain N={n}"
        flops = 3 * 2 * (2 * n) ** 2 * 128  # forward S, backward S again (fused) or dS H twice (plain)
        repeat = 3 if n >= 4096 else 10
        out.append(Case("losses", plain, step(nt_xent_reference), 2 * n, "rows", flops=flops, repeat=repeat,
                        extra={"peak_MB": peak_mb(n, "plain")}))
        out.append(Case("losses", f"NT-Xent fused N={n}", step(nt_xent), 2 * n, "rows", baseline=plain,
                        flops=flops, repeat=repeat, extra={"peak_MB": peak_mb(n, "fused")}))
    p, z = torch.randn(4096, 256, requires_grad=True), torch.randn(4096, 256)
    out.append(Case("losses", "BYOL plain N=4096", lambda: byol_loss_reference(p, z).backward(), 4096, "rows",
                    repeat=20))
    out.append(Case("losses", "BYOL fused N=4096", lambda: byol_loss(p, z).backward(), 4096, "rows",
                    baseline="BYOL plain N=4096", repeat=20))
    return out


def _probe(fn, device):
    """(peak extra MiB of one call, None) or (None, "out of memory")."""
    try:
        return peak_extra_mb(fn, device), None
    except torch.OutOfMemoryError:
        return None, "out of memory"
    finally:
        release_device_memory(device)


def device_cases(quick: bool, device: str) -> list[Case]:
    """NT-Xent fused vs plain up to N = 65,536 (2N = 131,072 rows) on one device, forward + backward;
    the plain one's 2N x 2N logits run out of memory first: the N where it did is reported on the
    fused row. BYOL fused vs plain. Peak extra device memory of one step for each."""
    from ecgfast.losses import byol_loss, nt_xent
    from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference

    dev_type = torch.device(device).type
    small = [torch.randn(4, 128, device=device, requires_grad=True) for _ in range(2)]
    for fn in (nt_xent, nt_xent_reference):  # initialise (cuBLAS, allocator) before the memory probes
        fn(*small, 0.07).backward()
    out = []
    for n in ((1024, 4096) if quick else (1024, 4096, 16384, 65536)):
        z1 = torch.randn(n, 128, device=device, requires_grad=True)
        z2 = torch.randn(n, 128, device=device, requires_grad=True)

        def step(fn, z1=z1, z2=z2):
            return lambda: fn(z1, z2, 0.07).backward()

        plain = f"NT-Xent plain N={n} ({dev_type})"
        flops = 3 * 2 * (2 * n) ** 2 * 128  # forward S, backward S again (fused) or dS H twice (plain)
        repeat = 3 if n >= 16384 else 10
        fused_extra = {}
        plain_peak, failure = _probe(step(nt_xent_reference), device)
        if failure is None:
            extra = {} if plain_peak is None else {"peak_MB": plain_peak}
            out.append(Case("losses", plain, step(nt_xent_reference), 2 * n, "rows", flops=flops, repeat=repeat,
                            device=device, extra=extra))
        else:
            print(f"  losses: {plain}: {failure}", flush=True)
            fused_extra["plain"] = failure
        fused_peak, failure = _probe(step(nt_xent), device)
        if failure is not None:
            print(f"  losses: NT-Xent fused N={n}: {failure}", flush=True)
            continue
        if fused_peak is not None:
            fused_extra["peak_MB"] = fused_peak
        out.append(Case("losses", f"NT-Xent fused N={n} ({dev_type})", step(nt_xent), 2 * n, "rows",
                        baseline=plain if "plain" not in fused_extra else None, flops=flops, repeat=repeat,
                        device=device, extra=fused_extra))
    n = 4096 if quick else 65536
    p, z = torch.randn(n, 256, device=device, requires_grad=True), torch.randn(n, 256, device=device)
    bytes_moved = 6 * n * 256 * 4  # forward reads p, z; backward reads both again and writes dp, dz
    for name, fn, base in ((f"BYOL plain N={n} ({dev_type})", byol_loss_reference, None),
                           (f"BYOL fused N={n} ({dev_type})", byol_loss, f"BYOL plain N={n} ({dev_type})")):
        def run(fn=fn):
            fn(p, z).backward()

        run()
        peak = peak_extra_mb(run, device)
        out.append(Case("losses", name, run, n, "rows", baseline=base, bytes_moved=bytes_moved, repeat=20,
                        device=device, extra={} if peak is None else {"peak_MB": peak}))
    return out
