"""The augmentations on any device and dtype: which implementation serves a tensor, no CPU helper
tensors (proven on the meta device), fp16/bf16/float64 and non-contiguous inputs, the compiled op on
each device (``cpu_and_cuda``: CUDA == the CPU kernel, CPU == the torch reference), bad input."""
import warnings

import numpy as np
import pytest
import torch
from devices import assert_device_side_assert, cpu_and_cuda, no_cpu_tensors, on_meta
from ecg_signals import ecg_like

import ecgfast.base.extension as ext
from ecgfast.augment import AUGMENTATIONS, CONFIGS, AugmentPipeline, TorchReferencePipeline
from ecgfast.augment._ops import augment_views
from ecgfast.augment.pipeline import reference_views

needs_ext = pytest.mark.skipif(not ext.EXTENSION_AVAILABLE, reason="compiled extension not built")
ALL_ON = {a: 1.0 for a in AUGMENTATIONS}


@pytest.fixture
def fresh_warnings(monkeypatch):
    """use_compiled warns once per (op, device type) per process: start each test with none given."""
    monkeypatch.setattr(ext, "_warned", set())


def _no_kernel_for(monkeypatch, device_type):
    real = ext.has_kernel
    monkeypatch.setattr(ext, "has_kernel", lambda op, d: torch.device(d).type != device_type and real(op, d))


def _rebuild_warnings(record):
    return [w for w in record if issubclass(w.category, RuntimeWarning) and ext.REBUILD_COMMAND in str(w.message)]


# --- which implementation serves a tensor (ecgfast.base.extension.use_compiled) ---------------------------------

@needs_ext
def test_no_compiled_kernel_for_the_device_takes_the_reference_with_one_warning(monkeypatch, fresh_warnings):
    """A CPU-only build on a GPU machine: the op has no kernel for the tensor's device. Played on the CPU
    (the op reports no CPU kernel), so the result can be compared with the compiled op's."""
    x = ecg_like(8, length=300, seed=1)
    compiled = torch.stack(AugmentPipeline(100, seed=2, rates=ALL_ON, backend="cpp")(x, step=4))
    _no_kernel_for(monkeypatch, "cpu")
    pipe = AugmentPipeline(100, seed=2, rates=ALL_ON, backend="cpp")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = torch.stack(pipe(x, step=4))
        second = torch.stack(pipe(x, step=4))
    assert len(_rebuild_warnings(record)) == 1 and "ecgfast::augment_views" in str(record[0].message)
    assert torch.equal(first, second)
    assert torch.equal(first, torch.stack(TorchReferencePipeline(100, seed=2, rates=ALL_ON)(x, step=4)))
    assert (first - compiled).abs().max() <= 1e-5 * x.abs().max()


def test_without_the_extension_the_cpu_takes_numba_and_other_devices_the_reference(monkeypatch, fresh_warnings):
    monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    monkeypatch.delenv("ECGFAST_BACKEND", raising=False)
    x = ecg_like(6, length=200, seed=3)
    pipe = AugmentPipeline(100, seed=1, rates=ALL_ON)
    assert pipe.backend == "numba"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pure-Python install is not warned about
        cpu = torch.stack(pipe(x, step=0))
        meta = pipe(on_meta(x), step=0)
    reference = torch.stack(TorchReferencePipeline(100, seed=1, rates=ALL_ON)(x, step=0))
    assert (cpu - reference).abs().max() <= 1e-5 * x.abs().max()
    assert all(v.device.type == "meta" and v.shape == x.shape and v.dtype == torch.float32 for v in meta)


def test_a_device_without_a_compiled_kernel_is_served_by_the_reference(monkeypatch, fresh_warnings):
    """The meta device stands for the GPU of a CPU-only build: ecgfast::augment_views has no kernel for it."""
    _no_kernel_for(monkeypatch, "meta")
    x = on_meta(ecg_like(4, length=128, seed=4))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        v1, v2 = AugmentPipeline(100, seed=0, rates=ALL_ON)(x)
        AugmentPipeline(100, seed=0, rates=ALL_ON)(x)
    assert v1.device.type == v2.device.type == "meta" and v1.shape == x.shape
    assert len(_rebuild_warnings(record)) == (1 if ext.EXTENSION_AVAILABLE else 0)


def test_numba_refuses_a_tensor_off_the_cpu_clearly():
    x = on_meta(ecg_like(2, length=128))
    params = on_meta(AugmentPipeline(100).draw(2, 128, step=0))
    with pytest.raises(ValueError, match="Numba backend runs on the CPU only.*meta"):
        augment_views(x, params, 100.0, "numba")


