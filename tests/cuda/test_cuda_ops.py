"""Every ecgfast op on a CUDA device against its CPU kernel; opcheck on CUDA; bad input.

Marked ``cuda``: skipped where ``torch.cuda.is_available()`` is False. The
CPU kernels are themselves tested against the plain formulas (tests/augment,
tests/losses, tests/data), so CPU == CUDA closes the loop.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ecgfast.base.extension import EXTENSION_AVAILABLE

REPO = Path(__file__).resolve().parents[2]


def _cuda_kernels_built() -> bool:
    return EXTENSION_AVAILABLE and torch._C._dispatch_has_kernel_for_dispatch_key("ecgfast::augment_views", "CUDA")


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built"),
    pytest.mark.skipif(torch.cuda.is_available() and not _cuda_kernels_built(),
                       reason="ecgfast._C was built without its CUDA kernels (no CUDA toolkit at build time): "
                              "rebuild with CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e ."),
]

from ecgfast.augment import AUGMENTATIONS, CONFIGS, AugmentPipeline  # noqa: E402
from ecgfast.data._ops import gather_dequantize, gather_dequantize_reference  # noqa: E402
from ecgfast.losses import byol_loss, nt_xent  # noqa: E402
from ecgfast.losses.reference import nt_xent_reference  # noqa: E402
from ecg_signals import ecg_like  # noqa: E402

ALL_ON = {a: 1.0 for a in AUGMENTATIONS}
CUDA = "cuda"


@pytest.fixture(autouse=True)
def full_precision_matmul():
    """TF32 would make CUDA float32 matmuls and convolutions differ from the CPU's by ~1e-3: compare IEEE
    float32."""
    before = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
              torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[1:]


def assert_views_equal(pipe_kwargs, x, step=3):
    """CPU kernel vs CUDA kernel on the same parameters. Both run augment_lead.h's per-lead code; they
    differ only by FMA contraction and libm vs CUDA sin/cos (a few float32 ulps), hence the tolerance."""
    cpu = torch.stack(AugmentPipeline(**pipe_kwargs, backend="cpp")(x, step=step))
    gpu = torch.stack(AugmentPipeline(**pipe_kwargs, backend="cpp")(x.to(CUDA), step=step))
    assert gpu.device.type == "cuda" and gpu.shape == cpu.shape
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-5 * x.abs().max().item()


# --- augment_views -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augment_views_each_augmentation_alone(name):
    x = ecg_like(16, seed=1)
    enabled = {a: a == name for a in AUGMENTATIONS}
    assert_views_equal(dict(sampling_rate=100, seed=2, enabled=enabled, rates={name: 1.0}), x)


def test_augment_views_all_seven_together():
    assert_views_equal(dict(sampling_rate=100, seed=3, rates=ALL_ON), ecg_like(32, seed=3))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c != "full"])
def test_augment_views_each_ablation(config):
    assert_views_equal(dict(sampling_rate=100, seed=4, enabled=config, rates=ALL_ON), ecg_like(16, seed=4))


@pytest.mark.parametrize("kw", [dict(crop_seconds=2.5), dict(crop_seconds=2.5, resized_crop_min=0.3),
                                dict(resized_crop_min=0.5), dict(crop_seconds=2.57)],
                         ids=["crop", "crop+rrc", "rrc", "crop-not-a-multiple-of-32"])
def test_augment_views_crops(kw):
    """Step 0 (the crop kernel) then the tiles reading each view's crops (Problem::view_stride)."""
    assert_views_equal(dict(sampling_rate=100, seed=11, rates=ALL_ON, **kw), ecg_like(24, seed=11))


def test_augment_views_design_rates_at_500_hz():
    assert_views_equal(dict(sampling_rate=500, seed=5), ecg_like(8, length=5000, fs=500, seed=5))


@pytest.mark.parametrize("batch,leads,length", [(1, 12, 1000), (3, 1, 64), (5, 3, 257), (257, 12, 100),
                                                (1500, 12, 64)])
