"""ecgfast::gather_dequantize: both overloads equal the plain-torch reference, bit for bit, on every
device, for any strides; which implementation serves a tensor; bad arguments."""
import warnings

import pytest
import torch
from devices import assert_device_side_assert, cpu_and_cuda, no_cpu_tensors, on_meta

import ecgfast.base.extension as ext
import ecgfast.data._ops as _ops
from ecgfast.data._ops import gather_dequantize, gather_dequantize_reference

needs_ext = pytest.mark.skipif(not ext.EXTENSION_AVAILABLE, reason="compiled extension not built")


def _storage(seed=0, n=30, leads=12, length=257, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(-32768, 32767, (n, leads, length), dtype=torch.int16, generator=g)
    gain = torch.rand(leads, generator=g) * 900 + 100
    baseline = torch.randint(-50, 50, (leads,), generator=g).float()
    index = torch.randint(0, n, (17,), generator=g)
    return tuple(t.to(device) for t in (raw, index, gain, baseline))


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(ext, "_warned", set())


def _rebuild_warnings(record):
    return [w for w in record if issubclass(w.category, RuntimeWarning) and ext.REBUILD_COMMAND in str(w.message)]


def _no_kernel_for(monkeypatch, device_type):
    real = ext.has_kernel
    monkeypatch.setattr(ext, "has_kernel", lambda op, d: torch.device(d).type != device_type and real(op, d))


def _both_overloads_equal_the_reference(raw, index, gain, baseline):
    expected = gather_dequantize_reference(raw, index, gain, baseline)
    assert expected.dtype == torch.float32 and expected.device == raw.device
    assert torch.equal(gather_dequantize(raw, index, gain, baseline), expected)
    out = torch.full((index.shape[0], raw.shape[1], raw.shape[2]), float("nan"), device=raw.device)
    assert gather_dequantize(raw, index, gain, baseline, out=out) is out
    assert torch.equal(out, expected)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("path", [pytest.param("op", marks=needs_ext), "no-kernel", "no-extension",
                                  pytest.param("ECGFAST_BACKEND=torch", marks=needs_ext)])
def test_both_overloads_equal_the_reference(monkeypatch, fresh_warnings, device, path):
    monkeypatch.delenv("ECGFAST_BACKEND", raising=False)
    if path == "no-kernel":  # a build without a kernel for this device: the plain path, one warning
        _no_kernel_for(monkeypatch, device)
    elif path == "no-extension":  # a pure-Python install: the plain path, no warning
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    elif path == "ECGFAST_BACKEND=torch":  # the plain path asked for, as for every op: no warning
        monkeypatch.setenv("ECGFAST_BACKEND", "torch")
    plain_calls = []  # the plain path checks its arguments in Python (the compiled kernels in C++)
    real_check = _ops._check_args
    monkeypatch.setattr(_ops, "_check_args", lambda *a: plain_calls.append(1) or real_check(*a))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _both_overloads_equal_the_reference(*_storage(device=device))
        _both_overloads_equal_the_reference(*_storage(seed=5, device=device))
    assert len(plain_calls) == (0 if path == "op" else 4)
    names = sorted(str(w.message).split("ecgfast::")[1].split(";")[0] for w in _rebuild_warnings(record))
    assert names == (["gather_dequantize", "gather_dequantize.out"] if path == "no-kernel" and ext.EXTENSION_AVAILABLE
                     else [])


def _non_contiguous(raw, index, gain, baseline):
    """The same values under other strides: every argument non-contiguous, raw in three ways."""
    n, C, T = raw.shape
    spread = lambda t: torch.stack([t, torch.zeros_like(t)], dim=-1).flatten(-2)[..., ::2]  # noqa: E731
    raws = {
        "records-strided": torch.stack([raw, torch.zeros_like(raw)], 1).flatten(0, 1)[::2],
        "time-strided": spread(raw),
        "time-major": raw.permute(2, 0, 1).contiguous().permute(1, 2, 0),
    }
    others = (spread(index), spread(gain), spread(baseline))
    for name, r in raws.items():
        assert not r.is_contiguous() and torch.equal(r, raw), name
    assert not any(t.is_contiguous() for t in others)
    return raws, others


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("path", [pytest.param("op", marks=needs_ext), "no-extension"])
def test_non_contiguous_arguments_give_the_same_batch(monkeypatch, device, path):
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    raw, index, gain, baseline = _storage(seed=6, device=device)
    want = gather_dequantize_reference(raw, index, gain, baseline)
    raws, (nc_index, nc_gain, nc_baseline) = _non_contiguous(raw, index, gain, baseline)
    for name, r in raws.items():
        assert torch.equal(gather_dequantize(r, nc_index, nc_gain, nc_baseline), want), name
        out = torch.empty_like(want)
        gather_dequantize(r, nc_index, nc_gain, nc_baseline, out=out)
        assert torch.equal(out, want), name


@needs_ext
@pytest.mark.parametrize("kind", ["records-strided", "time-strided", "time-major"])
def test_non_contiguous_raw_is_not_copied_whole(kind):
    """A batch reads its rows where they are: no contiguous copy of the (N, C, T) split per call."""
    raw, index, gain, baseline = _storage(seed=7, n=40)
    r = _non_contiguous(raw, index, gain, baseline)[0][kind]
    with torch.profiler.profile(record_shapes=True) as prof:
        gather_dequantize(r, index, gain, baseline)
        gather_dequantize(r, index, gain, baseline, out=torch.empty(17, 12, 257))
    copies = [(e.name, e.input_shapes) for e in prof.events()
              if e.name in ("aten::contiguous", "aten::clone", "aten::copy_") and [40, 12, 257] in e.input_shapes]
    assert copies == []


@pytest.mark.parametrize("path", ["compiled-or-fake", "no-extension"])
def test_plain_path_makes_no_cpu_tensor(monkeypatch, path):
    """The batch assembly is device-generic: with the storage on meta no CPU tensor appears."""
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    raw, index, gain, baseline = on_meta(*_storage(seed=8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a build without meta kernels takes the plain path, warned
        with no_cpu_tensors() as checker:
            x = gather_dequantize(raw, index, gain, baseline)
            out = torch.empty(17, 12, 257, device="meta")
            assert gather_dequantize(raw, index, gain, baseline, out=out) is out
    assert x.device.type == "meta" and x.shape == (17, 12, 257) and x.dtype == torch.float32
    assert checker.uploads == []


@needs_ext
def test_opcheck_both_overloads():
    raw, index, gain, baseline = _storage(seed=1, n=9, length=40)
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.default, (raw, index % 9, gain, baseline))
    out = torch.empty(17, 12, 40)
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.out, (raw, index % 9, gain, baseline), {"out": out})


@pytest.mark.parametrize("path", [pytest.param("op", marks=needs_ext), "no-extension"])
@pytest.mark.parametrize("bad, message", [
    (lambda o: o[:, :, :-1], r"out must have shape \(17, 12, 257\)"),
    (lambda o: o.double(), "out must be float32"),
    (lambda o: o.transpose(1, 2).contiguous().transpose(1, 2), "out must be contiguous"),
])
def test_out_is_checked(monkeypatch, bad, message, path):
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    raw, index, gain, baseline = _storage(seed=2)
    with pytest.raises(RuntimeError, match=message):
        gather_dequantize(raw, index, gain, baseline, out=bad(torch.empty(17, 12, 257)))


@pytest.mark.parametrize("path", [pytest.param("op", marks=needs_ext), "no-extension"])
@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0].int(), *a[1:]), "raw must be int16"),
    (lambda a: (a[0][0], *a[1:]), r"raw must be \(N, C, T\)"),
    (lambda a: (a[0], a[1].int(), *a[2:]), "index must be a 1-D int64 tensor"),
    (lambda a: (a[0], a[1], a[2][:5], a[3]), r"gain must be float32 of shape \(12,\)"),
    (lambda a: (*a[:3], a[3].double()), r"baseline must be float32 of shape \(12,\)"),
    (lambda a: (a[0], a[1], a[2], on_meta(a[3])), "all tensors must be on one device"),
])
def test_bad_arguments_are_refused_clearly(monkeypatch, change, message, path):
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    with pytest.raises(RuntimeError, match=message):
        gather_dequantize(*change(_storage(seed=3)))


