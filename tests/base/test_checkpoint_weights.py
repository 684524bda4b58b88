"""Non-finite weights are refused by every command that loads a checkpoint, naming the file and tensor."""
from __future__ import annotations

import pytest
import torch
from checkpoint_helpers import make_checkpoint

from ecgfast.base.errors import CheckpointError
from ecgfast.cli import main as cli


def _poisoned(path, kind, value):
    make_checkpoint(path, kind, seed=3)
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k, v in ckpt[kind].items() if v.is_floating_point() and v.numel() > 4)
    ckpt[kind][name].view(-1)[[1, 3]] = value
    torch.save(ckpt, path)
    return path, f"{kind}.{name}"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_every_loader_refuses_non_finite_weights(tmp_path, capsys, small_cache, small_ptbxl, value):
    enc, enc_name = _poisoned(tmp_path / "enc.pt", "encoder", value)
    cls, cls_name = _poisoned(tmp_path / "cls.pt", "classifier", value)
    common = ["--device", "cpu", "--no-progress"]
    cases = [
        (["embed", "--checkpoint", enc, "--input", small_cache, "--out", tmp_path / "e.h5", *common], enc, enc_name),
        (["export", "--checkpoint", enc, "--format", "torchscript", "--out", tmp_path / "m.pt"], enc, enc_name),
        (["finetune", "--ssl-checkpoint", enc, "--cache", small_cache, "--data-root", small_ptbxl,
          "--out", tmp_path / "f.pt", "--epochs", "1", *common], enc, enc_name),
        (["predict", "--checkpoint", cls, "--input", small_cache, "--out", tmp_path / "p.csv", *common], cls, cls_name),
        (["evaluate", "--checkpoint", cls, "--cache", small_cache, "--data-root", small_ptbxl, "--bootstrap", "5",
          "--device", "cpu"], cls, cls_name),
    ]
    for argv, path, name in cases:
        rc = cli(list(map(str, argv)))
        err = capsys.readouterr().err
        assert rc == 1, (argv[0], err)
        assert f"checkpoint {path}: weight {name} holds 2 non-finite value(s) (NaN or inf)" in err, (argv[0], err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls.pt", "enc.pt"]  # nothing written

    from ecgfast.models.pretrained import load_classifier, load_encoder

    with pytest.raises(CheckpointError, match="non-finite"):
        load_encoder(enc)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_classifier(cls)


def test_finite_weights_and_integer_buffers_load(tmp_path):
    from ecgfast.base.checkpoint import load_checkpoint

    path = make_checkpoint(tmp_path / "ok.pt", "encoder", seed=4)
    ckpt = load_checkpoint(path)
    assert any(not v.is_floating_point() for v in ckpt["encoder"].values())  # num_batches_tracked: not checked


def test_non_finite_count_is_exact_for_every_float_dtype():
    from ecgfast.base.checkpoint import _non_finite

    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0], dtype=dtype)
        assert _non_finite(t) == 3 and _non_finite(t[[0, 4]]) == 0
    assert _non_finite(torch.tensor([1e300], dtype=torch.float64)) == 0  # finite in float64 (inf in float32)
    assert _non_finite(torch.arange(4)) == 0
