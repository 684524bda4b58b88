"""Device helpers shared by the test folders (importable from any of them: tests/ is on sys.path).

* :func:`cpu_and_cuda` -- the devices a test runs on: ``cpu`` always, ``cuda`` marked ``cuda`` and skipped
  without a GPU (and, for a test of the compiled ops, where the build has no CUDA kernels). The one
  device parametrisation of every test folder: an op's CUDA cases live in that op's own test file.
* :func:`no_cpu_tensors` -- proves code device-generic without a GPU: run it on the ``meta`` device inside
  this context and it fails at the first aten op that takes or makes a CPU tensor (a helper made without
  ``device=``: ``torch.arange(T)``, ``torch.zeros(n)``, ...). On a GPU such a tensor is an error or a copy
  per call; the meta device alone lets some through (a CPU index to ``gather``, a CPU operand of a matmul),
  this mode catches every one.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_kernels_missing() -> bool:
    """A GPU is present but the loaded extension has no CUDA kernels (built without a CUDA toolkit)."""
    from ecgfast.base.extension import has_kernel

    return torch.cuda.is_available() and not has_kernel("augment_views", "cuda")


def cpu_and_cuda(*, cpu: bool = True, compiled: bool = False):
    """pytest params of the devices: ``cpu``, and ``cuda`` (marked ``cuda``, skipped where no GPU is present).

    ``compiled=True``: the test is about the compiled ops' kernels, so ``cuda`` is also skipped where the
    build has no CUDA kernels (the plain-torch fallback is tested on its own). ``cpu=False``: ``cuda``
    alone, for what only a GPU has (device-side asserts, host syncs, a tensor on a second device)."""
    marks = [pytest.mark.cuda, needs_cuda]
    if compiled:
        marks.append(pytest.mark.skipif(_cuda_kernels_missing(), reason=(
            "ecgfast._C was built without its CUDA kernels (no CUDA toolkit at build time): rebuild with "
            "CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e .")))
    return ([pytest.param("cpu", id="cpu")] if cpu else []) + [pytest.param("cuda", id="cuda", marks=marks)]


@pytest.fixture
def ieee_float32():
    """TF32 would make CUDA float32 matmuls and convolutions differ from the CPU's by ~1e-3: compare IEEE
    float32 (a no-op on the CPU). Import it into a test module to use it."""
    before = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
              torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[1:]


# Ops that compute nothing and may see host data: lift_fresh wraps an ndarray (torch.as_tensor) before its
# copy to the device; detach is how Tensor.numpy() reads host data on the host.
_HOST_ONLY = {torch.ops.aten.lift_fresh.default, torch.ops.aten.lift_fresh_copy.default, torch.ops.aten.detach.default}
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}
_HERE = os.path.abspath(__file__)
_TORCH = os.path.dirname(os.path.abspath(torch.__file__))


def _where() -> str:
    """The innermost frame outside torch and this file: the line that made the CPU tensor."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if path != _HERE and not path.startswith(_TORCH) and "contextlib" not in path:
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown>"


def _describe(t: torch.Tensor) -> str:
    return f"{t.dtype} {tuple(t.shape)} on {t.device}"


class NoCpuTensors(TorchDispatchMode):
    """Fails at the first aten op whose inputs or outputs include a CPU tensor.

    Explicit uploads are allowed and listed in ``uploads``: a copy whose source is on the CPU and whose
    result is not (``params.to(device)``, ``torch.as_tensor(ndarray, device=...)``), i.e. data that
    lives on the host by design (parameters drawn with NumPy, an epoch's order). A test bounds them
    with ``len(checker.uploads)``, which also catches a helper made on the CPU and then moved.

    ``host_ops=True`` also lets ops whose tensors are all on the CPU run (host work by design, such
    as a loader's seeded permutation); a CPU tensor meeting a device tensor still fails.
    """

    def __init__(self, host_ops: bool = False):
        super().__init__()
        self.host_ops = host_ops
        self.uploads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HOST_ONLY:
            return func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        source = inputs[-1 if func is torch.ops.aten.copy_.default else 0] if inputs else None
        if func in _COPIES and source is not None and source.device.type == "cpu":
            out = func(*args, **kwargs)
            dst = out if isinstance(out, torch.Tensor) else args[0]
            if dst.device.type != "cpu":
                self.uploads.append(f"{_describe(dst)} at {_where()}")
                return out
            raise AssertionError(f"{func} made the CPU tensor {_describe(dst)} at {_where()}")
        on_cpu = [t.device.type == "cpu" for t in inputs]
        if self.host_ops and inputs and all(on_cpu):
            return func(*args, **kwargs)
        for t, cpu in zip(inputs, on_cpu):
            if cpu:
                raise AssertionError(f"{func} was given the CPU tensor {_describe(t)} at {_where()}")
        out = func(*args, **kwargs)
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if self.host_ops and not inputs and all(t.device.type == "cpu" for t in outputs):
            return out  # a factory on the host
        for t in outputs:
            if t.device.type == "cpu":
                raise AssertionError(f"{func} made the CPU tensor {_describe(t)} at {_where()}")
        return out


@contextlib.contextmanager
def no_cpu_tensors(host_ops: bool = False):
    """``with no_cpu_tensors() as checker:`` run a step whose inputs are on ``meta``; see :class:`NoCpuTensors`."""
    checker = NoCpuTensors(host_ops)
    with checker:
        yield checker


def on_meta(*tensors):
    """The tensors as meta tensors (shapes and dtypes kept, no data)."""
    moved = tuple(t.to("meta") for t in tensors)
    return moved[0] if len(moved) == 1 else moved


# A device-side assert leaves the CUDA context unusable, so each case runs in its own interpreter.
_OUT_OF_RANGE = """
import os, sys, torch
import ecgfast._C  # noqa: F401
from ecgfast.augment import AugmentPipeline
case, col = sys.argv[1], int(sys.argv[2])
try:
    if case == "gather":
        raw = torch.zeros(20, 12, 100, dtype=torch.int16, device="cuda")
        gain, base = torch.ones(12, device="cuda"), torch.zeros(12, device="cuda")
        torch.ops.ecgfast.gather_dequantize(raw, torch.tensor([3, 20], device="cuda"), gain, base)
    else:
        x = torch.randn(4, 12, 200, device="cuda")
        params = AugmentPipeline(100, seed=0).draw(4, 200, step=0)
        params[1, 2, col] = 4 if case == "mix" else -1
        torch.ops.ecgfast.augment_views(x, params.to("cuda"), 100.0)
    torch.cuda.synchronize()
except Exception as exc:  # torch.AcceleratorError (a RuntimeError) in recent torch
    print("RAISED:", type(exc).__name__, exc, flush=True)
    os._exit(3)  # skip interpreter teardown: freeing memory in a poisoned context may abort
print("NO ERROR", flush=True)
"""


def assert_device_side_assert(case: str, col: int = -1) -> None:
    """An out-of-range index on CUDA (``gather``: a record index; ``mix``/``cut``: the partner column ``col``
    of the augmentation parameters) is a device-side assert, never an out-of-bounds read; run in a child."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo)] + sys.path))
    run = subprocess.run([sys.executable, "-c", _OUT_OF_RANGE, case, str(col)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "device-side assert" in run.stdout, run.stdout + run.stderr
