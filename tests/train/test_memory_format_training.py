"""``--memory-format`` through the engines: recorded in checkpoints and resume files, checkpoints that
load under the other layout, a resume that keeps its layout (bitwise), and the bad value named.

Pretraining runs are tiny (2 steps of 32 windows of 128 samples, on an 80-record synthetic cache)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_run import tiny_args

from ecgfast.base.errors import ConfigError
from ecgfast.models.backbones import build_encoder
from ecgfast.train import pretrain
from ecgfast.train.pretrain import resume_path
from ecgfast.train_ssl_simclr import main as simclr_main


def test_an_unknown_memory_format_lists_the_valid_ones(tmp_path, capsys):
    from ecgfast.cli.embed import main as embed_main
    from ecgfast.train.config import RunConfig
    from ecgfast.train_supervised import main as supervised_main

    root = ["--data-root", str(tmp_path)]
    for main, extra in ((simclr_main, root), (supervised_main, root),
                        (embed_main, ["--checkpoint", str(tmp_path / "c.pt"), "--input", str(tmp_path)])):
        with pytest.raises(SystemExit) as exc:
            main([*extra, "--out", str(tmp_path / "x.h5"), "--memory-format", "bogus"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "argument --memory-format: invalid choice: 'bogus'" in err
        assert all(f"'{name}'" in err for name in ("auto", "channels-last", "contiguous"))
    with pytest.raises(ConfigError, match="--memory-format 'nhwc': unknown memory format; expected one of auto, "
                                          "channels-last, contiguous"):
        RunConfig(memory_format="nhwc").validate()


@pytest.mark.parametrize("trained", ["channels-last", "contiguous"])
def test_a_checkpoint_loads_and_embeds_alike_under_either_layout(tiny_cache, tmp_path, trained):
    from ecgfast.deploy.embed import run_embed
    from ecgfast.models.layout import memory_format_of
    from ecgfast.models.pretrained import load_encoder

    out = tmp_path / "enc.pt"
    assert simclr_main(tiny_args(tiny_cache, out, "--encoder", "resnet1d_wang", "--memory-format", trained)) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["spec"]["memory_format"] == ckpt["config"]["memory_format"] == trained
    build_encoder("resnet1d_wang").load_state_dict(ckpt["encoder"], strict=True)  # Conv1d-shaped weights
    model = load_encoder(out)
    assert memory_format_of(model) == "contiguous"  # the Python API's layout: the one before channels-last
    embeddings = {}
    for fmt in ("channels-last", "contiguous"):
        target = tmp_path / f"emb-{fmt}.npy"
        run_embed(out, [str(tiny_cache)], target, device="cpu", progress=False, memory_format=fmt)
        embeddings[fmt] = np.load(target)
    a, b = embeddings["channels-last"], embeddings["contiguous"]
    assert a.shape == b.shape and a.shape[0] > 0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max() + 1e-6)


def test_a_checkpoint_without_a_memory_format_loads(tiny_cache, tmp_path):
    """Older checkpoints name no memory format; they load as before (and the spec has no such key)."""
    from ecgfast.base.checkpoint import checkpoint_spec as spec_of
    from ecgfast.models.pretrained import load_encoder

    out = tmp_path / "enc.pt"
    assert simclr_main(tiny_args(tiny_cache, out)) == 0
    ckpt = torch.load(out, weights_only=True)
    del ckpt["spec"]["memory_format"], ckpt["config"]["memory_format"]
    ckpt["format_version"] = 3
    torch.save(ckpt, out)
    assert "memory_format" not in spec_of(torch.load(out, weights_only=True))
    x = torch.randn(2, 12, 128)
    want = build_encoder("ecg1dcnn")
    want.load_state_dict(ckpt["encoder"])
    torch.testing.assert_close(load_encoder(out).encoder(x), want.eval()(x))


def test_a_resumed_run_keeps_its_memory_format_bitwise(tiny_cache, tmp_path, monkeypatch, capsys):
    """Started contiguous, interrupted after step 3 of 4 and resumed with --memory-format auto (channels-last
    for fp32 on a CPU): the resumed run stays contiguous and ends bit for bit where an uninterrupted one does.
    Resuming with the other layout asked for explicitly is refused, naming both; a resume file from before
    memory formats resumes contiguous."""
    base = ["--epochs", "2", "--checkpoint-every", "1"]
    full, cut = tmp_path / "full.pt", tmp_path / "cut.pt"
    assert simclr_main(tiny_args(tiny_cache, full, *base, "--memory-format", "contiguous")) == 0
    real = pretrain.Pretrainer.train_step

    def interrupted(self, x):
        if self.global_step == 3:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(pretrain.Pretrainer, "train_step", interrupted)
    assert simclr_main(tiny_args(tiny_cache, cut, *base, "--memory-format", "contiguous")) == 130
    saved = torch.load(resume_path(cut), weights_only=True)
    assert saved["config"]["memory_format"] == "contiguous"
    monkeypatch.setattr(pretrain.Pretrainer, "train_step", real)
    capsys.readouterr()
    assert simclr_main(tiny_args(tiny_cache, cut, *base, "--memory-format", "channels-last", "--resume")) == 1
    assert ("was trained with --memory-format contiguous, not channels-last; resume with --memory-format "
            "contiguous (or auto)") in capsys.readouterr().err
    del saved["config"]["memory_format"]  # what a run before --memory-format stored (with no checksum either)
    saved.pop("checksum", None)
    torch.save(saved, resume_path(cut))
    assert simclr_main(tiny_args(tiny_cache, cut, *base, "--resume")) == 0  # auto
    a, b = torch.load(full, weights_only=True), torch.load(cut, weights_only=True)
    assert b["spec"]["memory_format"] == "contiguous"
    assert all(torch.equal(a["encoder"][k], b["encoder"][k]) for k in a["encoder"])
