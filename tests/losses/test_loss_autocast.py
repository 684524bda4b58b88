"""The losses are computed in float32 under any autocast, forward and backward.

Under bf16 autocast a matmul inside a loss would run in bf16 while its positive
logit stays in float32; at low losses (a well-trained encoder) the gradient of
NT-Xent then points the wrong way (cosine -0.01 to the float32 gradient at loss
2e-3). Every implementation is checked on the same float32 inputs against
float32 outside autocast, at losses from ~4 down to ~1e-3.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from devices import cpu_and_cuda

import ecgfast.base.extension
from ecgfast.base.extension import EXTENSION_AVAILABLE
from ecgfast.losses import byol_loss, nt_xent
from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference

needs_ext = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")
DEVICES = cpu_and_cuda()
DTYPES = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16")]
# Noise between the two views' embeddings -> NT-Xent at tau = 0.07 of about 3.7, 0.7, 0.03, 1.3e-3.
NOISE = [4.0, 1.75, 0.9, 0.3]


@pytest.fixture(params=["op", "fallback", "reference"])
def nt_xent_impl(request, monkeypatch):
    """The compiled op, the wrapper's plain fallback (extension switched off) and the reference formula,
    with whether its backward may run inside the autocast region: the ops' backward kernels are
    autocast-proof; the plain formulas' autograd graph is torch's, whose backward (like any) belongs
    outside the region, where the training loops call it."""
    if request.param == "op" and not EXTENSION_AVAILABLE:
        pytest.skip("compiled extension not built")
    if request.param == "fallback":
        monkeypatch.setattr(ecgfast.base.extension, "EXTENSION_AVAILABLE", False)
    return (nt_xent_reference if request.param == "reference" else nt_xent), request.param == "op"


def _views(noise: float, n: int = 256, d: int = 128, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    return z1, z1 + noise * torch.randn(n, d, generator=g)


def _loss_and_grads(fn, inputs, device, dtype=None, backward_inside=True):
    leaves = [t.to(device).requires_grad_() for t in inputs]
    ctx = torch.autocast(device, dtype=dtype) if dtype is not None else torch.autocast(device, enabled=False)
    with ctx:
        loss = fn(*leaves)
        if backward_inside:  # a user may call backward inside the region: the ops stay float32 there too
            grads = torch.autograd.grad(loss, leaves)
    if not backward_inside:
        grads = torch.autograd.grad(loss, leaves)
    return loss, torch.cat([g.flatten() for g in grads])


def _assert_float32_equal(loss, grad, ref_loss, ref_grad):
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-4, abs=1e-6)
    assert F.cosine_similarity(grad.double(), ref_grad.double(), dim=0).item() >= 0.9999


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("noise", NOISE)
def test_nt_xent_under_autocast_equals_float32(nt_xent_impl, device, dtype, noise):
    impl, backward_inside = nt_xent_impl
    views = _views(noise)
    ref_loss, ref_grad = _loss_and_grads(lambda a, b: nt_xent_reference(a, b, 0.07), views, device)
    assert 1e-3 < ref_loss.item() < 4
    loss, grad = _loss_and_grads(lambda a, b: impl(a, b, 0.07), views, device, dtype, backward_inside)
    _assert_float32_equal(loss, grad, ref_loss, ref_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("noise", [NOISE[0], NOISE[-1]])
def test_nt_xent_distributed_form_under_autocast_equals_float32(nt_xent_impl, device, dtype, noise):
    """One rank's rows (the middle 100 of 300) against all columns: the distributed backward too."""
    impl, backward_inside = nt_xent_impl
    z1, z2 = _views(noise, n=300)

    def rank_loss(a, b, a_all, b_all):
        return impl(a, b, 0.07, z1_all=a_all, z2_all=b_all, offset=100)

    inputs = (z1[100:200], z2[100:200], z1, z2)
    ref_loss, ref_grad = _loss_and_grads(
        lambda *t: nt_xent_reference(t[0], t[1], 0.07, z1_all=t[2], z2_all=t[3], offset=100), inputs, device)
    loss, grad = _loss_and_grads(rank_loss, inputs, device, dtype, backward_inside)
    _assert_float32_equal(loss, grad, ref_loss, ref_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["op", "fallback", "reference"])
@pytest.mark.parametrize("noise", [2.0, 0.05, 1e-3])  # 2 - 2 cos from ~1.3 down to ~1e-6
def test_byol_loss_under_autocast_equals_float32(impl, device, dtype, noise, monkeypatch):
    if impl == "op" and not EXTENSION_AVAILABLE:
        pytest.skip("compiled extension not built")
    if impl == "fallback":
        monkeypatch.setattr(ecgfast.base.extension, "EXTENSION_AVAILABLE", False)
    fn = byol_loss_reference if impl == "reference" else byol_loss
    views = _views(noise, d=250)  # D not a multiple of the CUDA kernel's 32-lane rows
    ref_loss, ref_grad = _loss_and_grads(byol_loss_reference, views, device)
    loss, grad = _loss_and_grads(fn, views, device, dtype, backward_inside=impl == "op")
    _assert_float32_equal(loss, grad, ref_loss, ref_grad)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_ops_called_directly_under_autocast_return_float32(device, dtype):
    """torch.ops.ecgfast.* themselves (not only the wrappers): half inputs are computed in float32,
    float64 stays float64."""
    z1, z2 = (t.to(device) for t in _views(0.9, n=64))
    want = torch.ops.ecgfast.nt_xent(z1, z2, 0.07)
    with torch.autocast(device, dtype=dtype):
        got = torch.ops.ecgfast.nt_xent(z1.to(dtype), z2.to(dtype), 0.07)
        got64 = torch.ops.ecgfast.nt_xent(z1.double(), z2.double(), 0.07)
        byol = torch.ops.ecgfast.byol_loss(z1.to(dtype), z2.to(dtype))
    assert [t.dtype for t in got] == [torch.float32] * 3 and got64[0].dtype == torch.float64
    ref = nt_xent_reference(z1.to(dtype).float(), z2.to(dtype).float(), 0.07)
    assert got[0].item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)
    assert got64[0].item() == pytest.approx(want[0].item(), rel=1e-4, abs=1e-6)
    assert byol.dtype == torch.float32
    assert byol.item() == pytest.approx(byol_loss_reference(z1.to(dtype).float(), z2.to(dtype).float()).item(),
                                        rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("noise", [1.0, 0.02])
def test_a_bf16_simclr_step_gets_the_gradient_of_the_plain_formula_in_float32(device, noise):
    """The whole step under bf16 autocast (encoder in bf16): with the fused loss, the encoder's
    gradient is the one the plain formula computed in float32 gives, at a high and a low loss."""
    from ecgfast.models import SimCLRModel

    torch.manual_seed(0)
    model = SimCLRModel().to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 12, 1000, generator=g)
    views = torch.cat([x, x + noise * torch.randn(x.shape, generator=g)]).to(device)

    def encoder_grad(loss_fn):
        model.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16):
            z1, z2 = model(views).chunk(2)
            loss = loss_fn(z1, z2)
        loss.backward()
        return loss, torch.cat([p.grad.flatten() for p in model.parameters()])

    fused_loss, fused = encoder_grad(lambda a, b: nt_xent(a, b, 0.07))
    plain_loss, plain = encoder_grad(lambda a, b: nt_xent_reference(a.float(), b.float(), 0.07))
    assert fused_loss.dtype == torch.float32
    assert fused_loss.item() == pytest.approx(plain_loss.item(), rel=1e-4, abs=1e-6)
    assert F.cosine_similarity(fused.double(), plain.double(), dim=0).item() >= 0.9999
