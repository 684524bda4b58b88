import math

import pytest
import torch
from devices import cpu_and_cuda, ieee_float32  # noqa: F401  (a fixture, used by name)

import ecgfast.losses.reference as reference
from ecgfast.base.extension import EXTENSION_AVAILABLE, op_backend
from ecgfast.losses import BYOLLoss, NTXentLoss, byol_loss, ema_update_, nt_xent
from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference

needs_ext = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")


@pytest.fixture(params=[pytest.param("op", marks=needs_ext), "fallback",
                        pytest.param("ECGFAST_BACKEND=torch", marks=needs_ext)])
def branch(request, monkeypatch):
    """Which branch of ``nt_xent`` / ``byol_loss`` serves the calls: the compiled op, or the plain
    fallback a build without the extension runs, or that a build with it runs when ``ECGFAST_BACKEND=torch``
    asks for it. Chosen through the one policy every op asks (``op_backend`` reads ``EXTENSION_AVAILABLE``
    and ``ECGFAST_BACKEND`` at call time); the reference formulas are spied on so each call can check which
    branch actually ran."""
    monkeypatch.delenv("ECGFAST_BACKEND", raising=False)
    fallback = request.param != "op"
    if request.param == "fallback":
        monkeypatch.setattr("ecgfast.base.extension.EXTENSION_AVAILABLE", False)
    elif fallback:
        monkeypatch.setenv("ECGFAST_BACKEND", "torch")
    assert (op_backend("nt_xent", "cpu") == "torch") is fallback
    calls = []
    def spy_on(name):
        original = getattr(reference, name)

        def spy(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        return spy

    for name in ("nt_xent_reference", "byol_loss_reference"):
        monkeypatch.setattr(reference, name, spy_on(name))  # the module attribute the fallback branch imports
    return fallback, calls


def _served(fn, branch, reference_name):
    """``fn`` (nt_xent or byol_loss), checking on every call that the branch named served it."""
    fallback, calls = branch

    def run(*args, **kwargs):
        before = calls.count(reference_name)
        out = fn(*args, **kwargs)
        assert (calls.count(reference_name) > before) is fallback, \
            f"{fn.__name__} did not run its {'fallback' if fallback else 'compiled'} branch"
        return out
    return run


@pytest.fixture
def impl(branch):
    """``nt_xent`` through the branch of ``branch`` (the op's tests and the fallback's are one set)."""
    return _served(nt_xent, branch, "nt_xent_reference")


@pytest.fixture
def byol_impl(branch):
    return _served(byol_loss, branch, "byol_loss_reference")


@pytest.mark.parametrize("n", [1, 5, 300])  # 300 rows: several tiles of 256 over 2N = 600
def test_nt_xent_equals_the_plain_formula(impl, n):
    torch.manual_seed(n)
    z1 = torch.randn(n, 128, requires_grad=True)
    z2 = torch.randn(n, 128, requires_grad=True)
    loss = impl(z1, z2, 0.07)
    ref = nt_xent_reference(z1, z2, 0.07)
    # An absolute term: at n = 1 the loss is exactly 0 and the op's float32 sum rounds to ~1e-8
    # (its sign and size depend on the CPU's vector width).
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    g = torch.autograd.grad(loss, (z1, z2))
    gr = torch.autograd.grad(ref, (z1, z2))
    for a, b in zip(g, gr):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-7


def test_nt_xent_gradcheck_float64(impl):
    torch.manual_seed(0)
    z1 = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: impl(a, b, 0.5), (z1, z2))


def test_identical_views_give_a_loss_far_below_log_2n_minus_1(impl):
    """The positive is the other view of the same sample: with identical views the
    correct loss is small; pointing half the rows at the wrong positive is not."""
    torch.manual_seed(1)
    z = torch.randn(64, 128)
    loss = impl(z, z.clone(), 0.07).item()
    assert loss < 0.1 * math.log(2 * 64 - 1)


