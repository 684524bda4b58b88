"""Every backbone through the engines: pretraining (fused augmentation and loss), exact resume,
fine-tuning, probing, supervised, evaluation, the experiment; and every way to pick the wrong one.

Pretraining runs are tiny (2 steps of 32 windows of 128 samples, on an 80-record synthetic cache); the
classifier runs train on a quarter of the labels of the 400-record one."""
from __future__ import annotations

import json

import pytest
import torch
from tiny_run import tiny_args

from ecgfast.base.errors import ConfigError
from ecgfast.models.backbones import ENCODER_NAMES, build_encoder
from ecgfast.train import pretrain
from ecgfast.train.pretrain import resume_path
from ecgfast.train_ssl_byol import main as byol_main
from ecgfast.train_ssl_simclr import main as simclr_main

NEW = [n for n in ENCODER_NAMES if n != "ecg1dcnn"]


@pytest.fixture(scope="module")
def encoders(tiny_cache, tmp_path_factory):
    """One SimCLR encoder checkpoint per new backbone (made by the first test that asks)."""
    return {"dir": tmp_path_factory.mktemp("backbone_encoders"), "cache": tiny_cache}


def _encoder_ckpt(encoders, name):
    out = encoders["dir"] / f"{name}.pt"
    if not out.is_file():
        assert simclr_main(tiny_args(encoders["cache"], out, "--encoder", name)) == 0
    return out


@pytest.mark.parametrize("name", NEW)
def test_each_backbone_pretrains_with_simclr(encoders, name):
    from ecgfast.models.pretrained import load_encoder

    out = _encoder_ckpt(encoders, name)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["format_version"] == 4 and ckpt["spec"]["encoder"] == name and ckpt["config"]["encoder"] == name
    fresh = build_encoder(name)
    fresh.load_state_dict(ckpt["encoder"], strict=True)  # the plain backbone's keys
    assert all(torch.isfinite(v).all() for v in ckpt["encoder"].values() if v.is_floating_point())
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["step"] == 2 and log[0]["loss"] > 0 and torch.isfinite(torch.tensor(log[0]["loss"]))
    enc = load_encoder(out, encoder=name)
    assert type(enc.encoder) is type(fresh) and enc.out_dim == fresh.out_channels
    card = json.loads(out.with_name(f"{name}.card.json").read_text())
    assert card["encoder"] == name and card["encoder_parameters"] == sum(p.numel() for p in fresh.parameters())
    assert f"Encoder (backbone): **{name}**" in out.with_name(f"{name}.card.md").read_text()


def test_byol_with_a_new_backbone(tiny_cache, tmp_path):
    out = tmp_path / "byol.pt"
    assert byol_main(tiny_args(tiny_cache, out, "--encoder", "inception1d", "--tau", "0.99")) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["spec"]["encoder"] == "inception1d"
    build_encoder("inception1d").load_state_dict(ckpt["encoder"], strict=True)


