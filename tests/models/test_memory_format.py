"""The encoders in channels-last against the same weights in the contiguous (NCW) layout.

Both layouts compute the same network (a 1 x k conv2d on a view of each Conv1d weight), so
they agree to rounding: fp32 within a tolerance scaled by the output's size plus an absolute
term; bf16 autocast within a small fraction of how far bf16 itself is from fp32.
"""
from __future__ import annotations

import copy

import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.models import BYOLModel, ECGClassifier, SimCLRModel
from ecgfast.models.backbones import ENCODER_NAMES, build_encoder
from ecgfast.models.layout import (
    MEMORY_FORMATS,
    check_memory_format,
    memory_format_of,
    resolve_memory_format,
    set_memory_format,
)


def _pair(name, seed=0):
    torch.manual_seed(seed)
    contiguous = build_encoder(name)
    channels_last = set_memory_format(copy.deepcopy(contiguous), "channels-last")
    return contiguous, channels_last


def _forward_backward(enc, x, precision):
    enc.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        y = enc(x)
    # random weights per sample and feature: a gradient that is the same for every sample would vanish in
    # BatchNorm's backward (it subtracts the batch mean) and leave only rounding to compare
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    (y.float() * w).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in enc.parameters()])
    return y.float().detach(), grads, x.grad


def _rel(a, b):
    return ((a - b).norm() / (b.norm() + 1e-12)).item()


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_channels_last_equals_contiguous_fp32(name):
    a, b = _pair(name)
    x = torch.randn(3, 12, 200, generator=torch.Generator().manual_seed(1))
    ya, ga, xa = _forward_backward(a, x, "fp32")
    yb, gb, xb = _forward_backward(b, x, "fp32")
    torch.testing.assert_close(yb, ya, rtol=1e-4, atol=1e-5 * ya.abs().max().item() + 1e-6)
    # Gradients as a whole (relative L2): a ReLU input within rounding of 0 may fall on the other side of
    # the kink in the other layout and flip that one entry's gradient (seen once, inception1d: 5e-5).
    assert _rel(gb, ga) < 1e-3 and _rel(xb, xa) < 1e-3, (_rel(gb, ga), _rel(xb, xa))
    # BatchNorm running statistics follow the same batches
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(vb, va, rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_channels_last_equals_contiguous_bf16(name):
    """Under bf16 autocast the two layouts round differently (other kernels, other orders of summation);
    their difference stays well inside bf16's own distance from fp32."""
    a, b = _pair(name)
    x = torch.randn(3, 12, 200, generator=torch.Generator().manual_seed(1))
    ref_y, ref_g, _ = _forward_backward(copy.deepcopy(a), x, "fp32")
    ya, ga, _ = _forward_backward(a, x, "bf16")
    yb, gb, _ = _forward_backward(b, x, "bf16")
    bf16_error_y, bf16_error_g = _rel(ya, ref_y), _rel(ga, ref_g)
    assert bf16_error_y < 0.05  # the precision itself (a sanity bound; batch 3 makes BN's backward noisy)
    assert _rel(yb, ya) <= 2 * bf16_error_y + 1e-3
    assert _rel(gb, ga) <= 2 * bf16_error_g + 1e-3


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_state_dicts_are_the_same_in_both_layouts(name):
    a, b = _pair(name)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)
    c = build_encoder(name)  # a fresh contiguous one takes the channels-last one's weights, and back
    c.load_state_dict(sb, strict=True)
    set_memory_format(c, "channels-last").load_state_dict(sa, strict=True)


def test_the_convolutions_see_channels_last_tensors():
    _, enc = _pair("xresnet1d50")
    seen = []
    for m in enc.modules():
        if isinstance(m, torch.nn.Conv1d):
            m.register_forward_hook(lambda mod, inp, out: seen.append(
                (inp[0].dim(), inp[0].is_contiguous(memory_format=torch.channels_last),
                 out.is_contiguous(memory_format=torch.channels_last))))
    fmap = enc.forward_features(torch.randn(2, 12, 256))
    assert fmap.shape == (2, 256, 8) and len(seen) == sum(isinstance(m, torch.nn.Conv1d) for m in enc.modules())
    assert all(s == (4, True, True) for s in seen)
    contiguous = set_memory_format(enc, "contiguous")
    seen.clear()
    contiguous(torch.randn(2, 12, 256))
    assert all(s[0] == 3 for s in seen)


def test_set_memory_format_reaches_every_encoder_of_a_model():
    byol = set_memory_format(BYOLModel(build_encoder("resnet1d_wang"), hidden=32), "channels-last")
    assert byol.encoder.memory_format == byol.target_encoder.memory_format == "channels-last"
    assert memory_format_of(byol) == "channels-last"
    for model in (SimCLRModel(build_encoder("inception1d"), hidden=32), ECGClassifier(build_encoder("ecg1dcnn"))):
        assert memory_format_of(model) == "contiguous"
        x = torch.randn(2, 12, 128)
        want = model.eval()(x)
        torch.testing.assert_close(set_memory_format(model, "channels-last")(x), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="resolve 'auto' first"):
        set_memory_format(byol, "auto")


def test_memory_format_names_and_auto():
    assert MEMORY_FORMATS == ("auto", "channels-last", "contiguous")
    for fmt in ("channels-last", "contiguous"):
        assert check_memory_format(fmt) == fmt
        assert resolve_memory_format(fmt, "cpu", "bf16") == fmt
    with pytest.raises(ConfigError, match=r"--memory-format 'bogus': unknown memory format; expected one of "
                                          r"auto, channels-last, contiguous"):
        check_memory_format("bogus")
    assert resolve_memory_format("auto", "cpu", "fp32") == "channels-last"
    assert resolve_memory_format("auto", "cuda", "bf16") == "channels-last"
    assert resolve_memory_format("auto", "cpu", "bf16") == "channels-last"


def test_scripted_and_compiled_channels_last_encoders_match_eager():
    _, enc = _pair("inception1d", seed=3)
    x = torch.randn(2, 12, 128)
    want = enc.eval()(x)
    torch.testing.assert_close(torch.jit.script(enc)(x), want, rtol=0, atol=0)
    enc.train()
    compiled = torch.compile(enc, backend="eager", fullgraph=True)
    got = compiled(x)
    got.sum().backward()
    g = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    enc(x).sum().backward()
    for a, b in zip(g, [p.grad for p in enc.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