def test_augment_views_any_shape_the_cpu_kernel_accepts(batch, leads, length):
    """Other lead counts take the CPU's per-lead band-pass, 12 leads its 12-wide one. The CUDA kernel's
    tiles of 32 rows must be right for a partial last tile (1 x 12 x 2 = 24 rows), time not a multiple of
    32 (257), one lead, and more tiles than blocks (1500 x 12 x 2 rows: the grid stride, with each
    block's scratch reused)."""
    x = ecg_like(batch, leads=leads, length=length, seed=batch)
    params = AugmentPipeline(100, seed=6, rates=ALL_ON, leads=leads).draw(batch, length, step=0)
    cpu = torch.ops.ecgfast.augment_views(x, params, 100.0)
    gpu = torch.ops.ecgfast.augment_views(x.to(CUDA), params.to(CUDA), 100.0)
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-5 * x.abs().max().item()


def test_augment_views_non_contiguous_input():
    x = ecg_like(6, seed=7).transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    params = AugmentPipeline(100, seed=7, rates=ALL_ON).draw(6, 1000, step=0)
    cpu = torch.ops.ecgfast.augment_views(x.contiguous(), params, 100.0)
    gpu = torch.ops.ecgfast.augment_views(x.to(CUDA), params.to(CUDA), 100.0)
    assert not x.to(CUDA).is_contiguous()
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-5 * x.abs().max().item()


def test_augment_pipeline_step_needs_no_host_sync():
    """Parameters travel from pinned memory without blocking; the NaN check is a device assert."""
    pipe = AugmentPipeline(100, seed=8, rates=ALL_ON)
    x = ecg_like(16, seed=8).to(CUDA)
    pipe(x)  # warm-up: lazy CUDA initialisation outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        v1, v2 = pipe(x)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert v1.is_cuda and v2.is_cuda and v1.shape == x.shape


def test_augment_views_opcheck_on_cuda():
    x = ecg_like(4, length=128, seed=9).to(CUDA)
    params = AugmentPipeline(100, seed=9, rates=ALL_ON).draw(4, 128, step=0).to(CUDA)
    torch.library.opcheck(torch.ops.ecgfast.augment_views.default, (x, params, 100.0))


def test_augment_views_tensors_on_two_devices_is_an_error():
    x = ecg_like(2, seed=10)
    params = AugmentPipeline(100, seed=10).draw(2, 1000, step=0)
    with pytest.raises(RuntimeError, match=r"augment_views: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.augment_views(x.to(CUDA), params, 100.0)
    with pytest.raises(RuntimeError, match=r"augment_views: all tensors must be on one device"):
        torch.ops.ecgfast.augment_views(x, params.to(CUDA), 100.0)


# --- gather_dequantize ---------------------------------------------------------------------------------

def _storage(seed=0, n=20, leads=12, length=257):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(-5000, 5000, (n, leads, length), dtype=torch.int16, generator=g)
    gain = torch.rand(leads, generator=g) * 900 + 100
    baseline = torch.randint(-50, 50, (leads,), generator=g).float()
    return raw, gain, baseline


def test_gather_dequantize_equals_cpu_bit_for_bit():
    raw, gain, baseline = _storage()
    index = torch.tensor([7, 0, 19, 7, 3])
    cpu = gather_dequantize(raw, index, gain, baseline)
    gpu = gather_dequantize(raw.to(CUDA), index.to(CUDA), gain.to(CUDA), baseline.to(CUDA))
    assert torch.equal(gpu.cpu(), cpu)  # IEEE division on both: identical
    assert torch.equal(cpu, gather_dequantize_reference(raw, index, gain, baseline))


def test_gather_dequantize_out_overload_equals_cpu():
    raw, gain, baseline = _storage(seed=4)
    index = torch.tensor([3, 19, 0, 3])
    out = torch.full((4, 12, 257), float("nan"), device=CUDA)
    assert gather_dequantize(raw.to(CUDA), index.to(CUDA), gain.to(CUDA), baseline.to(CUDA), out=out) is out
    assert torch.equal(out.cpu(), gather_dequantize(raw, index, gain, baseline))
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.out,
                          tuple(t.to(CUDA) for t in (raw, index, gain, baseline)), {"out": out})
    with pytest.raises(RuntimeError, match="out must be on cuda"):
        gather_dequantize(raw.to(CUDA), index.to(CUDA), gain.to(CUDA), baseline.to(CUDA), out=out.cpu())


