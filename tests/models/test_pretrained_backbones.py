"""Every backbone through the loaders, the commands and export; a checkpoint of one backbone loaded as another."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from checkpoint_helpers import make_checkpoint

from ecgfast.base.errors import CheckpointError
from ecgfast.cli import main as cli
from ecgfast.deploy.export import export_model, load_exported
from ecgfast.models.backbones import ENCODER_NAMES, build_encoder
from ecgfast.models.pretrained import load_classifier, load_encoder, load_model

NEW = [n for n in ENCODER_NAMES if n != "ecg1dcnn"]
WIDTH = {"resnet1d_wang": 256, "xresnet1d50": 512, "xresnet1d101": 512, "inception1d": 256}


@pytest.fixture(scope="module")
def backbone_ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("backbone_ckpts")
    return {(name, kind): make_checkpoint(d / f"{name}_{kind}.pt", kind, seed=3, encoder=name, per_lead=True)
            for name in NEW for kind in ("encoder", "classifier")}


def _x(T: int = 1000, n: int = 2) -> np.ndarray:
    return (np.random.default_rng(T + n).standard_normal((n, 12, T)) * 0.3).astype(np.float32)


@pytest.mark.parametrize("name", NEW)
def test_each_backbone_exports_and_reloads(name, backbone_ckpts, tmp_path):
    """The encoder as torch.export, the classifier as TorchScript: reloaded, each equals the eager model,
    preprocessing included. xresnet1d101 goes through TorchScript only: torch.export of its 101 layers
    takes ~6 s here, and its blocks are xresnet1d50's, exported above."""
    formats = ("torchscript", "torchscript") if name == "xresnet1d101" else ("exported", "torchscript")
    for kind, fmt in zip(("encoder", "classifier"), formats):
        ckpt = backbone_ckpts[name, kind]
        out, meta = export_model(ckpt, fmt, tmp_path / f"{kind}.{fmt}", input_length=1200, crop="center",
                                 return_metadata=True)
        module, stored = load_exported(out, fmt)
        assert stored["encoder"] == stored["spec"]["encoder"] == name and stored == json.loads(json.dumps(meta))
        model = load_model(ckpt)
        for n in (1, 3):  # the batch dimension stays free
            x = _x(1200, n)
            with torch.no_grad():
                got = module(torch.from_numpy(x)).numpy()
            pre = model.preprocess(x, 100, crop="center")
            want = (model.predict_proba(pre) if kind == "classifier" else model.embed(pre)).numpy()
            assert got.shape == (n, 5 if kind == "classifier" else WIDTH[name])
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NEW)
def test_loaders_build_the_checkpoint_backbone(name, backbone_ckpts):
    enc = load_encoder(backbone_ckpts[name, "encoder"])
    cls = load_classifier(backbone_ckpts[name, "classifier"], encoder=name)
    for m in (enc, cls, load_encoder(backbone_ckpts[name, "classifier"])):
        assert type(m.encoder) is type(build_encoder(name)) and m.spec["encoder"] == name
        assert m.out_dim == WIDTH[name] and f"encoder={name}" in repr(m)
    state = torch.load(backbone_ckpts[name, "encoder"], weights_only=True)["encoder"]
    assert all(torch.equal(v, state[k]) for k, v in enc.encoder.state_dict().items())
    z = enc.embed(enc.preprocess(_x(), 100))
    assert z.shape == (2, WIDTH[name]) and torch.isfinite(z).all()


