"""Exported models (TorchScript, torch.export, ONNX) agree with the eager model, preprocessing included."""
from __future__ import annotations

import functools
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from ecgfast import LEADS
from ecgfast.cli import main as cli
from ecgfast.deploy.export import export_model, load_exported
from ecgfast.models.pretrained import load_model

SHUFFLED = [LEADS[i] for i in (6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5)]  # V1-V6 first


@functools.cache
def _model(ckpt):
    return load_model(ckpt)


def eager(ckpt, x: np.ndarray, leads=None, crop="first", pad=False):
    m = _model(ckpt)
    pre = m.preprocess(x, 100, leads=leads, crop=crop, pad=pad)
    return (m.predict_proba(pre) if m.kind == "classifier" else m.embed(pre)).numpy()


def inputs(T: int, n: int = 3) -> np.ndarray:
    return np.random.default_rng(T).standard_normal((n, 12, T)).astype(np.float32) * 0.3


CASES = {  # (input length, input leads, crop): what goes into the graph besides the network
    "encoder_ckpt": [(1300, SHUFFLED, "center"),  # leads reordered, the middle window cut out
                     (900, None, "first")],       # zero-padded to the window
    "classifier_ckpt": [(1000, None, "first")],   # the plain contract, sigmoid probabilities out
}


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
@pytest.mark.parametrize("which", ["encoder_ckpt", "classifier_ckpt"])
def test_torch_formats_match_eager(fmt, which, request, tmp_path):
    ckpt = request.getfixturevalue(which)
    for T, leads, crop in CASES[which]:
        out = export_model(ckpt, fmt, tmp_path / f"m{T}.{fmt}", input_length=T, input_leads=leads, crop=crop)
        module, meta = load_exported(out, fmt)
        assert meta["input"]["shape"] == ["B", 12, T] and meta["input"]["units"] == "mV"
        assert meta["kind"] == ("classifier" if which.startswith("classifier") else "encoder")
        for n in (1, 3):  # the batch dimension is free
            x = inputs(T, n)
            with torch.no_grad():
                got = module(torch.from_numpy(x)).numpy()
            want = eager(ckpt, x, leads, crop, pad=T < 1000)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_export_command_and_metadata(capsys, tmp_path, classifier_ckpt):
    out = tmp_path / "cls.pt"
    assert cli(["export", "--checkpoint", str(classifier_ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    _, meta = load_exported(out)
    assert meta["thresholds"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert meta["spec"]["sampling_rate"] == 100 and meta["classes"][0] == "CD"
    capsys.readouterr()
    assert cli(["export", "--checkpoint", str(classifier_ckpt), "--format", "torchscript", "--out", str(out),
                "--input-leads", *LEADS[:11]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecgfast export: error: ") and "V6 missing" in err and "Traceback" not in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\0" * 10)
    assert cli(["export", "--checkpoint", str(junk), "--format", "exported", "--out", str(tmp_path / "x")]) == 1
    assert f"checkpoint {junk}" in capsys.readouterr().err


HAVE_ONNX = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxscript") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None


def test_onnx_absent_is_a_clear_error(capsys, tmp_path, encoder_ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert cli(["export", "--checkpoint", str(encoder_ckpt), "--format", "onnx", "--out",
                str(tmp_path / "m.onnx")]) == 1
    assert "pip install 'ecgfast[onnx]'" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_ONNX, reason="onnx/onnxscript not installed (pip install 'ecgfast[onnx]')")
def test_onnx_matches_eager(classifier_ckpt, tmp_path):
    import onnx

    ckpt = classifier_ckpt  # encoder, head and the in-graph preprocessing in one check
    T, leads, crop = CASES["encoder_ckpt"][0]
    out = export_model(ckpt, "onnx", tmp_path / "m.onnx", input_length=T, input_leads=leads, crop=crop)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["ecgfast"])
    assert meta["input"]["leads"] == SHUFFLED
    x = inputs(T, 2)
    if HAVE_ORT:  # the runtime users deploy with
        import onnxruntime as ort

        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    else:  # onnx's own reference evaluator: slower, same semantics
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, eager(ckpt, x, leads, crop), rtol=0, atol=1e-5)
