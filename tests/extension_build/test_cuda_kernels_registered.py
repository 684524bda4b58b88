"""Every ecgfast op has a CPU and a CUDA kernel in a CUDA build (no GPU needed).

Run by ``make check-cuda-build`` inside a venv whose torch has CUDA, against
the extension built there with nvcc (ECGFAST_EXPECT_CUDA_KERNELS=1). In a
CPU-only torch it skips; in the normal suite with a CUDA torch it checks the
installed build, unless that was built without a CUDA toolkit (then it skips,
as setup.py said at build time).
"""
import os

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.version.cuda is None, reason="the installed torch has no CUDA")
EXPECT_CUDA = os.environ.get("ECGFAST_EXPECT_CUDA_KERNELS") == "1"

# Built from ATen ops only: one CompositeExplicitAutograd kernel serves every device.
COMPOSITE = {"nt_xent", "nt_xent_backward", "nt_xent_distributed_backward"}
EXPECTED = {"augment_views", "gather_dequantize", "gather_dequantize.out", "byol_loss", "byol_loss_backward"} | COMPOSITE


def _ops():
    import ecgfast._C  # noqa: F401  registers the ops

    return sorted(name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("ecgfast::"))


def _has(op, key):
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"ecgfast::{op}", key)


def test_every_op_is_registered():
    assert EXPECTED <= set(_ops())


@pytest.mark.parametrize("op", sorted(EXPECTED))
def test_op_has_cpu_and_cuda_kernels(op):
    assert op in _ops()
    if not EXPECT_CUDA and not _has("augment_views", "CUDA"):
        pytest.skip("ecgfast._C was built without its CUDA kernels (no CUDA toolkit at build time)")
    if op in COMPOSITE:
        assert _has(op, "CompositeExplicitAutograd")
    else:
        assert _has(op, "CPU"), f"ecgfast::{op} has no CPU kernel"
        assert _has(op, "CUDA"), f"ecgfast::{op} has no CUDA kernel"


def test_no_unexpected_ops():
    """A new op must be added above, so that its CUDA kernel is checked too."""
    assert set(_ops()) <= EXPECTED
