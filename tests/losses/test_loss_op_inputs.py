"""The loss ops on every input layout and dtype they accept: non-contiguous rows, half and float64
inputs, BYOL rows whose width is no multiple of a warp; opcheck on each (fakes match the kernels)."""
from __future__ import annotations

import pytest
import torch
from devices import cpu_and_cuda

from ecgfast.base.extension import EXTENSION_AVAILABLE
from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference

pytestmark = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")
DEVICES = cpu_and_cuda()


def _rows(n, d, device, dtype=torch.float32, layout="contiguous", seed=0):
    """(n, d) rows: contiguous, a transposed (d, n) buffer, or every other row of a (2n, d) one."""
    g = torch.Generator().manual_seed(seed)
    if layout == "transposed":
        t = torch.randn(d, n, generator=g).t()
    elif layout == "strided":
        t = torch.randn(2 * n, d, generator=g)[::2]
    else:
        t = torch.randn(n, d, generator=g)
    t = t.to(device=device, dtype=dtype)
    assert t.is_contiguous() == (layout == "contiguous")
    return t.requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_nt_xent_ops_on_non_contiguous_rows_equal_the_contiguous_result(device, layout):
    z1, z2 = _rows(6, 250, device, layout=layout, seed=1), _rows(6, 250, device, layout=layout, seed=2)
    a1, a2 = _rows(18, 250, device, layout=layout, seed=3), _rows(18, 250, device, layout=layout, seed=4)
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1))
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1, a1, a2, 6))
    loss, h, lse = torch.ops.ecgfast.nt_xent(z1, z2, 0.1)
    ref = nt_xent_reference(z1.contiguous(), z2.contiguous(), 0.1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    # The backward ops as autograd calls them (on saved tensors, not differentiated themselves).
    g = torch.ones((), device=device)
    torch.library.opcheck(torch.ops.ecgfast._nt_xent_backward.default,
                          (g, z1.detach(), z2.detach(), h.detach(), lse.detach(), 0.1))
    _, h_all, lse_all = torch.ops.ecgfast.nt_xent(z1, z2, 0.1, a1, a2, 6)
    torch.library.opcheck(torch.ops.ecgfast._nt_xent_distributed_backward.default,
                          (g, z1.detach(), z2.detach(), a1.detach(), a2.detach(), h_all.detach(), lse_all.detach(),
                           0.1, 6))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_nt_xent_op_on_half_and_double_rows(device, dtype):
    """Half rows are computed in float32 and their gradients returned in their dtype; float64 stays float64."""
    z1, z2 = _rows(8, 32, device, dtype, seed=5), _rows(8, 32, device, dtype, seed=6)
    loss = torch.ops.ecgfast.nt_xent(z1, z2, 0.1)[0]
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = nt_xent_reference(z1.double(), z2.double(), 0.1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    d1, d2 = torch.autograd.grad(loss, (z1, z2))
    r1, r2 = torch.autograd.grad(ref, (z1, z2))
    assert d1.dtype == d2.dtype == dtype
    # The gradient of half rows is rounded to half: compare within that rounding.
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-9}[dtype]
    for got, want in ((d1, r1), (d2, r2)):
        assert (got.double() - want.double()).abs().max().item() <= tol * want.abs().max().item() + 1e-7


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("d", [2, 31, 250, 257])  # widths around the CUDA kernel's 32 lanes per row
def test_byol_ops_on_any_width_and_layout(device, layout, d):
    p, z = _rows(5, d, device, layout=layout, seed=7), _rows(5, d, device, layout=layout, seed=8)
    torch.library.opcheck(torch.ops.ecgfast.byol_loss.default, (p, z))
    torch.library.opcheck(torch.ops.ecgfast._byol_loss_backward.default,
                          (torch.ones((), device=device, dtype=torch.float32), p.detach(), z.detach()))
    loss = torch.ops.ecgfast.byol_loss(p, z)
    ref = byol_loss_reference(p, z)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    for got, want in zip(torch.autograd.grad(loss, (p, z)), torch.autograd.grad(ref, (p, z))):
        assert (got - want).abs().max().item() <= 1e-5 * want.abs().max().item() + 1e-6
