"""The backbones: the registry, parameter counts against the reference's layer definitions, shapes,
bf16 autocast and torch.compile."""
from __future__ import annotations

import math

import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.models import BYOLModel, ECGClassifier, ECGEncoder1DCNN, SimCLRModel
from ecgfast.models.backbones import (
    ENCODER_NAMES,
    ENCODERS,
    REFERENCE_PARAMETERS,
    build_encoder,
    check_encoder_name,
    count_parameters,
    identify_encoder,
    reference_head_parameters,
)

NEW = ("resnet1d_wang", "xresnet1d50", "xresnet1d101", "inception1d")


# -- parameter counts, layer by layer from helme/ecg_ptbxl_benchmarking ----------------------
# Written independently of ecgfast's modules: each function adds up the reference's layers
# (code/models/*.py) in the configuration its fastai_model builds them (kernel_size=5, 12 leads).
def conv(cin, cout, k):  # the reference's convolutions have no bias where a BatchNorm follows
    return cin * cout * k


def bn(c):
    return 2 * c


def ref_resnet1d_wang(cin=12):
    # ResNet1d(BasicBlock1d, [1, 1, 1], inplanes=128, kernel_size=5 -> [5, 3], kernel_size_stem=7)
    stem = conv(cin, 128, 7) + bn(128)
    block = conv(128, 128, 5) + bn(128) + conv(128, 128, 3) + bn(128)
    downsample = conv(128, 128, 1) + bn(128)  # layers 2 and 3 have stride 2
    return stem + 3 * block + 2 * downsample


def ref_xresnet1d(layers, cin=12):
    # XResNet1d(ResBlock, expansion 4, layers, stem_szs=(32, 32, 64), kernel_size=5, kernel_size_stem=5),
    # block_szs = [64 // 4, 64, 64, 64, 64]: every stage 64 hidden -> 256 out channels
    stem = conv(cin, 32, 5) + bn(32) + conv(32, 32, 5) + bn(32) + conv(32, 64, 5) + bn(64)

    def block(ni):
        convs = conv(ni, 64, 1) + bn(64) + conv(64, 64, 5) + bn(64) + conv(64, 256, 1) + bn(256)
        idpath = conv(ni, 256, 1) + bn(256) if ni != 256 else 0  # AvgPool has no parameters
        return convs + idpath

    total, ni = stem, 64
    for n in layers:
        for _ in range(n):
            total, ni = total + block(ni), 256
    return total


def ref_inception1d(cin=12):
    # Inception1d(kernel_size=40 -> kss [39, 19, 9], depth=6, bottleneck_size=32, nb_filters=32, residual)
    def block(ni):
        return conv(ni, 32, 1) + sum(conv(32, 32, k) for k in (39, 19, 9)) + conv(ni, 32, 1) + bn(128)

    blocks = block(cin) + 5 * block(128)
    shortcuts = conv(cin, 128, 1) + bn(128) + conv(128, 128, 1) + bn(128)
    return blocks + shortcuts


def ref_head(nf, nc, lin=128):
    # create_head1d(nf, nc, lin_ftrs=[128]): concat pool, BN(2nf), Dropout, Linear(2nf, 128), ReLU,
    # BN(128), Dropout, Linear(128, nc)
    return bn(2 * nf) + 2 * nf * lin + lin + bn(lin) + lin * nc + nc


REFERENCE_BACKBONE = {"resnet1d_wang": ref_resnet1d_wang(), "xresnet1d50": ref_xresnet1d((3, 4, 6, 3)),
                      "xresnet1d101": ref_xresnet1d((3, 4, 23, 3)), "inception1d": ref_inception1d()}
FEATURES = {"resnet1d_wang": 128, "xresnet1d50": 256, "xresnet1d101": 256, "inception1d": 128}


def test_registry_names_the_backbones_and_refuses_unknown_ones():
    assert ENCODER_NAMES == ("ecg1dcnn", *NEW) and ENCODER_NAMES[0] == "ecg1dcnn"
    for bad in ("resnet50", "", "ECG1DCNN"):
        with pytest.raises(ConfigError) as exc:
            build_encoder(bad)
        assert f"--encoder {bad!r}: unknown encoder; expected one of {', '.join(ENCODER_NAMES)}" == str(exc.value)
    assert check_encoder_name("inception1d") == "inception1d"
    assert isinstance(build_encoder(), ECGEncoder1DCNN)  # the default is the seed's


@pytest.mark.parametrize("name", NEW)
def test_parameter_counts_equal_the_reference_layer_definitions(name):
    enc = build_encoder(name)
    n = count_parameters(enc)
    assert n == REFERENCE_BACKBONE[name] == ENCODERS[name].parameters
    # with the reference's own head at 71 outputs (PTB-XL "all"), the whole reference model
    assert n + ref_head(FEATURES[name], 71) == REFERENCE_PARAMETERS[name]
    assert reference_head_parameters(enc.feature_channels, 71) == ref_head(FEATURES[name], 71)
    # the figures the README states (the paper gives none; these are its code's)
    assert REFERENCE_PARAMETERS[name] == {"resnet1d_wang": 481_863, "xresnet1d50": 962_503,
                                          "xresnet1d101": 1_880_775, "inception1d": 516_167}[name]