def test_nt_xent_memory_is_linear_in_n():
    """What the op keeps for backward is O(N D): H and one logsumexp per row."""
    if not EXTENSION_AVAILABLE:
        pytest.skip("compiled extension not built")
    for n in (256, 2048):
        z1, z2 = torch.randn(n, 128, requires_grad=True), torch.randn(n, 128, requires_grad=True)
        loss, h, lse = torch.ops.ecgfast.nt_xent(z1, z2, 0.07)
        assert h.shape == (2 * n, 128) and lse.shape == (2 * n,)
        saved = loss.grad_fn  # the autograd node saves (z1, z2, h, lse): no (2N)^2 tensor
        sizes = [t.numel() for t in _saved_tensors(saved) if t is not None]  # z1_all, z2_all: None
        assert max(sizes) <= 2 * n * 128


def _saved_tensors(node):
    out = []
    for name in dir(node):
        if name.startswith("_saved_"):
            v = getattr(node, name)
            if isinstance(v, torch.Tensor):
                out.append(v)
            elif isinstance(v, (tuple, list)):
                out += [t for t in v if isinstance(t, torch.Tensor)]
    if not out and hasattr(node, "saved_tensors"):
        out = list(node.saved_tensors)
    return out


def test_nt_xent_bad_arguments():
    with pytest.raises(ValueError, match="temperature must be positive"):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="one shape"):
        nt_xent(torch.randn(4, 8), torch.randn(5, 8))
    z, z_all = torch.randn(4, 8), torch.randn(12, 8)
    with pytest.raises(ValueError, match="both z1_all and z2_all"):
        nt_xent(z, z, z1_all=z_all)
    with pytest.raises(ValueError, match="not inside"):
        nt_xent(z, z, z1_all=z_all, z2_all=z_all, offset=9)
    with pytest.raises(ValueError, match="offset"):
        nt_xent(z, z, offset=1)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        nt_xent(z, z, z1_all=z_all[:, :4], z2_all=z_all[:, :4])


@needs_ext
def test_nt_xent_op_checks_its_arguments():
    """The op itself (called directly) rejects what the wrapper rejects."""
    z, z_all = torch.randn(4, 8), torch.randn(12, 8)
    with pytest.raises(RuntimeError, match="not inside"):
        torch.ops.ecgfast.nt_xent(z, z, 0.1, z_all, z_all, 10)
    with pytest.raises(RuntimeError, match="offset"):
        torch.ops.ecgfast.nt_xent(z, z, 0.1, None, None, 2)
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ops.ecgfast.nt_xent(z, z, 0.1, z_all.double(), z_all.double(), 0)


def _distributed_split(impl, z1, z2, sizes, tau):
    """(1/K) sum over K chunks of the distributed-form loss, the full tensors as the columns."""
    total, offset = 0, 0
    for n in sizes:
        total = total + impl(z1[offset:offset + n], z2[offset:offset + n], tau, z1_all=z1, z2_all=z2,
                             offset=offset)
        offset += n
    return total / len(sizes)


@pytest.mark.parametrize("sizes", [[150, 150], [100, 100, 100], [300], [1, 1, 1, 1]],
                         ids=["2-ranks", "3-ranks", "1-rank", "4-ranks-of-1"])