def test_gather_dequantize_large_batch_grid_stride():
    raw, gain, baseline = _storage(seed=1, n=300, length=1000)
    index = torch.randint(0, 300, (2048,), generator=torch.Generator().manual_seed(1))  # > 65535 blocks of 256
    cpu = gather_dequantize(raw, index, gain, baseline)
    gpu = gather_dequantize(raw.to(CUDA), index.to(CUDA), gain.to(CUDA), baseline.to(CUDA))
    assert torch.equal(gpu.cpu(), cpu)


def test_gather_dequantize_opcheck_on_cuda():
    raw, gain, baseline = (t.to(CUDA) for t in _storage(seed=2))
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.default,
                          (raw, torch.tensor([1, 4, 4], device=CUDA), gain, baseline))


def test_gather_dequantize_tensors_on_two_devices_is_an_error():
    raw, gain, baseline = _storage(seed=3)
    with pytest.raises(RuntimeError, match=r"gather_dequantize: all tensors must be on one device.*index on cpu"):
        torch.ops.ecgfast.gather_dequantize(raw.to(CUDA), torch.tensor([1]), gain.to(CUDA), baseline.to(CUDA))


# --- out-of-range indices: a device-side assert, checked in a child process ------------------------------
# A device-side assert leaves the CUDA context unusable, so each case runs in its own interpreter.

_OUT_OF_RANGE = """
import os, sys, torch
import ecgfast._C  # noqa: F401
from ecgfast.augment import AugmentPipeline
case = sys.argv[1]
try:
    if case == "gather":
        raw = torch.zeros(20, 12, 100, dtype=torch.int16, device="cuda")
        gain, base = torch.ones(12, device="cuda"), torch.zeros(12, device="cuda")
        torch.ops.ecgfast.gather_dequantize(raw, torch.tensor([3, 20], device="cuda"), gain, base)
    else:
        x = torch.randn(4, 12, 200, device="cuda")
        params = AugmentPipeline(100, seed=0).draw(4, 200, step=0)
        params[1, 2, {col}] = 4 if case == "mix" else -1
        torch.ops.ecgfast.augment_views(x, params.to("cuda"), 100.0)
    torch.cuda.synchronize()
except Exception as exc:  # torch.AcceleratorError (a RuntimeError) in recent torch
    print("RAISED:", type(exc).__name__, exc, flush=True)
    os._exit(3)  # skip interpreter teardown: freeing memory in a poisoned context may abort
print("NO ERROR", flush=True)
"""


