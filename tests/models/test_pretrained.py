"""Loading checkpoints: kinds, formats 1 to 3, and every way a file can be wrong."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from checkpoint_helpers import make_checkpoint

import ecgfast
from ecgfast import CLASSES, LEADS
from ecgfast.base.checkpoint import FORMAT_VERSION
from ecgfast.base.errors import CheckpointError
from ecgfast.models.pretrained import PretrainedClassifier, PretrainedEncoder, load_classifier, load_encoder


def test_top_level_lazy_exports():
    assert ecgfast.load_encoder is load_encoder and ecgfast.load_classifier is load_classifier
    assert ecgfast.CLASSES == CLASSES and ecgfast.LEADS == LEADS and ecgfast.__version__
    with pytest.raises(AttributeError):
        ecgfast.no_such_thing  # noqa: B018


def test_load_encoder_ready(encoder_ckpt, ecg_batch):
    m = ecgfast.load_encoder(encoder_ckpt)
    assert isinstance(m, PretrainedEncoder) and not m.training
    assert m.spec["sampling_rate"] == 100 and m.spec["signal_length"] == 1000
    assert m.spec["leads"] == list(LEADS) and m.classes == list(CLASSES)
    z = m.embed(m.preprocess(ecg_batch, 100))
    assert z.shape == (3, 256) and z.dtype == torch.float32 and not z.requires_grad
    # the weights are the checkpoint's
    state = torch.load(encoder_ckpt, weights_only=True)["encoder"]
    for k, v in m.encoder.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_classifier_ready(classifier_ckpt, ecg_batch):
    m = ecgfast.load_classifier(classifier_ckpt)
    assert isinstance(m, PretrainedClassifier) and not m.training
    assert m.classes == list(CLASSES)
    assert m.thresholds == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    x = m.preprocess(ecg_batch, 100)
    p = m.predict_proba(x)
    assert p.shape == (3, 5) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert torch.equal(m.predict(x), (p >= torch.tensor(m.thresholds)).long())
    assert m.embed(x).shape == (3, 256)
    # same numbers as the plain ECGClassifier on the same normalised input
    from ecgfast.models import ECGClassifier

    ref = ECGClassifier(num_classes=5)
    ref.load_state_dict(torch.load(classifier_ckpt, weights_only=True)["classifier"])
    ref.eval()
    with torch.no_grad():
        assert torch.equal(torch.sigmoid(ref(x)), p)


def test_thresholds_default_to_half(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt", "classifier")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["thresholds"]
    torch.save(ckpt, path)
    assert load_classifier(path).thresholds == [0.5] * 5


def test_load_encoder_accepts_a_classifier(classifier_ckpt, ecg_batch):
    enc = load_encoder(classifier_ckpt)
    cls = load_classifier(classifier_ckpt)
    assert isinstance(enc, PretrainedEncoder) and not enc.training
    x = cls.preprocess(ecg_batch, 100)
    assert torch.equal(enc.embed(x), cls.embed(x))


@pytest.mark.parametrize("kind,in_config", [("encoder", False), ("classifier", False), ("classifier", True)])
def test_format_1_checkpoints_load(tmp_path, kind, in_config, ecg_batch):
    v1 = make_checkpoint(tmp_path / "v1.pt", kind, seed=4, format_version=1, v1_in_config=in_config)
    v2 = make_checkpoint(tmp_path / "v2.pt", kind, seed=4, format_version=2)
    v3 = make_checkpoint(tmp_path / "v3.pt", kind, seed=4, format_version=3)
    load = load_classifier if kind == "classifier" else load_encoder
    a, b, c = load(v1), load(v2), load(v3)
    # formats 1 and 2 name no encoder: they load as the seed's, the same as format 3 naming it
    assert a.spec["encoder"] == b.spec["encoder"] == c.spec["encoder"] == "ecg1dcnn"
    assert torch.equal(c.embed(c.preprocess(ecg_batch, 100)), b.embed(b.preprocess(ecg_batch, 100)))
    assert a.spec["sampling_rate"] == 100 and a.spec["signal_length"] == 1000 and a.spec["leads"] == list(LEADS)
    assert a.spec["normalizer"] == b.spec["normalizer"]
    xa, xb = a.preprocess(ecg_batch, 100), b.preprocess(ecg_batch, 100)
    assert torch.equal(xa, xb) and torch.equal(a.embed(xa), b.embed(xb))
    if kind == "classifier":
        assert a.thresholds == [0.5] * 5 and a.meta["format_version"] == 1 and a.classes == list(CLASSES)


def test_encoder_given_to_load_classifier(encoder_ckpt):
    with pytest.raises(CheckpointError, match=rf"{encoder_ckpt}.*encoder checkpoint, not a classifier"):
        load_classifier(encoder_ckpt)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file\n" * 10)
    for load in (load_encoder, load_classifier):
        with pytest.raises(CheckpointError, match=str(junk)):
            load(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match=rf"{other} is not an ecgfast checkpoint"):
        load_encoder(other)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_refused_not_run(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"encoder": _Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match=rf"{path}.*refused"):
        load_encoder(path)
    assert "pwned" not in capsys.readouterr().out


def test_resume_checkpoint_refused(tmp_path):
    path = tmp_path / "run.resume.pt"
    torch.save({"format": "ecgfast-checkpoint", "format_version": 2, "kind": "resume",
                "model": {}, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match=rf"{path} is a resume checkpoint"):
        load_encoder(path)
    with pytest.raises(CheckpointError, match="not a classifier"):
        load_classifier(path)


def test_wrong_shape_weights(tmp_path):
    path = make_checkpoint(tmp_path / "e.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["encoder"]["features.0.block.0.weight"] = torch.zeros(64, 8, 11)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"features.0.block.0.weight"):
        load_encoder(path)


def test_newer_format_refused(tmp_path):
    path = make_checkpoint(tmp_path / "e.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["format_version"] = FORMAT_VERSION + 1
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        load_encoder(path)


def test_device_errors(encoder_ckpt):
    from ecgfast.base.errors import ConfigError

    with pytest.raises(ConfigError, match="device"):
        load_encoder(encoder_ckpt, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is available here"):
            load_encoder(encoder_ckpt, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(encoder_ckpt, ecg_batch):
    cpu, gpu = load_encoder(encoder_ckpt, "cpu"), load_encoder(encoder_ckpt, "cuda")
    a = cpu.embed(cpu.preprocess(ecg_batch, 100))
    b = gpu.embed(gpu.preprocess(ecg_batch, 100)).cpu()
    assert np.allclose(a.numpy(), b.numpy(), atol=1e-4)
