"""The Python side of the losses and the models make no CPU tensor: run on the meta device inside
tests/devices.py's checker (a helper made without ``device=`` would fail or copy per step on a GPU)."""
import pytest
import torch
from devices import no_cpu_tensors

import ecgfast.base.extension as ext
from ecgfast.losses import BYOLLoss, NTXentLoss, byol_loss, ema_update_, nt_xent
from ecgfast.losses.reference import byol_loss_reference, nt_xent_reference
from ecgfast.models import BYOLModel, ECGClassifier, ECGEncoder1DCNN, SimCLRModel


def _leaves(*shapes, dtype=torch.float32):
    return [torch.randn(*s, dtype=dtype, device="meta", requires_grad=True) for s in shapes]


@pytest.fixture(params=["plain", "compiled"])
def loss_path(request, monkeypatch):
    """plain: the formulas of ecgfast.losses.reference (a build without a kernel for the device, or no
    build); compiled: whatever the build registers for meta (the fakes; nt_xent's composite C++ kernel)."""
    if request.param == "plain":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    elif not ext.EXTENSION_AVAILABLE:
        pytest.skip("compiled extension not built")
    monkeypatch.setattr(ext, "_warned", set())
    return request.param


@pytest.mark.filterwarnings("ignore:ecgfast. the compiled extension has no meta kernel")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_losses_forward_and_backward_make_no_cpu_tensor(loss_path, dtype):
    z1, z2, a1, a2, p, z = _leaves((6, 16), (6, 16), (18, 16), (18, 16), (6, 16), (6, 16), dtype=dtype)
    with no_cpu_tensors() as checker:
        losses = [nt_xent(z1, z2, 0.1), nt_xent(z1, z2, 0.1, z1_all=a1, z2_all=a2, offset=6), byol_loss(p, z),
                  NTXentLoss(0.2)(z1, z2), BYOLLoss()(p, z)]
        sum(losses).backward()
    assert all(t.shape == () and t.device.type == "meta" for t in losses)
    assert all(t.grad is not None and t.grad.device.type == "meta" for t in (z1, z2, a1, a2, p, z))
    assert checker.uploads == []


def test_reference_losses_make_no_cpu_tensor():
    z1, z2, a1, a2 = _leaves((5, 8), (5, 8), (10, 8), (10, 8))
    with no_cpu_tensors() as checker:
        (nt_xent_reference(z1, z2) + nt_xent_reference(z1, z2, 0.5, z1_all=a1, z2_all=a2, offset=5)
         + byol_loss_reference(z1, z2)).backward()
    assert checker.uploads == []


@pytest.mark.parametrize("make", [ECGEncoder1DCNN, SimCLRModel, ECGClassifier, BYOLModel])
def test_models_forward_and_backward_make_no_cpu_tensor(make):
    model = make().to("meta").train()
    x = torch.randn(4, 12, 256, device="meta")
    with no_cpu_tensors() as checker:
        y = model(x)
        y.sum().backward()
        if isinstance(model, BYOLModel):
            assert model.target(x).shape == y.shape
            model.update_target()
        model.eval()
        model(x)
    assert y.device.type == "meta" and y.shape[0] == 4
    assert checker.uploads == []


def test_ema_update_makes_no_cpu_tensor():
    target, online = [torch.zeros(3, device="meta")], [torch.ones(3, device="meta")]
    with no_cpu_tensors() as checker:
        ema_update_(target, online, 0.99)
    assert checker.uploads == []


def test_a_batch_on_another_device_than_the_trained_model_is_a_clear_error(tmp_path):
    """The message names both devices (the model on the CPU, the batch on meta), not a kernel's mismatch."""
    from ecgfast.models.pretrained import PretrainedClassifier, PretrainedEncoder

    spec = {"sampling_rate": 100, "signal_length": 256, "leads": ["I", "II", "III", "AVR", "AVL", "AVF", "V1",
                                                                  "V2", "V3", "V4", "V5", "V6"],
            "units": "mV", "normalizer": {"mean": [0.0], "std": [1.0], "per_lead": False}}
    x = torch.zeros(2, 12, 256, device="meta")
    for model in (PretrainedEncoder(spec), PretrainedClassifier(spec, ["A", "B"])):
        for call in (model, model.embed):
            with pytest.raises(ValueError, match=r"input on meta but the (encoder|classifier) is on cpu"):
                call(x)
