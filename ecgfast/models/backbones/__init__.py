"""The encoders (backbones) ecgfast can train: one registry, name -> constructor.

Every backbone maps (B, C_in, T) to a (B, ``out_channels``) representation, so the
SimCLR/BYOL projectors and the classifier's ``Linear`` sit on any of them, and has
``forward_features`` for the last feature map.

=================  =========  ====================================================
name               params     source
=================  =========  ====================================================
``ecg1dcnn``       538,624    the seed's ECG 1-D CNN (DESIGN.md), the default
``resnet1d_wang``  439,040    Wang et al. 2017, as benchmarked by Strodthoff et al. 2020
``xresnet1d50``    886,400    He et al. 2019 (XResNet), 1-D, Strodthoff et al. 2020
``xresnet1d101``   1,804,672  the same, 101 layers
``inception1d``    473,344    Ismail Fawaz et al. 2020 (InceptionTime), Strodthoff et al. 2020
=================  =========  ====================================================

Counts are for 12 input leads, without a head. The four benchmark backbones follow
``helme/ecg_ptbxl_benchmarking`` (the code of Strodthoff et al. 2020, "Deep learning
for ECG analysis: benchmarks and insights from PTB-XL") layer by layer, up to and
including the first layer of its head, concat pooling; ``REFERENCE_PARAMETERS`` holds
the reference models' whole parameter counts with their own head at 71 classes.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ecgfast.base.errors import ConfigError

DEFAULT_ENCODER = "ecg1dcnn"


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[[int], nn.Module]  # in_ch -> module
    parameters: int  # with 12 input leads, no head
    source: str


def _ecg1dcnn(in_ch: int) -> nn.Module:
    from ecgfast.models.encoder import ECGEncoder1DCNN

    return ECGEncoder1DCNN(in_ch=in_ch)


def _resnet1d_wang(in_ch: int) -> nn.Module:
    from ecgfast.models.backbones.resnet1d import ResNet1dWang

    return ResNet1dWang(in_ch)


def _xresnet1d50(in_ch: int) -> nn.Module:
    from ecgfast.models.backbones.xresnet1d import xresnet1d50

    return xresnet1d50(in_ch)


def _xresnet1d101(in_ch: int) -> nn.Module:
    from ecgfast.models.backbones.xresnet1d import xresnet1d101

    return xresnet1d101(in_ch)


def _inception1d(in_ch: int) -> nn.Module:
    from ecgfast.models.backbones.inception1d import Inception1d

    return Inception1d(in_ch)


_REF = "Strodthoff et al. 2020 (helme/ecg_ptbxl_benchmarking)"
ENCODERS: Mapping[str, Backbone] = {b.name: b for b in (
    Backbone("ecg1dcnn", _ecg1dcnn, 538_624, "the seed's ECG 1-D CNN (DESIGN.md)"),
    Backbone("resnet1d_wang", _resnet1d_wang, 439_040, f"Wang et al. 2017; {_REF}"),
    Backbone("xresnet1d50", _xresnet1d50, 886_400, f"He et al. 2019 (XResNet); {_REF}"),
    Backbone("xresnet1d101", _xresnet1d101, 1_804_672, f"He et al. 2019 (XResNet); {_REF}"),
    Backbone("inception1d", _inception1d, 473_344, f"Ismail Fawaz et al. 2020 (InceptionTime); {_REF}"),
)}
ENCODER_NAMES = tuple(ENCODERS)

# The reference models' whole parameter counts (backbone + the reference's default head:
# concat pooling -> BN -> Dropout -> Linear(2C, 128) -> ReLU -> BN -> Dropout -> Linear(128, 71)),
# 12 leads, 71 outputs (PTB-XL's "all" statements), as the reference's layer definitions give them.
REFERENCE_PARAMETERS = {"resnet1d_wang": 481_863, "xresnet1d50": 962_503, "xresnet1d101": 1_880_775,
                        "inception1d": 516_167}


def check_encoder_name(name, where: str = "--encoder") -> str:
    """``name`` if it is a registered encoder, else a ``ConfigError`` listing the valid names."""
    if name not in ENCODERS:
        raise ConfigError(f"{where} {name!r}: unknown encoder; expected one of {', '.join(ENCODER_NAMES)}")
    return name


def build_encoder(name: str = DEFAULT_ENCODER, in_ch: int = 12) -> nn.Module:
    """A freshly initialised encoder ``name`` for ``in_ch`` input leads."""
    return ENCODERS[check_encoder_name(name)].build(int(in_ch))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reference_head_parameters(feature_channels: int, n_classes: int, hidden: int = 128) -> int:
    """Parameters of the reference's default head on a C-channel feature map: BN(2C), Linear(2C, hidden),
    BN(hidden), Linear(hidden, n_classes) (concat pooling, dropout and ReLU have none)."""
    pooled = 2 * feature_channels
    return 2 * pooled + (pooled * hidden + hidden) + 2 * hidden + (hidden * n_classes + n_classes)


def identify_encoder(state: Mapping[str, torch.Tensor]) -> str | None:
    """The registered encoder whose state-dict keys are exactly ``state``'s, or None (for error messages)."""
    keys = set(state)
    for name in ENCODER_NAMES:
        if set(_state_keys(name)) == keys:
            return name
    return None


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], encoder: str,
                   prefix: str = "") -> str | None:
    """None when ``state`` fits ``own`` (the state dict of a model around the encoder ``encoder``), else what
    differs: the encoder the weights belong to where that is another registered one, then the missing,
    unexpected and misshapen keys. ``prefix``: where the encoder's keys start (``"encoder."`` in a classifier).
    """
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if not (missing or unexpected or wrong):
        return None
    parts = []
    other = identify_encoder({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    if other is not None and other != encoder:
        parts.append(f"they are the weights of a {other} encoder, not of {encoder}")
    if wrong:
        parts.append("shape mismatch: " + ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:4]))
    if missing:
        parts.append(f"missing keys: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        parts.append(f"unexpected keys: {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
    return "; ".join(parts)


@functools.cache
def _state_keys(name: str) -> tuple[str, ...]:
    return tuple(build_encoder(name).state_dict())


__all__ = ["DEFAULT_ENCODER", "ENCODERS", "ENCODER_NAMES", "REFERENCE_PARAMETERS", "Backbone", "build_encoder",
           "check_encoder_name", "count_parameters", "identify_encoder", "reference_head_parameters", "state_mismatch"]
