import pytest
import torch

from ecgfast.models import BYOLModel, ECGClassifier, ECGEncoder1DCNN, SimCLRModel

# DESIGN.md's table: block -> (in, out, kernel, stride)
TABLE = [(12, 64, 11, 2), (64, 64, 7, 1), (64, 128, 7, 2), (128, 128, 5, 1), (128, 256, 5, 2), (256, 256, 3, 1)]


def design_state_dict():
    """The encoder's state dict built by hand from DESIGN.md's key table."""
    sd = {}
    for i, (cin, cout, k, _) in enumerate(TABLE):
        sd[f"features.{i}.block.0.weight"] = torch.randn(cout, cin, k)
        sd[f"features.{i}.block.1.weight"] = torch.rand(cout)
        sd[f"features.{i}.block.1.bias"] = torch.randn(cout)
        sd[f"features.{i}.block.1.running_mean"] = torch.randn(cout)
        sd[f"features.{i}.block.1.running_var"] = torch.rand(cout) + 0.5
        sd[f"features.{i}.block.1.num_batches_tracked"] = torch.tensor(7)
    return sd


def test_encoder_loads_the_design_state_dict_strictly():
    enc = ECGEncoder1DCNN(in_ch=12, width=64)
    sd = design_state_dict()
    enc.load_state_dict(sd, strict=True)
    assert set(enc.state_dict()) == set(sd)
    for i, (_, _, k, s) in enumerate(TABLE):
        conv = enc.features[i].block[0]
        assert conv.kernel_size == (k,) and conv.stride == (s,) and conv.padding == (k // 2,) and conv.bias is None
    assert enc.out_channels == 256


def test_shapes_and_representation_is_the_time_average():
    enc = ECGEncoder1DCNN().eval()
    x = torch.randn(3, 12, 1000)
    fmap = enc.forward_features(x)
    assert fmap.shape == (3, 256, 125)  # stride 2 * 2 * 2
    assert torch.allclose(enc(x), fmap.mean(-1))
    assert SimCLRModel(enc, projection_dim=128)(x).shape == (3, 128)
    clf = ECGClassifier(enc)
    assert clf(x).shape == (3, 5) and clf.head.in_features == 256


def test_heads_follow_the_design():
    sim = SimCLRModel()
    assert [type(m).__name__ for m in sim.projector] == ["Linear", "ReLU", "Linear"]
    assert sim.projector[0].out_features == 2048 and sim.projector[2].out_features == 128
    byol = BYOLModel()
    for head in (byol.projector, byol.predictor):
        assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert head[0].out_features == 2048 and head[3].out_features == 256
    assert byol.predictor[0].in_features == 256


def test_byol_target_starts_as_copy_and_follows_by_ema():
    byol = BYOLModel(tau=0.9)
    for t, o in zip(byol.target_parameters(), byol.online_parameters()):
        assert torch.equal(t, o) and not t.requires_grad
    before = [t.clone() for t in byol.target_parameters()]
    with torch.no_grad():
        for o in byol.online_parameters():
            o.add_(1.0)
    byol.update_target()
    for t, b, o in zip(byol.target_parameters(), before, byol.online_parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * o, atol=1e-6)
    with pytest.raises(ValueError, match="tau must be in"):
        BYOLModel(tau=1.0)


def test_byol_loss_gives_gradients_to_the_online_network_only():
    from ecgfast.train.pretrain import byol_loss_of

    byol = BYOLModel()
    assert byol(torch.randn(4, 12, 200)).shape == (4, 256) and byol.target(torch.randn(4, 12, 200)).shape == (4, 256)
    loss = byol_loss_of(byol, byol, torch.randn(4, 12, 200), torch.randn(4, 12, 200))
    loss.backward()
    assert all(p.grad is not None for p in byol.predictor.parameters())
    assert all(p.grad is None for p in byol.target_parameters())
    assert 0 <= loss.item() <= 8
