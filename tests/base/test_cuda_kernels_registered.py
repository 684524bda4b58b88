"""Every ecgfast op is registered, with a CPU kernel, and with a CUDA one in a CUDA build (no GPU needed).

Collected by the normal suite (``pytest tests``: this folder is not called
``build``, which pytest never recurses into). There it checks the registered op
set and the CPU kernels of the build under test; the CUDA-kernel checks skip in a
CPU-only torch, and with a CUDA torch check the build unless it was made without
a CUDA toolkit (then they skip, as setup.py said at build time). Without the
compiled extension (``ECGFAST_NO_EXTENSION=1``) the module skips.

``make check-cuda-build`` (tools/check_cuda_build.sh) also runs this file inside a
venv whose torch has CUDA, against the extension built there with nvcc, with
ECGFAST_EXPECT_CUDA_KERNELS=1: then a missing CUDA kernel fails instead of skipping.
"""
import os

import pytest
import torch

from ecgfast.base.extension import EXTENSION_AVAILABLE, EXTENSION_ERROR

pytestmark = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason=f"ecgfast._C not importable: {EXTENSION_ERROR}")
EXPECT_CUDA = os.environ.get("ECGFAST_EXPECT_CUDA_KERNELS") == "1"

# Built from ATen ops only: one CompositeExplicitAutograd kernel serves every device.
# The backward ops are private (a leading underscore): only the losses' autograd formulas call them.
COMPOSITE = {"nt_xent", "_nt_xent_backward", "_nt_xent_distributed_backward"}
DEVICE_OPS = {"augment_views", "gather_dequantize", "gather_dequantize.out", "byol_loss",
              "_byol_loss_backward"} | COMPOSITE
# Take no tensor: one kernel for every call (the ISA level of the CPU augmentation kernel; the parameter
# layout and band-pass padding the augmentation kernels were compiled with, checked by augment/params.py).
HOST_OPS = {"augment_cpu_isa", "augment_param_layout", "augment_bandpass_pad"}
EXPECTED = DEVICE_OPS | HOST_OPS
LOSS_OPS = {"byol_loss", "_byol_loss_backward"} | COMPOSITE


def _ops():
    import ecgfast._C  # noqa: F401  registers the ops

    return sorted(name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("ecgfast::"))


def _has(op, key):
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"ecgfast::{op}", key)


def test_every_op_is_registered():
    assert EXPECTED <= set(_ops())


def test_no_unexpected_ops():
    """A new op must be added above, so that its CUDA kernel is checked too."""
    assert set(_ops()) <= EXPECTED


@pytest.mark.parametrize("op", sorted(DEVICE_OPS))
def test_op_has_a_cpu_kernel(op):
    assert op in _ops()
    key = "CompositeExplicitAutograd" if op in COMPOSITE else "CPU"
    assert _has(op, key), f"ecgfast::{op} has no {key} kernel"


@pytest.mark.parametrize("op", sorted(LOSS_OPS))
def test_loss_op_has_autocast_kernels(op):
    """Losses are computed in float32 under autocast: an Autocast kernel per device type (in every build)."""
    for key in ("AutocastCPU", "AutocastCUDA"):
        assert _has(op, key), f"ecgfast::{op} has no {key} kernel"


@pytest.mark.parametrize("op", sorted(DEVICE_OPS))
def test_op_has_a_cuda_kernel(op):
    if torch.version.cuda is None:
        if EXPECT_CUDA:
            pytest.fail("ECGFAST_EXPECT_CUDA_KERNELS=1 but the installed torch has no CUDA")
        pytest.skip("the installed torch has no CUDA")
    if not EXPECT_CUDA and not _has("augment_views", "CUDA"):
        pytest.skip("ecgfast._C was built without its CUDA kernels (no CUDA toolkit at build time)")
    if op in COMPOSITE:
        assert _has(op, "CompositeExplicitAutograd")
    else:
        assert _has(op, "CUDA"), f"ecgfast::{op} has no CUDA kernel"
