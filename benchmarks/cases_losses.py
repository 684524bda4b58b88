"""Loss stage: NT-Xent and BYOL forward+backward, plain formula vs the fused ops; peak memory too."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

from benchmarks.harness import Case

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


def cases(quick: bool) -> list[Case]:
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