def test_explicit_cpp_backend_without_the_extension_is_refused(monkeypatch):
    monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    with pytest.raises(RuntimeError, match="compiled extension"):
        AugmentPipeline(100, backend="cpp")


# --- device-generic: no CPU helper tensor inside a step -----------------------------------------------------

@pytest.mark.parametrize("fs,length", [(100, 300), (500, 1000)])
def test_reference_pipeline_makes_no_cpu_tensor(fs, length):
    """Every augmentation on (all on, two views) with the input on meta: each helper tensor (time axes,
    filter matrices, noise counters) must be made on the input's device. The parameters are drawn on the
    host by design: they and the samples each augmentation takes are the only uploads."""
    x = on_meta(ecg_like(6, length=length, fs=fs, seed=5))
    with no_cpu_tensors() as checker:
        v1, v2 = TorchReferencePipeline(fs, seed=3, rates=ALL_ON)(x)
    assert v1.device.type == "meta" and v1.shape == v2.shape == x.shape
    assert len(checker.uploads) <= 2, checker.uploads


def test_each_augmentation_function_makes_no_cpu_tensor():
    """Each function of the reference alone, all its tensors on meta."""
    from ecgfast.augment import functional as F

    x = on_meta(ecg_like(3, length=200, seed=6))
    n = torch.full((3,), 0.5, dtype=torch.float64, device="meta")
    idx = torch.zeros(3, dtype=torch.long, device="meta")
    sos = torch.zeros(3, 2, 5, dtype=torch.float64, device="meta")
    with no_cpu_tensors() as checker:
        for y in (F.frequency_warp(x, n + 0.5), F.bandpass(x, sos), F.mixup(x, x, n), F.cutmix(x, x, idx, idx + 20),
                  F.motion_artifact(x, n, n, n, 100.0), F.channel_noise(x, n, n, n),
                  F.temporal_dropout(x, idx + 1, idx + 10)):
            assert y.device.type == "meta" and y.shape == x.shape
    assert checker.uploads == []


def test_the_checker_catches_a_cpu_helper_and_allows_explicit_uploads():
    x = on_meta(torch.zeros(2, 5))
    with pytest.raises(AssertionError, match=r"aten\.arange.*CPU tensor.*test_augment_devices\.py"):
        with no_cpu_tensors():
            x + torch.arange(5)
    with pytest.raises(AssertionError, match="CPU tensor"):
        with no_cpu_tensors():
            torch.gather(x, 1, torch.zeros(2, 5, dtype=torch.long))  # the meta device itself lets this pass
    with pytest.raises(AssertionError, match=r"aten\.ones.*CPU tensor"):
        with no_cpu_tensors():
            x + torch.ones(5).to("meta")  # made on the CPU, then copied: a helper without device=
    with no_cpu_tensors() as checker:
        x + torch.from_numpy(np.ones(5, np.float32)).to("meta")  # host data, uploaded
        x + torch.as_tensor(np.ones(5, np.float32), device="meta")
    assert len(checker.uploads) == 2


# --- dtypes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_half_bfloat_and_double_inputs_give_the_float32_views_within_their_rounding(dtype, device, backend):
    """Computed in float32 (the kernels' type): the views of an fp16/bf16/float64 batch are those of the same
    values in float32, exactly, and so within the input's rounding of the float32 batch's views."""
    x = ecg_like(8, length=300, seed=7).to(device)
    xd = x.to(dtype)
    pipe = AugmentPipeline(100, seed=4, rates=ALL_ON, backend=backend)
    views = torch.stack(pipe(xd, step=1))
    assert views.dtype == torch.float32 and views.device == x.device
    assert torch.equal(views, torch.stack(pipe(xd.float(), step=1)))
    rounding = (xd.float() - x).abs().max().item()
    diff = (views - torch.stack(pipe(x, step=1))).abs().max().item()
    assert diff <= 2 * rounding + 1e-5
    if dtype == torch.float16:
        assert diff <= 1e-2  # mV


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_a_full_half_precision_batch_is_not_refused(dtype, device):
    """256 x 12 x 1000 at 0.05 mV sums to 1.5e5 mV, beyond fp16's 65504: the finiteness check must not
    overflow (on CUDA it would fire a device-side assert and lose the context)."""
    x = torch.full((256, 12, 1000), 0.05, dtype=dtype, device=device)
    pipe = AugmentPipeline(100, seed=0, enabled={a: False for a in AUGMENTATIONS})  # views == input: cheap
    v1, v2 = pipe(x)
    if device == "cuda":
        torch.cuda.synchronize()
    assert torch.equal(v1, x.float()) and torch.equal(v2, x.float())


