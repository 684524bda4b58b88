"""Every command without the compiled extension (a pure-Python install: Numba and plain-torch
implementations serve every op), on the CPU. With it, the rest of the suite runs every command;
a CPU-only build on a GPU (no CUDA kernel: the policy's fallback) is tested in tests/devices.py's
users by mocking the dispatcher's answer, and the CUDA cells run in `make gpu-check`.

The no-extension runs go through a subprocess with ECGFAST_NO_EXTENSION=1, so not a single
ecgfast op is registered with torch there: any call that reaches torch.ops.ecgfast fails."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, sys, torch
import ecgfast.base.extension as ext
assert ext.EXTENSION_AVAILABLE == (sys.argv[3] == "1"), ext.EXTENSION_ERROR
if not ext.EXTENSION_AVAILABLE:
    assert not hasattr(torch.ops.ecgfast, "nt_xent") or not torch._C._dispatch_has_kernel_for_dispatch_key(
        "ecgfast::nt_xent", "CPU")
from ecgfast.cli import main
cache, out = sys.argv[1], sys.argv[2]
tiny = ["--epochs", "1", "--batch-size", "32", "--signal-length", "256", "--no-progress", "--device", "cpu",
        "--precision", "fp32"]
codes = {}
codes["pretrain-simclr"] = main(["pretrain-simclr", "--cache", cache, "--out", f"{out}/simclr.pt", *tiny])
codes["pretrain-byol"] = main(["pretrain-byol", "--cache", cache, "--out", f"{out}/byol.pt", *tiny])
codes["finetune"] = main(["finetune", "--cache", cache, "--ssl-checkpoint", f"{out}/simclr.pt",
                          "--label-fraction", "0.5", "--out", f"{out}/ft.pt", *tiny])
codes["probe"] = main(["finetune", "--cache", cache, "--ssl-checkpoint", f"{out}/byol.pt", "--freeze-encoder",
                       "--label-fraction", "0.5", "--out", f"{out}/probe.pt", *tiny])
codes["supervised"] = main(["supervised", "--cache", cache, "--label-fraction", "0.5", "--out", f"{out}/sup.pt",
                            *tiny])
codes["evaluate"] = main(["evaluate", "--checkpoint", f"{out}/ft.pt", "--cache", cache, "--json",
                          f"{out}/eval.json", "--device", "cpu"])
codes["embed"] = main(["embed", "--checkpoint", f"{out}/simclr.pt", "--input", cache, "--out", f"{out}/e.h5",
                       "--device", "cpu", "--no-progress"])
codes["predict"] = main(["predict", "--checkpoint", f"{out}/ft.pt", "--input", cache, "--out", f"{out}/p.csv",
                         "--device", "cpu", "--no-progress"])
codes["export"] = main(["export", "--checkpoint", f"{out}/ft.pt", "--format", "torchscript", "--out",
                        f"{out}/ft.ts"])
json.dump(codes, open(f"{out}/codes.json", "w"))
"""


@pytest.mark.slow
def test_every_command_runs_without_the_extension(synthetic_cache_path, tmp_path):
    env = {**os.environ, "ECGFAST_NO_EXTENSION": "1"}
    env.pop("ECGFAST_BACKEND", None)
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(synthetic_cache_path), str(tmp_path), "0"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    codes = json.loads((tmp_path / "codes.json").read_text())
    assert codes == {name: 0 for name in codes}, run.stderr[-3000:]
    assert "NotImplementedError" not in run.stderr