def test_a_checkpoint_of_one_backbone_loaded_as_another_names_both(backbone_ckpts, tmp_path, capsys):
    enc = backbone_ckpts["resnet1d_wang", "encoder"]
    cls = backbone_ckpts["inception1d", "classifier"]
    with pytest.raises(CheckpointError, match=rf"checkpoint {enc} holds a resnet1d_wang encoder, not the "
                                              r"xresnet1d50 asked for \(--encoder xresnet1d50\)"):
        load_encoder(enc, encoder="xresnet1d50")
    with pytest.raises(CheckpointError, match="holds a inception1d encoder, not the ecg1dcnn asked for"):
        load_classifier(cls, encoder="ecg1dcnn")
    # the commands: --encoder asserts the checkpoint's backbone
    runs = [["embed", "--checkpoint", str(enc), "--input", str(tmp_path / "x.npy"), "--sampling-rate", "100",
             "--out", str(tmp_path / "e.h5"), "--encoder", "xresnet1d50"],
            ["predict", "--checkpoint", str(cls), "--input", str(tmp_path / "x.npy"), "--sampling-rate", "100",
             "--out", str(tmp_path / "p.csv"), "--encoder", "xresnet1d101"],
            ["export", "--checkpoint", str(enc), "--format", "torchscript", "--out", str(tmp_path / "m.pt"),
             "--encoder", "inception1d"]]
    np.save(tmp_path / "x.npy", _x())
    for argv, (held, asked) in zip(runs, [("resnet1d_wang", "xresnet1d50"), ("inception1d", "xresnet1d101"),
                                          ("resnet1d_wang", "inception1d")]):
        capsys.readouterr()
        assert cli(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ecgfast {argv[0]}: error: ") and "Traceback" not in err
        assert f"holds a {held} encoder, not the {asked} asked for" in err, err
    assert not any((tmp_path / f).exists() for f in ("e.h5", "p.csv", "m.pt"))
    # the same flag naming the right backbone, or left out, works; the width is reported
    assert cli(runs[0][:-1] + ["resnet1d_wang", "--no-progress"]) == 0
    assert "2 records x 256" in capsys.readouterr().out
    assert cli(runs[1][:-2] + ["--no-progress"]) == 0


def _spec_names(path, encoder: str):
    """The checkpoint at ``path`` with its spec rewritten to name ``encoder`` (weights unchanged)."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["spec"]["encoder"] = encoder
    torch.save(ckpt, path)
    return path


def test_weights_of_another_backbone_than_the_spec_names(tmp_path):
    """A file whose spec says one backbone and whose weights are another's (hand-edited, or a format-2
    file given a new backbone's weights): refused, naming both."""
    path = _spec_names(make_checkpoint(tmp_path / "e.pt", "encoder", encoder="xresnet1d50"), "xresnet1d101")
    with pytest.raises(CheckpointError, match=r"do not fit the xresnet1d101 encoder its spec names: they are the "
                                              r"weights of a xresnet1d50 encoder, not of xresnet1d101; missing keys"):
        load_encoder(path)
    old = make_checkpoint(tmp_path / "v2.pt", "classifier", format_version=2)  # names no encoder: ecg1dcnn
    ckpt = torch.load(old, weights_only=True)
    ckpt["classifier"] = {f"encoder.{k}": v for k, v in build_encoder("inception1d").state_dict().items()}
    ckpt["classifier"].update({"head.weight": torch.zeros(5, 256), "head.bias": torch.zeros(5)})
    torch.save(ckpt, old)
    with pytest.raises(CheckpointError, match="they are the weights of a inception1d encoder, not of ecg1dcnn"):
        load_classifier(old)


def test_a_backbone_this_ecgfast_does_not_know(tmp_path):
    path = _spec_names(make_checkpoint(tmp_path / "e.pt", "encoder"), "vit1d_huge")
    with pytest.raises(CheckpointError, match=r"its encoder 'vit1d_huge' is not one this ecgfast knows \(ecg1dcnn, "
                                              r"resnet1d_wang, xresnet1d50, xresnet1d101, inception1d\); upgrade"):
        load_encoder(path)


def test_format_2_checkpoints_load_as_the_seed_encoder(tmp_path):
    from ecgfast.models import ECGEncoder1DCNN

    path = make_checkpoint(tmp_path / "v2.pt", "encoder", format_version=2)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format_version"] == 2 and "encoder" not in ckpt["spec"]
    m = load_encoder(path, encoder="ecg1dcnn")
    assert isinstance(m.encoder, ECGEncoder1DCNN) and m.spec["encoder"] == "ecg1dcnn"
    with pytest.raises(CheckpointError, match="holds a ecg1dcnn encoder, not the inception1d asked for"):
        load_encoder(path, encoder="inception1d")


def test_card_names_the_backbone_and_its_size(backbone_ckpts, tmp_path):
    from ecgfast.report.card import write_model_card

    ckpt = torch.load(backbone_ckpts["xresnet1d101", "classifier"], weights_only=True)
    md, js = write_model_card(tmp_path / "c.pt", ckpt, wall_time_s=1.0, device="cpu")
    card = json.loads(js.read_text())
    assert card["encoder"] == "xresnet1d101" and card["encoder_parameters"] == 1_804_672
    assert "Encoder (backbone): **xresnet1d101**, 1,804,672 parameters." in md.read_text()
    old = torch.load(make_checkpoint(tmp_path / "v1.pt", "encoder", format_version=1), weights_only=True)
    _, js = write_model_card(tmp_path / "v1.pt", old, wall_time_s=1.0, device="cpu")
    assert json.loads(js.read_text())["encoder"] == "ecg1dcnn"


HAVE_ONNX = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxscript") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.mark.skipif(not HAVE_ONNX, reason="onnx/onnxscript not installed (pip install 'ecgfast[onnx]')")
@pytest.mark.parametrize("name", ["resnet1d_wang", "inception1d"])  # ~5 s each: two backbone families
def test_onnx_export_of_a_backbone(name, backbone_ckpts, tmp_path):
    import onnx

    ckpt = backbone_ckpts[name, "classifier"]
    out = export_model(ckpt, "onnx", tmp_path / "m.onnx")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert json.loads({p.key: p.value for p in proto.metadata_props}["ecgfast"])["encoder"] == name
    x = _x(1000, 2)
    if HAVE_ORT:
        import onnxruntime as ort

        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    elif name == "inception1d":
        pytest.skip("onnx.reference cannot run a 1-D MaxPool with pads (its own bug: IndexError on a bare "
                    "MaxPool1d(3, 1, 1)); the file passed onnx.checker; install onnxruntime to compare numbers")
    else:
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    model = load_model(ckpt)
    np.testing.assert_allclose(got, model.predict_proba(model.preprocess(x, 100)).numpy(), rtol=1e-5, atol=1e-5)