@pytest.mark.parametrize("path", [pytest.param("op", marks=needs_ext), "no-extension"])
def test_out_of_range_index_is_an_error_and_out_untouched(monkeypatch, path):
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    raw, _, gain, baseline = _storage(seed=3)
    out = torch.zeros(2, 12, 257)
    with pytest.raises(RuntimeError, match="index 30 out of range for 30 records"):
        gather_dequantize(raw, torch.tensor([1, 30]), gain, baseline, out=out)
    assert not out.any()


# --- the compiled op on each device against the CPU -----------

OPS = cpu_and_cuda(compiled=True)


def _cuda_storage(seed=0, n=20, leads=12, length=257):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(-5000, 5000, (n, leads, length), dtype=torch.int16, generator=g)
    gain = torch.rand(leads, generator=g) * 900 + 100
    baseline = torch.randint(-50, 50, (leads,), generator=g).float()
    return raw, gain, baseline


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_gather_dequantize_on_the_device_equals_the_cpu_bit_for_bit(device):
    raw, gain, baseline = _cuda_storage()
    index = torch.tensor([7, 0, 19, 7, 3])
    cpu = gather_dequantize(raw, index, gain, baseline)
    dev = gather_dequantize(raw.to(device), index.to(device), gain.to(device), baseline.to(device))
    assert dev.device.type == device
    assert torch.equal(dev.cpu(), cpu)  # IEEE division on both: identical
    assert torch.equal(cpu, gather_dequantize_reference(raw, index, gain, baseline))


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_gather_dequantize_out_overload_on_the_device_equals_the_cpu(device):
    raw, gain, baseline = _cuda_storage(seed=4)
    index = torch.tensor([3, 19, 0, 3])
    out = torch.full((4, 12, 257), float("nan"), device=device)
    assert gather_dequantize(raw.to(device), index.to(device), gain.to(device), baseline.to(device), out=out) is out
    assert torch.equal(out.cpu(), gather_dequantize(raw, index, gain, baseline))
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.out,
                          tuple(t.to(device) for t in (raw, index, gain, baseline)), {"out": out})
    if device == "cuda":
        with pytest.raises(RuntimeError, match="out must be on cuda"):
            gather_dequantize(raw.to(device), index.to(device), gain.to(device), baseline.to(device), out=out.cpu())


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_gather_dequantize_large_batch_grid_stride(device):
    raw, gain, baseline = _cuda_storage(seed=1, n=300, length=1000)
    index = torch.randint(0, 300, (2048,), generator=torch.Generator().manual_seed(1))  # > 65535 blocks of 256
    cpu = gather_dequantize_reference(raw, index, gain, baseline)
    dev = gather_dequantize(raw.to(device), index.to(device), gain.to(device), baseline.to(device))
    assert torch.equal(dev.cpu(), cpu)


@needs_ext
@pytest.mark.parametrize("device", OPS)
def test_gather_dequantize_opcheck_on_the_device(device):
    raw, gain, baseline = (t.to(device) for t in _cuda_storage(seed=2))
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.default,
                          (raw, torch.tensor([1, 4, 4], device=device), gain, baseline))


@needs_ext
@pytest.mark.parametrize("device", cpu_and_cuda(cpu=False, compiled=True))
def test_gather_dequantize_tensors_on_two_devices_is_an_error(device):
    raw, gain, baseline = _cuda_storage(seed=3)
    with pytest.raises(RuntimeError, match=r"gather_dequantize: all tensors must be on one device.*index on cpu"):
        torch.ops.ecgfast.gather_dequantize(raw.to(device), torch.tensor([1]), gain.to(device), baseline.to(device))


@needs_ext
@pytest.mark.parametrize("device", cpu_and_cuda(cpu=False, compiled=True))
def test_out_of_range_index_on_cuda_is_a_device_side_assert(device):
    assert_device_side_assert("gather")