def test_non_finite_after_conversion_is_refused():
    with pytest.raises(ValueError, match="NaN or Inf"):
        AugmentPipeline(100)(torch.full((2, 12, 100), 1e300, dtype=torch.float64))  # inf in float32
    x = ecg_like(2, length=100).half()
    x[1, 3, 50] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        AugmentPipeline(100)(x)


# --- non-contiguous inputs ----------------------------------------------------------------------------------

def _non_contiguous(x):
    """The same values under other strides: batch-major storage transposed, and every other time sample."""
    permuted = x.transpose(0, 2).contiguous().transpose(0, 2)
    strided = torch.stack([x, torch.zeros_like(x)], dim=-1).flatten(-2)[..., ::2]
    assert not permuted.is_contiguous() and not strided.is_contiguous()
    assert torch.equal(permuted, x) and torch.equal(strided, x)
    return permuted, strided


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_non_contiguous_input_gives_the_same_views(device, backend):
    x = ecg_like(6, length=200, seed=8).to(device)
    pipe = AugmentPipeline(100, seed=5, rates=ALL_ON, backend=backend)
    want = torch.stack(pipe(x, step=0))
    for y in _non_contiguous(x):
        assert torch.equal(torch.stack(pipe(y, step=0)), want)


@needs_ext
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_op_takes_non_contiguous_x_and_params(device):
    x = ecg_like(5, length=150, seed=9).to(device)
    params = AugmentPipeline(100, seed=6, rates=ALL_ON).draw(5, 150, step=0).to(device)
    want = torch.ops.ecgfast.augment_views(x, params, 100.0)
    nc_params = params.transpose(0, 1).contiguous().transpose(0, 1)
    assert not nc_params.is_contiguous()
    for y in _non_contiguous(x):
        assert torch.equal(torch.ops.ecgfast.augment_views(y, nc_params, 100.0), want)
        assert torch.equal(reference_views(y, nc_params, 100.0), reference_views(x, params, 100.0))


# --- CUDA == CPU (skipped without a GPU) --------------------------------------------------------------------

@pytest.mark.parametrize("device", cpu_and_cuda())
def test_torch_reference_on_the_device_equals_the_cpu(device):
    """The plain-torch reference runs on the device (the CPU-only build's path on a GPU)."""
    x = ecg_like(6, length=300, seed=10)
    cpu = torch.stack(TorchReferencePipeline(100, seed=7, rates=ALL_ON)(x, step=2))
    dev = torch.stack(TorchReferencePipeline(100, seed=7, rates=ALL_ON)(x.to(device), step=2))
    assert dev.device.type == device
    assert (dev.cpu() - cpu).abs().max() <= 1e-5 * x.abs().max()


# --- the compiled op on each device against an independent implementation -----------

OPS = cpu_and_cuda(compiled=True)
CUDA_ONLY = cpu_and_cuda(cpu=False, compiled=True)


def assert_views_equal(pipe_kwargs, x, device, step=3):
    """The compiled op on ``device`` against an independent implementation: on CUDA the CPU kernel (both run
    augment_lead.h's per-lead code; they differ only by FMA contraction and libm vs CUDA sin/cos, a few
    float32 ulps, hence the tolerance), on the CPU the torch reference."""
    want = torch.stack(AugmentPipeline(**pipe_kwargs, backend="cpp" if device == "cuda" else "torch")(x, step=step))
    got = torch.stack(AugmentPipeline(**pipe_kwargs, backend="cpp")(x.to(device), step=step))
    assert got.device.type == device and got.shape == want.shape
    assert (got.cpu() - want).abs().max().item() <= 1e-5 * x.abs().max().item()


def _op_elsewhere(x, params, device):
    """What the compiled op on ``device`` is compared with: the CPU kernel for CUDA, the reference for the CPU."""
    if device == "cuda":
        return torch.ops.ecgfast.augment_views(x, params, 100.0)
    return reference_views(x, params, 100.0)


@needs_ext
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augment_views_each_augmentation_alone(name, device):
    x = ecg_like(16, seed=1)
    enabled = {a: a == name for a in AUGMENTATIONS}
    assert_views_equal(dict(sampling_rate=100, seed=2, enabled=enabled, rates={name: 1.0}), x, device)


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_augment_views_all_seven_together(device):
    assert_views_equal(dict(sampling_rate=100, seed=3, rates=ALL_ON), ecg_like(32, seed=3), device)