def test_nt_xent_distributed_form_sums_to_the_global_loss_and_gradients(impl, sizes):
    """Each rank scores its rows against all columns; the mean over ranks is the global
    loss and the summed row + column gradients are the global gradients (what DDP with
    all_gather's summing backward computes)."""
    torch.manual_seed(len(sizes))
    n = sum(sizes)
    z1 = torch.randn(n, 64, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(n, 64, dtype=torch.float64, requires_grad=True)
    tau = 0.1
    ref = nt_xent_reference(z1, z2, tau)
    split = _distributed_split(impl, z1, z2, sizes, tau)
    assert split.item() == pytest.approx(ref.item(), rel=1e-10)
    g_ref = torch.autograd.grad(ref, (z1, z2))
    g = torch.autograd.grad(split, (z1, z2))  # autograd adds the row and the column paths
    for a, b in zip(g, g_ref):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


@needs_ext
def test_nt_xent_distributed_rows_and_columns_get_their_own_gradients_float32():
    """Rows and columns as separate leaves (as with all_gather): scaled 1/K and summed, they match."""
    torch.manual_seed(3)
    K, n, D, tau = 3, 100, 32, 0.07  # 2n = 200 rows per rank against 600 columns: tiles of 256
    z1, z2 = torch.randn(K * n, D), torch.randn(K * n, D)
    g1, g2 = torch.zeros_like(z1), torch.zeros_like(z2)
    losses = []
    for k in range(K):
        rows = [z1[k * n:(k + 1) * n].clone().requires_grad_(), z2[k * n:(k + 1) * n].clone().requires_grad_()]
        cols = [z1.clone().requires_grad_(), z2.clone().requires_grad_()]
        loss = nt_xent(*rows, tau, z1_all=cols[0], z2_all=cols[1], offset=k * n)
        d = torch.autograd.grad(loss, rows + cols)
        g1[k * n:(k + 1) * n] += d[0] / K
        g2[k * n:(k + 1) * n] += d[1] / K
        g1 += d[2] / K
        g2 += d[3] / K
        losses.append(loss)
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    ref = nt_xent_reference(a, b, tau)
    assert (sum(losses) / K).item() == pytest.approx(ref.item(), rel=1e-5)
    for got, want in zip((g1, g2), torch.autograd.grad(ref, (a, b))):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_nt_xent_distributed_gradcheck_float64(impl):
    torch.manual_seed(4)
    z1, z2 = (torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    a1, a2 = (torch.randn(7, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda *t: impl(t[0], t[1], 0.5, z1_all=t[2], z2_all=t[3], offset=2),
                                    (z1, z2, a1, a2))


@needs_ext
def test_nt_xent_distributed_opcheck_and_memory():
    z1, z2 = torch.randn(4, 16, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    a1, a2 = torch.randn(12, 16, requires_grad=True), torch.randn(12, 16, requires_grad=True)
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1, a1, a2, 4))
    loss, h, lse = torch.ops.ecgfast.nt_xent(z1, z2, 0.1, a1, a2, 4)
    assert h.shape == (24, 16) and lse.shape == (8,)  # what backward keeps: O((n + N) D)


@needs_ext
def test_nt_xent_opcheck_and_compile():
    z1, z2 = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1))
    loss_fn = torch.compile(lambda a, b: nt_xent(a, b, 0.1), fullgraph=True, backend="eager")
    assert torch.allclose(loss_fn(z1, z2), nt_xent_reference(z1, z2, 0.1), rtol=1e-5)


def test_nt_xent_under_bf16_inputs_is_computed_in_float32(impl):
    z1, z2 = torch.randn(32, 64), torch.randn(32, 64)
    loss = impl(z1.bfloat16(), z2.bfloat16(), 0.07)
    assert loss.dtype == torch.float32
    ref = nt_xent_reference(z1.bfloat16().float(), z2.bfloat16().float(), 0.07)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_byol_loss_equals_the_plain_formula_and_gradchecks(byol_impl):
    torch.manual_seed(2)
    p = torch.randn(40, 256, requires_grad=True)
    z = torch.randn(40, 256, requires_grad=True)
    loss, ref = byol_impl(p, z), byol_loss_reference(p, z)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(torch.autograd.grad(loss, (p, z)), torch.autograd.grad(ref, (p, z))):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    p64 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    z64 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(byol_impl, (p64, z64))
    assert byol_impl(z.detach(), z.detach()).item() == pytest.approx(0, abs=1e-6)
    assert byol_impl(z.detach(), -z.detach()).item() == pytest.approx(4, abs=1e-5)
    assert BYOLLoss()(p, z).item() == loss.item()  # the module is the function
    # bf16 inputs are computed in float32 on both branches
    low = byol_impl(p.detach().bfloat16(), z.detach().bfloat16())
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(byol_loss_reference(p.detach().bfloat16().float(),
                                                           z.detach().bfloat16().float()).item(), rel=1e-5)