def test_the_seed_encoder_is_unchanged():
    assert count_parameters(build_encoder("ecg1dcnn")) == ENCODERS["ecg1dcnn"].parameters == 538_624
    assert build_encoder("ecg1dcnn").out_channels == 256


def test_layers_follow_the_reference():
    wang = build_encoder("resnet1d_wang")
    stem = wang.stem[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (12, 128, (7,), (1,))
    assert [(b.conv1.kernel_size[0], b.conv1.stride[0], b.conv2.kernel_size[0]) for b in wang.blocks] == \
        [(5, 1, 3), (5, 2, 3), (5, 2, 3)]
    for name, depths in (("xresnet1d50", [3, 4, 6, 3]), ("xresnet1d101", [3, 4, 23, 3])):
        x = build_encoder(name)
        assert [len(stage) for stage in x.stages] == depths
        assert [(c[0].out_channels, c[0].kernel_size[0], c[0].stride[0]) for c in x.stem[:3]] == \
            [(32, 5, 2), (32, 5, 1), (64, 5, 1)]
        first = [stage[0] for stage in x.stages]
        assert [b.convs[1][0].stride[0] for b in first] == [1, 2, 2, 2]
        assert all(b.convs[2][1].weight.abs().sum() == 0 for stage in x.stages for b in stage)  # zero-init BN
    inc = build_encoder("inception1d")
    blocks = [b for stage in inc.stages for b in stage.blocks]
    assert len(blocks) == 6 and len(inc.stages) == 2
    assert [c.kernel_size[0] for c in blocks[0].convs] == [39, 19, 9]
    assert blocks[0].bottleneck.in_channels == 12 and blocks[1].bottleneck.in_channels == 128


# total stride: a (B, 12, T) input gives a feature map of ceil(T / stride) samples
STRIDE = {"ecg1dcnn": 8, "resnet1d_wang": 4, "xresnet1d50": 32, "xresnet1d101": 32, "inception1d": 1}
WIDTH = {"ecg1dcnn": 256, "resnet1d_wang": 256, "xresnet1d50": 512, "xresnet1d101": 512, "inception1d": 256}


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_shapes_for_the_lengths_the_seed_accepts(name):
    torch.manual_seed(0)
    enc = build_encoder(name).eval()
    assert enc.out_channels == WIDTH[name]
    for T in (1000, 64, 333):  # the default window, the shortest allowed, an odd one
        x = torch.randn(2, 12, T)
        with torch.no_grad():
            fmap, z = enc.forward_features(x), enc(x)
        assert fmap.shape[-1] == math.ceil(T / STRIDE[name]) and z.shape == (2, WIDTH[name])
        if name != "ecg1dcnn":  # concat pooling: max over time, then the mean
            torch.testing.assert_close(z, torch.cat([fmap.amax(-1), fmap.mean(-1)], 1), rtol=0, atol=0)
    x = torch.randn(3, 12, 128)
    assert SimCLRModel(enc, projection_dim=16)(x).shape == (3, 16)
    assert ECGClassifier(enc, num_classes=5)(x).shape == (3, 5)
    assert BYOLModel(build_encoder(name), hidden=32)(x).shape == (3, 256)


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_bf16_autocast_forward_and_backward_on_the_cpu(name):
    torch.manual_seed(1)
    enc = build_encoder(name).eval()
    x = torch.randn(4, 12, 250)
    with torch.no_grad():
        want = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = enc(x)
    assert got.dtype == torch.bfloat16
    err = (got.float() - want).abs().max().item()
    assert err <= 0.05 * want.abs().max().item() + 1e-3, err
    enc.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = enc(x).float().square().mean()
    loss.backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", [n for n in ENCODER_NAMES if n != "xresnet1d101"])  # 101: the 50's blocks,
def test_compiles_as_one_graph(name):  # deeper (its trace alone takes ~15 s here)
    """``--compile`` traces the encoder whole (fullgraph: no graph break), forward and backward, with the
    eager model's results (backend "eager": the trace without Inductor's minutes of code generation)."""
    torch.manual_seed(2)
    enc = build_encoder(name)
    x = torch.randn(2, 12, 128)
    compiled = torch.compile(enc, backend="eager", fullgraph=True)
    got = compiled(x)
    got.sum().backward()
    g_compiled = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    want = enc(x)
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_compiled, [p.grad for p in enc.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_identify_encoder_by_its_keys():
    for name in ENCODER_NAMES:
        assert identify_encoder(build_encoder(name).state_dict()) == name
    assert identify_encoder({"features.0.weight": torch.zeros(1)}) is None
