"""ecgfast::gather_dequantize on the CPU: both overloads equal the plain-torch reference, bit for bit."""
import pytest
import torch

import ecgfast.data._ops as ops
from ecgfast._extension import EXTENSION_AVAILABLE
from ecgfast.data._ops import gather_dequantize, gather_dequantize_reference

needs_ext = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")


def _storage(seed=0, n=30, leads=12, length=257):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(-32768, 32767, (n, leads, length), dtype=torch.int16, generator=g)
    gain = torch.rand(leads, generator=g) * 900 + 100
    baseline = torch.randint(-50, 50, (leads,), generator=g).float()
    index = torch.randint(0, n, (17,), generator=g)
    return raw, index, gain, baseline


@pytest.mark.parametrize("extension", [pytest.param(True, marks=needs_ext), False], ids=["op", "fallback"])
def test_both_overloads_equal_the_reference(monkeypatch, extension):
    monkeypatch.setattr(ops, "EXTENSION_AVAILABLE", extension)
    raw, index, gain, baseline = _storage()
    expected = gather_dequantize_reference(raw, index, gain, baseline)
    assert torch.equal(gather_dequantize(raw, index, gain, baseline), expected)
    out = torch.full((17, 12, 257), float("nan"))
    assert gather_dequantize(raw, index, gain, baseline, out=out) is out
    assert torch.equal(out, expected)


@needs_ext
def test_opcheck_both_overloads():
    raw, index, gain, baseline = _storage(seed=1, n=9, length=40)
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.default, (raw, index % 9, gain, baseline))
    out = torch.empty(17, 12, 40)
    torch.library.opcheck(torch.ops.ecgfast.gather_dequantize.out, (raw, index, gain, baseline), {"out": out})


@needs_ext
@pytest.mark.parametrize("bad, message", [
    (lambda o: o[:, :, :-1], r"out must have shape \(17, 12, 257\)"),
    (lambda o: o.double(), "out must be float32"),
    (lambda o: o.transpose(1, 2).contiguous().transpose(1, 2), "out must be contiguous"),
])
def test_out_is_checked(bad, message):
    raw, index, gain, baseline = _storage(seed=2)
    with pytest.raises(RuntimeError, match=message):
        gather_dequantize(raw, index, gain, baseline, out=bad(torch.empty(17, 12, 257)))


@needs_ext
def test_out_of_range_index_is_an_error_and_out_untouched():
    raw, _, gain, baseline = _storage(seed=3)
    out = torch.zeros(2, 12, 257)
    with pytest.raises(RuntimeError, match="index 30 out of range for 30 records"):
        gather_dequantize(raw, torch.tensor([1, 30]), gain, baseline, out=out)
    assert not out.any()