@pytest.mark.parametrize("case", ["gather", "mix", "cut"])
def test_out_of_range_index_is_a_device_side_assert(case):
    from ecgfast.augment.params import COL

    col = COL["mix_partner"] if case == "mix" else COL["cut_partner"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
    run = subprocess.run([sys.executable, "-c", _OUT_OF_RANGE.replace("{col}", str(col)), case],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "device-side assert" in run.stdout, run.stdout + run.stderr


# --- losses -------------------------------------------------------------------------------------------

def _pair(n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


def _loss_and_grads(fn, tensors, device):
    leaves = [t.detach().to(device, copy=True).requires_grad_() for t in tensors]  # fresh leaves per device
    loss = fn(*leaves)
    return loss.detach().cpu(), [g.cpu() for g in torch.autograd.grad(loss, leaves)]


def _assert_close(a, b, rtol):
    assert (a - b).abs().max().item() <= rtol * b.abs().max().item()


# float32: both devices accumulate 128-long dot products and 600-long row sums in float32 in
# different orders; 2e-5 of the largest value is ~100 ulps of it.
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("n", [5, 300])  # 300: 2N = 600 rows, several tiles of 256
def test_nt_xent_single_cpu_equals_cuda(dtype, rtol, n):
    z1, z2 = _pair(n, 128, dtype, seed=n)
    fn = lambda a, b: nt_xent(a, b, 0.07)  # noqa: E731
    loss_c, grads_c = _loss_and_grads(fn, (z1, z2), "cpu")
    loss_g, grads_g = _loss_and_grads(fn, (z1, z2), CUDA)
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    for a, b in zip(grads_g, grads_c):
        _assert_close(a, b, rtol)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_nt_xent_distributed_cpu_equals_cuda_and_sums_to_global(dtype, rtol):
    z1, z2 = _pair(300, 64, dtype, seed=11)
    sizes, tau = [100, 150, 50], 0.1  # unequal shares: each loss weighted by n_k / N (1/K when equal)

    def split(a, b):  # the ranks' losses weighted by their share of rows; a and b are rows and columns
        total, offset = 0, 0
        for n in sizes:
            total = total + n / a.shape[0] * nt_xent(a[offset:offset + n], b[offset:offset + n], tau,
                                                     z1_all=a, z2_all=b, offset=offset)
            offset += n
        return total

    loss_c, grads_c = _loss_and_grads(split, (z1, z2), "cpu")
    loss_g, grads_g = _loss_and_grads(split, (z1, z2), CUDA)
    ref_loss, ref_grads = _loss_and_grads(lambda a, b: nt_xent_reference(a, b, tau), (z1, z2), CUDA)
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    assert loss_g.item() == pytest.approx(ref_loss.item(), rel=rtol)
    for a, b, r in zip(grads_g, grads_c, ref_grads):
        _assert_close(a, b, rtol)
        _assert_close(a, r, rtol)


def test_nt_xent_distributed_gradcheck_on_cuda():
    z1, z2 = (t.to(CUDA).requires_grad_() for t in _pair(3, 5, torch.float64, seed=12))
    a1, a2 = (t.to(CUDA).requires_grad_() for t in _pair(7, 5, torch.float64, seed=13))
    assert torch.autograd.gradcheck(lambda *t: nt_xent(t[0], t[1], 0.5, z1_all=t[2], z2_all=t[3], offset=4),
                                    (z1, z2, a1, a2))


def test_nt_xent_opcheck_on_cuda():
    z1, z2 = (t.to(CUDA).requires_grad_() for t in _pair(8, 16, torch.float32, seed=14))
    a1, a2 = (t.to(CUDA).requires_grad_() for t in _pair(24, 16, torch.float32, seed=15))
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1))
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1, a1, a2, 8))


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_byol_loss_cpu_equals_cuda(dtype, rtol):
    p, z = _pair(257, 256, dtype, seed=16)  # 257 rows, D not a multiple of the warp
    loss_c, grads_c = _loss_and_grads(byol_loss, (p, z), "cpu")
    loss_g, grads_g = _loss_and_grads(byol_loss, (p, z), CUDA)
    assert loss_g.dtype == dtype
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    for a, b in zip(grads_g, grads_c):
        _assert_close(a, b, rtol)


def test_losses_step_needs_no_host_sync():
    """Forward and backward of both losses only queue work on the stream."""
    z1, z2 = (t.to(CUDA).requires_grad_() for t in _pair(300, 128, torch.float32, seed=17))
    a1, a2 = (t.to(CUDA).requires_grad_() for t in _pair(900, 128, torch.float32, seed=18))

    def step():
        (nt_xent(z1, z2) + nt_xent(z1, z2, z1_all=a1, z2_all=a2, offset=300) + byol_loss(z1, z2)).backward()

    step()  # warm-up: cuBLAS handles and the allocator outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_byol_opcheck_on_cuda():
    p, z = (t.to(CUDA).requires_grad_() for t in _pair(4, 8, torch.float32, seed=19))
    torch.library.opcheck(torch.ops.ecgfast.byol_loss.default, (p, z))


def test_losses_tensors_on_two_devices_are_an_error():
    z1, z2 = _pair(4, 8, torch.float32, seed=20)
    with pytest.raises(RuntimeError, match=r"nt_xent: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.nt_xent(z1.to(CUDA), z2, 0.1)
    with pytest.raises(RuntimeError, match=r"nt_xent: all tensors must be on one device"):
        torch.ops.ecgfast.nt_xent(z1.to(CUDA), z2.to(CUDA), 0.1, z1, z2.to(CUDA), 0)
    with pytest.raises(RuntimeError, match=r"byol_loss: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.byol_loss(z1.to(CUDA), z2)
