"""One ECGFAST_BACKEND for every op (augmentations, losses, gather): each honours it, in the same words when
it is wrong. Every command without the compiled extension (a pure-Python install: Numba and plain-torch
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
import torch

import ecgfast.base.extension as ext
import ecgfast.data._ops as data_ops
import ecgfast.losses.reference as loss_reference
from ecgfast.augment import AugmentPipeline
from ecgfast.data._ops import gather_dequantize
from ecgfast.losses import byol_loss, nt_xent

needs_ext = pytest.mark.skipif(not ext.EXTENSION_AVAILABLE, reason="compiled extension not built")


# --- one ECGFAST_BACKEND for every op (ecgfast.base.extension.op_backend) --------------------------------

def _augment():
    return AugmentPipeline(100, seed=0)(torch.zeros(2, 12, 128))


def _nt_xent():
    return nt_xent(torch.ones(3, 4), torch.ones(3, 4))


def _byol_loss():
    return byol_loss(torch.ones(3, 4), torch.ones(3, 4))


def _gather():
    return gather_dequantize(torch.zeros(3, 12, 8, dtype=torch.int16), torch.tensor([0, 2]), torch.ones(12),
                             torch.zeros(12))


OP_CALLS = {"augment_views": _augment, "nt_xent": _nt_xent, "byol_loss": _byol_loss, "gather_dequantize": _gather}


def _plain_calls(monkeypatch):
    """Spies on each op's plain-torch implementation: the names of those that ran."""
    import ecgfast.augment.pipeline as pipeline

    ran = []

    def spy(module, name, label):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, **k: ran.append(label) or real(*a, **k))

    spy(pipeline, "reference_views", "augment_views")
    spy(loss_reference, "nt_xent_reference", "nt_xent")
    spy(loss_reference, "byol_loss_reference", "byol_loss")
    spy(data_ops, "_check_args", "gather_dequantize")  # the plain gather's own checks
    return ran


@pytest.mark.parametrize("op", sorted(OP_CALLS))
@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=needs_ext), "numba", "torch", None])
def test_every_op_honours_ecgfast_backend(monkeypatch, op, backend):
    """torch: every op's plain implementation; cpp: the compiled op; numba: the Numba kernel where the op has
    one (the augmentations), else the compiled op (a pure-Python install: the plain one); unset: the default."""
    if backend is None:
        monkeypatch.delenv("ECGFAST_BACKEND", raising=False)
    else:
        monkeypatch.setenv("ECGFAST_BACKEND", backend)
    ran = _plain_calls(monkeypatch)
    OP_CALLS[op]()
    has_numba = op == "augment_views"
    if backend == "torch":
        want = "torch"
    elif has_numba and (backend == "numba" or backend is None and not ext.EXTENSION_AVAILABLE):
        want = "numba"
    else:
        want = "cpp" if ext.EXTENSION_AVAILABLE else "torch"
    assert (op in ran) is (want == "torch"), (op, backend, ran)
    assert ext.op_backend(op, "cpu", has_numba=has_numba) == want


@pytest.mark.parametrize("op", sorted(OP_CALLS))
def test_every_op_gives_the_same_error_for_an_unknown_backend(monkeypatch, op):
    monkeypatch.setenv("ECGFAST_BACKEND", "fortran")
    with pytest.raises(ValueError, match=r"^ECGFAST_BACKEND='fortran': expected one of cpp, numba, torch$"):
        OP_CALLS[op]()


@pytest.mark.parametrize("op", sorted(OP_CALLS))
def test_every_op_gives_the_same_error_for_cpp_without_the_extension(monkeypatch, op):
    monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    monkeypatch.setattr(ext, "EXTENSION_ERROR", "not loaded: a test")
    monkeypatch.setenv("ECGFAST_BACKEND", "cpp")
    with pytest.raises(RuntimeError, match=r"^ECGFAST_BACKEND='cpp' but the compiled extension ecgfast._C could not "
                                           r"be imported \(not loaded: a test\); build it with"):
        OP_CALLS[op]()


def test_an_explicit_pipeline_backend_names_itself_in_the_same_words(monkeypatch):
    with pytest.raises(ValueError, match=r"^backend='fortran': expected one of cpp, numba, torch$"):
        AugmentPipeline(100, backend="fortran")
    monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    with pytest.raises(RuntimeError, match=r"^backend='cpp' but the compiled extension ecgfast._C could not be"):
        AugmentPipeline(100, backend="cpp")


# --- every command without the extension ---------------------------------------------------------------

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