@needs_ext
def test_byol_opcheck():
    torch.library.opcheck(torch.ops.ecgfast.byol_loss.default, (torch.randn(4, 8, requires_grad=True),
                                                                torch.randn(4, 8, requires_grad=True)))


def test_ema_update_equals_the_formula():
    t = [torch.randn(3, 4), torch.randn(5)]
    o = [torch.randn(3, 4), torch.randn(5)]
    want = [0.99 * a + 0.01 * b for a, b in zip(t, o)]
    ema_update_(t, o, 0.99)
    for a, b in zip(t, want):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="tau must be in"):
        ema_update_(t, o, 0.0)


def test_ntxent_loss_gather_distributed_in_a_one_process_group(tmp_path):
    """The gathered path end to end (all_gather with gradient, offset from the rank) in a gloo group
    of one: it must equal the plain loss and gradients."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(5)
        z1, z2 = torch.randn(20, 16, requires_grad=True), torch.randn(20, 16, requires_grad=True)
        loss = NTXentLoss(0.1, gather_distributed=True)(z1, z2)
        ref = nt_xent_reference(z1, z2, 0.1)
        assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
        for a, b in zip(torch.autograd.grad(loss, (z1, z2)), torch.autograd.grad(ref, (z1, z2))):
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    finally:
        dist.destroy_process_group()


# --- the compiled ops on each device against the CPU -----------

OPS = cpu_and_cuda(compiled=True)
CUDA_ONLY = cpu_and_cuda(cpu=False, compiled=True)


def _pair(n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


def _loss_and_grads(fn, tensors, device):
    leaves = [t.detach().to(device, copy=True).requires_grad_() for t in tensors]  # fresh leaves per device
    loss = fn(*leaves)
    return loss.detach().cpu(), [g.cpu() for g in torch.autograd.grad(loss, leaves)]


def _assert_close(a, b, rtol):
    assert (a - b).abs().max().item() <= rtol * b.abs().max().item()


def _on_the_cpu(device, op, reference_formula):
    """What the op on ``device`` is compared with, on the CPU: the CPU kernel for CUDA, the plain formula for the
    CPU (so neither case compares a kernel with itself)."""
    assert op_backend(op.__name__, device) == "cpp"
    return op if device == "cuda" else reference_formula


# float32: both devices accumulate 128-long dot products and 600-long row sums in float32 in
# different orders; 2e-5 of the largest value is ~100 ulps of it.
@needs_ext
@pytest.mark.usefixtures("ieee_float32")
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("n", [5, 300])  # 300: 2N = 600 rows, several tiles of 256
def test_nt_xent_on_the_device_equals_the_cpu(dtype, rtol, n, device):
    z1, z2 = _pair(n, 128, dtype, seed=n)
    cpu_fn = _on_the_cpu(device, nt_xent, nt_xent_reference)
    loss_c, grads_c = _loss_and_grads(lambda a, b: cpu_fn(a, b, 0.07), (z1, z2), "cpu")
    loss_g, grads_g = _loss_and_grads(lambda a, b: nt_xent(a, b, 0.07), (z1, z2), device)
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    for a, b in zip(grads_g, grads_c):
        _assert_close(a, b, rtol)


@needs_ext
@pytest.mark.usefixtures("ieee_float32")
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_nt_xent_distributed_on_the_device_equals_the_cpu_and_sums_to_global(dtype, rtol, device):
    z1, z2 = _pair(300, 64, dtype, seed=11)
    sizes, tau = [100, 150, 50], 0.1  # unequal shares: each loss weighted by n_k / N (1/K when equal)
    cpu_fn = _on_the_cpu(device, nt_xent, nt_xent_reference)

    def split(fn):  # the ranks' losses weighted by their share of rows; a and b are rows and columns
        def run(a, b):
            total, offset = 0, 0
            for n in sizes:
                total = total + n / a.shape[0] * fn(a[offset:offset + n], b[offset:offset + n], tau,
                                                    z1_all=a, z2_all=b, offset=offset)
                offset += n
            return total
        return run

    loss_c, grads_c = _loss_and_grads(split(cpu_fn), (z1, z2), "cpu")
    loss_g, grads_g = _loss_and_grads(split(nt_xent), (z1, z2), device)
    ref_loss, ref_grads = _loss_and_grads(lambda a, b: nt_xent_reference(a, b, tau), (z1, z2), device)
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    assert loss_g.item() == pytest.approx(ref_loss.item(), rel=rtol)
    for a, b, r in zip(grads_g, grads_c, ref_grads):
        _assert_close(a, b, rtol)
        _assert_close(a, r, rtol)


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_nt_xent_distributed_gradcheck_on_the_device(device):
    z1, z2 = (t.to(device).requires_grad_() for t in _pair(3, 5, torch.float64, seed=12))
    a1, a2 = (t.to(device).requires_grad_() for t in _pair(7, 5, torch.float64, seed=13))
    assert torch.autograd.gradcheck(lambda *t: nt_xent(t[0], t[1], 0.5, z1_all=t[2], z2_all=t[3], offset=4),
                                    (z1, z2, a1, a2))


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_nt_xent_opcheck_on_the_device(device):
    z1, z2 = (t.to(device).requires_grad_() for t in _pair(8, 16, torch.float32, seed=14))
    a1, a2 = (t.to(device).requires_grad_() for t in _pair(24, 16, torch.float32, seed=15))
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1))
    torch.library.opcheck(torch.ops.ecgfast.nt_xent.default, (z1, z2, 0.1, a1, a2, 8))


@needs_ext
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_byol_loss_on_the_device_equals_the_cpu(dtype, rtol, device):
    p, z = _pair(257, 256, dtype, seed=16)  # 257 rows, D not a multiple of the warp
    loss_c, grads_c = _loss_and_grads(_on_the_cpu(device, byol_loss, byol_loss_reference), (p, z), "cpu")
    loss_g, grads_g = _loss_and_grads(byol_loss, (p, z), device)
    assert loss_g.dtype == dtype
    assert loss_g.item() == pytest.approx(loss_c.item(), rel=rtol)
    for a, b in zip(grads_g, grads_c):
        _assert_close(a, b, rtol)


@needs_ext
@pytest.mark.usefixtures("ieee_float32")
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_losses_step_needs_no_host_sync(device):
    """Forward and backward of both losses only queue work on the stream."""
    z1, z2 = (t.to(device).requires_grad_() for t in _pair(300, 128, torch.float32, seed=17))
    a1, a2 = (t.to(device).requires_grad_() for t in _pair(900, 128, torch.float32, seed=18))

    def step():
        (nt_xent(z1, z2) + nt_xent(z1, z2, z1_all=a1, z2_all=a2, offset=300) + byol_loss(z1, z2)).backward()

    step()  # warm-up: cuBLAS handles and the allocator outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode(0)


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_byol_opcheck_on_the_device(device):
    p, z = (t.to(device).requires_grad_() for t in _pair(4, 8, torch.float32, seed=19))
    torch.library.opcheck(torch.ops.ecgfast.byol_loss.default, (p, z))


@needs_ext
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_losses_tensors_on_two_devices_are_an_error(device):
    z1, z2 = _pair(4, 8, torch.float32, seed=20)
    with pytest.raises(RuntimeError, match=r"nt_xent: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.nt_xent(z1.to(device), z2, 0.1)
    with pytest.raises(RuntimeError, match=r"nt_xent: all tensors must be on one device"):
        torch.ops.ecgfast.nt_xent(z1.to(device), z2.to(device), 0.1, z1, z2.to(device), 0)
    with pytest.raises(RuntimeError, match=r"byol_loss: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.byol_loss(z1.to(device), z2)
