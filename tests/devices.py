"""Device helpers shared by the test folders (importable from any of them: tests/ is on sys.path).

* :func:`cpu_and_cuda` -- the devices a test runs on: ``cpu`` always, ``cuda`` marked ``cuda`` and skipped
  without a GPU.
* :func:`no_cpu_tensors` -- proves code device-generic without a GPU: run it on the ``meta`` device inside
  this context and it fails at the first aten op that takes or makes a CPU tensor (a helper made without
  ``device=``: ``torch.arange(T)``, ``torch.zeros(n)``, ...). On a GPU such a tensor is an error or a copy
  per call; the meta device alone lets some through (a CPU index to ``gather``, a CPU operand of a matmul),
  this mode catches every one.
"""
from __future__ import annotations

import contextlib
import os
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cpu_and_cuda():
    """pytest params of the devices: ``cpu``, and ``cuda`` (marked ``cuda``, skipped where no GPU is present)."""
    return [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, needs_cuda])]


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
        if func in _COPIES and inputs and inputs[-1 if func is torch.ops.aten.copy_.default else 0].device.type == "cpu":
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