def test_a_non_seed_backbone_resumes_bitwise(tiny_cache, tmp_path, monkeypatch, capsys):
    """Interrupted in its second epoch (after the periodic checkpoint of step 3 of 4) and resumed, a
    resnet1d_wang run ends with the same encoder, bit for bit, as an uninterrupted one."""
    base = ["--epochs", "2", "--checkpoint-every", "1", "--encoder", "resnet1d_wang"]
    full, cut = tmp_path / "full.pt", tmp_path / "cut.pt"
    assert simclr_main(tiny_args(tiny_cache, full, *base)) == 0
    real = pretrain.Pretrainer.train_step

    def interrupted(self, x):
        if self.global_step == 3:  # the third step is done and saved
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(pretrain.Pretrainer, "train_step", interrupted)
    assert simclr_main(tiny_args(tiny_cache, cut, *base)) == 130
    assert not cut.exists() and torch.load(resume_path(cut), weights_only=True)["global_step"] == 3
    monkeypatch.setattr(pretrain.Pretrainer, "train_step", real)
    assert simclr_main(tiny_args(tiny_cache, cut, *base, "--resume")) == 0
    a, b = torch.load(full, weights_only=True)["encoder"], torch.load(cut, weights_only=True)["encoder"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resuming it as another backbone names both
    capsys.readouterr()
    assert simclr_main(tiny_args(tiny_cache, cut, *base[:-1], "xresnet1d50", "--resume")) == 1
    assert "encoder: checkpoint 'resnet1d_wang' vs now 'xresnet1d50'" in capsys.readouterr().err


def test_a_resume_file_from_before_backbones_resumes_as_the_seed(tiny_cache, tmp_path):
    out = tmp_path / "old.pt"
    args = tiny_args(tiny_cache, out, "--checkpoint-every", "1")
    assert simclr_main(args) == 0
    ckpt = torch.load(resume_path(out), weights_only=True)
    del ckpt["config"]["encoder"]  # what a run written before --encoder stored
    ckpt["format_version"] = 2
    del ckpt["checksum"]  # nor a checksum (resume files gained one later)
    torch.save(ckpt, resume_path(out))
    out.unlink()
    assert simclr_main(args + ["--resume"]) == 0 and out.is_file()
    assert torch.load(out, weights_only=True)["spec"]["encoder"] == "ecg1dcnn"


def test_unknown_encoder_names_the_valid_ones(tmp_path, capsys):
    from ecgfast.train.config import ClassifierConfig, PretrainConfig
    from ecgfast.train_supervised import main as supervised_main

    for main in (simclr_main, supervised_main):
        with pytest.raises(SystemExit) as exc:
            main(["--data-root", str(tmp_path), "--out", str(tmp_path / "x.pt"), "--encoder", "resnet50"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "argument --encoder: invalid choice: 'resnet50'" in err
        assert all(name in err for name in ENCODER_NAMES)
    for cfg in (PretrainConfig(encoder="resnet50"), ClassifierConfig(encoder="resnet50")):
        with pytest.raises(ConfigError, match="--encoder 'resnet50': unknown encoder; expected one of ecg1dcnn, "
                                              "resnet1d_wang, xresnet1d50, xresnet1d101, inception1d"):
            cfg.validate()


def test_finetune_probe_supervised_and_evaluate_with_backbones(synthetic_cache_path, encoders, tmp_path, capsys):
    """Fine-tuning on the 400-record cache an encoder pretrained on the tiny one (same rate, leads, classes)."""
    from ecgfast.eval.evaluate import evaluate, load_classifier_checkpoint
    from ecgfast.models.pretrained import load_classifier
    from ecgfast.train_finetune import main as finetune_main
    from ecgfast.train_supervised import main as supervised_main

    enc = _encoder_ckpt(encoders, "resnet1d_wang")
    common = ["--cache", str(synthetic_cache_path), "--epochs", "1", "--batch-size", "32", "--signal-length", "128",
              "--label-fraction", "0.25", "--no-progress", "--precision", "fp32"]
    runs = {"finetune": (finetune_main, ["--ssl-checkpoint", str(enc)], "resnet1d_wang"),  # the checkpoint's
            "probe": (finetune_main, ["--ssl-checkpoint", str(enc), "--freeze-encoder", "--encoder", "resnet1d_wang"],
                      "resnet1d_wang"),
            "supervised": (supervised_main, ["--encoder", "inception1d"], "inception1d"),
            "random_probe": (finetune_main, ["--ssl-checkpoint", "none", "--freeze-encoder", "--encoder",
                                             "xresnet1d50"], "xresnet1d50")}
    for what, (main, flags, name) in runs.items():
        out = tmp_path / f"{what}.pt"
        assert main([*common, *flags, "--out", str(out)]) == 0, what
        ckpt = torch.load(out, weights_only=True)
        assert ckpt["spec"]["encoder"] == ckpt["config"]["encoder"] == name, what
        model = load_classifier(out)
        assert type(model.encoder) is type(build_encoder(name)) and model.head.in_features == model.out_dim
        again, _, _ = load_classifier_checkpoint(out)
        assert type(again.encoder) is type(model.encoder)
    saved = torch.load(tmp_path / "probe.pt", weights_only=True)["classifier"]  # the probe kept the
    orig = torch.load(enc, weights_only=True)["encoder"]  # pretrained encoder as it was
    assert all(torch.equal(saved[f"encoder.{k}"], v) for k, v in orig.items())
    r = evaluate(tmp_path / "supervised.pt", cache_path=synthetic_cache_path, n_boot=10)
    assert 0 <= r["macro_auroc"] <= 1
    # fine-tuning a resnet1d_wang encoder as another backbone names both, before any work
    capsys.readouterr()
    assert finetune_main([*common, "--ssl-checkpoint", str(enc), "--encoder", "xresnet1d101",
                          "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert f"--ssl-checkpoint {enc} holds a resnet1d_wang encoder, but --encoder xresnet1d101 was asked for" in err
    assert not (tmp_path / "x.pt").exists()


def test_experiment_with_a_backbone(synthetic_cache_path, synthetic_root, tmp_path):
    from ecgfast.cli.experiment import build_parser, from_args, main
    from ecgfast.study import experiment

    argv = ["--data-root", str(synthetic_root), "--cache", str(synthetic_cache_path), "--arms", "supervised",
            "--seeds", "1", "--label-fractions", "0.25", "--no-reference", "--finetune-epochs", "1",
            "--finetune-batch-size", "32",
            "--signal-length", "128", "--bootstrap", "10", "--out", str(tmp_path), "--no-progress",
            "--precision", "fp32", "--encoder", "resnet1d_wang"]
    cfg = from_args(build_parser().parse_args(argv))
    assert cfg.encoder == "resnet1d_wang"
    assert main(argv) == 0
    assert "Encoder (backbone): resnet1d_wang." in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["encoder"] == "resnet1d_wang"
    run = experiment.run_dir(tmp_path, "supervised", 1, 0.25, encoder="resnet1d_wang")
    ckpt = torch.load(run / "classifier.pt", weights_only=True)
    assert ckpt["spec"]["encoder"] == "resnet1d_wang"
    settings = json.loads((run / "eval.json").read_text())["settings"]
    assert settings["backbone"] == "resnet1d_wang"


def test_experiment_keys_of_the_seed_encoder_are_unchanged():
    """Runs finished before --encoder existed keep their key: the seed's encoder is not in it."""
    from ecgfast.study.experiment import settings_key

    assert settings_key({"lr": 1e-3, "encoder": "ecg1dcnn"}) == settings_key({"lr": 1e-3}) == {"lr": 1e-3}
    assert settings_key({"lr": 1e-3, "encoder": None}) == {"lr": 1e-3}
    assert settings_key({"lr": 1e-3, "encoder": "inception1d"}) == {"lr": 1e-3, "backbone": "inception1d"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
@pytest.mark.parametrize("name", NEW)
def test_each_backbone_pretrains_on_cuda_compiled_in_bf16(tiny_cache, tmp_path, name):
    """The GPU defaults: --device auto (CUDA), --precision auto (bf16), --compile on (Inductor)."""
    out = tmp_path / f"{name}.pt"
    assert simclr_main(["--cache", str(tiny_cache), "--out", str(out), "--epochs", "1", "--batch-size", "32",
                        "--signal-length", "128", "--no-progress", "--device", "cuda", "--compile", "on",
                        "--encoder", name]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["compile"] is True and ckpt["config"]["device"].startswith("cuda")
    assert ckpt["config"]["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert not any("_orig_mod" in k for k in ckpt["encoder"])
    build_encoder(name).load_state_dict(ckpt["encoder"], strict=True)