@needs_ext
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("config", [c for c in CONFIGS if c != "full"])
def test_augment_views_each_ablation(config, device):
    assert_views_equal(dict(sampling_rate=100, seed=4, enabled=config, rates=ALL_ON), ecg_like(16, seed=4), device)


@needs_ext
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("kw", [dict(crop_seconds=2.5), dict(crop_seconds=2.5, resized_crop_min=0.3),
                                dict(resized_crop_min=0.5), dict(crop_seconds=2.57)],
                         ids=["crop", "crop+rrc", "rrc", "crop-not-a-multiple-of-32"])
def test_augment_views_crops(kw, device):
    """Step 0 (the crop kernel) then the tiles reading each view's crops (Problem::view_stride)."""
    assert_views_equal(dict(sampling_rate=100, seed=11, rates=ALL_ON, **kw), ecg_like(24, seed=11), device)


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_augment_views_design_rates_at_500_hz(device):
    assert_views_equal(dict(sampling_rate=500, seed=5), ecg_like(8, length=5000, fs=500, seed=5), device)


@needs_ext
@pytest.mark.parametrize("device", OPS)
@pytest.mark.parametrize("batch,leads,length", [(1, 12, 1000), (3, 1, 64), (5, 3, 257), (257, 12, 100),
                                                (1500, 12, 64)])
def test_augment_views_any_shape_the_cpu_kernel_accepts(batch, leads, length, device):
    """Other lead counts take the CPU's per-lead band-pass, 12 leads its 12-wide one. The CUDA kernel's
    tiles of 32 rows must be right for a partial last tile (1 x 12 x 2 = 24 rows), time not a multiple of
    32 (257), one lead, and more tiles than blocks (1500 x 12 x 2 rows: the grid stride, with each
    block's scratch reused)."""
    x = ecg_like(batch, leads=leads, length=length, seed=batch)
    params = AugmentPipeline(100, seed=6, rates=ALL_ON, leads=leads).draw(batch, length, step=0)
    want = _op_elsewhere(x, params, device)
    got = torch.ops.ecgfast.augment_views(x.to(device), params.to(device), 100.0)
    assert (got.cpu() - want).abs().max().item() <= 1e-5 * x.abs().max().item()


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_augment_views_non_contiguous_input(device):
    x = ecg_like(6, seed=7).transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    params = AugmentPipeline(100, seed=7, rates=ALL_ON).draw(6, 1000, step=0)
    want = _op_elsewhere(x.contiguous(), params, device)
    got = torch.ops.ecgfast.augment_views(x.to(device), params.to(device), 100.0)
    assert not x.to(device).is_contiguous()
    assert (got.cpu() - want).abs().max().item() <= 1e-5 * x.abs().max().item()


@needs_ext
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_augment_pipeline_step_needs_no_host_sync(device):
    """Parameters travel from pinned memory without blocking; the NaN check is a device assert."""
    pipe = AugmentPipeline(100, seed=8, rates=ALL_ON)
    x = ecg_like(16, seed=8).to(device)
    pipe(x)  # warm-up: lazy CUDA initialisation outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        v1, v2 = pipe(x)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert v1.is_cuda and v2.is_cuda and v1.shape == x.shape


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_augment_views_opcheck_on_the_device(device):
    x = ecg_like(4, length=128, seed=9).to(device)
    params = AugmentPipeline(100, seed=9, rates=ALL_ON).draw(4, 128, step=0).to(device)
    torch.library.opcheck(torch.ops.ecgfast.augment_views.default, (x, params, 100.0))


@needs_ext
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_augment_views_tensors_on_two_devices_is_an_error(device):
    x = ecg_like(2, seed=10)
    params = AugmentPipeline(100, seed=10).draw(2, 1000, step=0)
    with pytest.raises(RuntimeError, match=r"augment_views: all tensors must be on one device.*cuda.*cpu"):
        torch.ops.ecgfast.augment_views(x.to(device), params, 100.0)
    with pytest.raises(RuntimeError, match=r"augment_views: all tensors must be on one device"):
        torch.ops.ecgfast.augment_views(x, params.to(device), 100.0)


@needs_ext
@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("case", ["mix", "cut"])
def test_out_of_range_partner_is_a_device_side_assert(case, device):
    from ecgfast.augment.params import COL

    assert_device_side_assert(case, COL["mix_partner"] if case == "mix" else COL["cut_partner"])
