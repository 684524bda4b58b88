import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ecgfast.models import ECGEncoder1DCNN
from ecgfast.train import pretrain
from ecgfast.train.pretrain import resume_path
from ecgfast.train_ssl_byol import main as byol_main
from ecgfast.train_ssl_simclr import main as simclr_main

TINY = ["--epochs", "1", "--batch-size", "32", "--signal-length", "256", "--checkpoint-every", "2",
        "--no-progress", "--precision", "fp32"]


def test_simclr_writes_the_encoder_checkpoint(synthetic_cache_path, tmp_path):
    out = tmp_path / "ssl_simclr.pt"
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) >= {"encoder", "config", "classes", "normalizer", "versions"}
    ECGEncoder1DCNN().load_state_dict(ckpt["encoder"], strict=True)
    assert ckpt["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert ckpt["config"]["method"] == "simclr" and ckpt["config"]["temperature"] == 0.07
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert log[0]["epoch"] == 1 and log[0]["loss"] > 0 and log[0]["samples_per_s"] > 0


def test_byol_trains_and_its_loss_falls(synthetic_cache_path, tmp_path):
    out = tmp_path / "ssl_byol.pt"
    args = ["--cache", str(synthetic_cache_path), "--out", str(out), "--epochs", "3", "--batch-size", "32",
            "--signal-length", "256", "--no-progress", "--tau", "0.99"]
    assert byol_main(args) == 0
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]
    ECGEncoder1DCNN().load_state_dict(torch.load(out, weights_only=True)["encoder"], strict=True)


_RUN = [sys.executable, "-m", "ecgfast.train_ssl_simclr", "--epochs", "2", "--batch-size", "32",
        "--signal-length", "512", "--checkpoint-every", "3", "--no-progress", "--precision", "fp32"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_killed_run_resumes_to_the_same_encoder(synthetic_cache_path, tmp_path):
    """SIGKILL after the first periodic checkpoint, resume: the same encoder as an uninterrupted run."""
    full, killed = tmp_path / "full.pt", tmp_path / "killed.pt"
    subprocess.run(_RUN + ["--cache", str(synthetic_cache_path), "--out", str(full)], check=True, env=_env())
    proc = subprocess.Popen(_RUN + ["--cache", str(synthetic_cache_path), "--out", str(killed)], env=_env())
    deadline = time.time() + 120
    while not resume_path(killed).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists()
    step = torch.load(resume_path(killed), weights_only=True)["global_step"]
    assert 0 < step < 2 * (len(_train(synthetic_cache_path)) // 32)
    subprocess.run(_RUN + ["--cache", str(synthetic_cache_path), "--out", str(killed), "--resume"], check=True,
                   env=_env())
    a = torch.load(full, weights_only=True)["encoder"]
    b = torch.load(killed, weights_only=True)["encoder"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _train(cache_path):
    from ecgfast.data import open_cache

    return open_cache(cache_path).split_indices("train")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_cache_path, tmp_path, monkeypatch, capsys):
    real = pretrain.Pretrainer.loss

    def poisoned(self, x):
        loss = real(self, x)
        return loss * float("nan") if self.global_step == 3 else loss

    monkeypatch.setattr(pretrain.Pretrainer, "loss", poisoned)
    out = tmp_path / "nan.pt"
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "loss became nan at epoch 1, step 4" in err and "--resume and a lower --lr" in err
    assert not out.exists()
    kept = torch.load(resume_path(out), weights_only=True)
    assert kept["global_step"] == 2 and all(torch.isfinite(v).all() for v in kept["model"].values()
                                            if v.is_floating_point())


@pytest.mark.parametrize("flags,message", [
    (["--batch-size", "100000"], "larger than the"),
    (["--resume"], "no checkpoint at"),
    (["--signal-length", "5000"], "exceeds the 1000 samples of"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--device", "tpu"], "expected auto, cpu, cuda or cuda:N"),
])
def test_bad_arguments_fail_clearly(synthetic_cache_path, tmp_path, flags, message, capsys):
    if flags[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    args = ["--cache", str(synthetic_cache_path), "--out", str(tmp_path / "x.pt"), *TINY]
    assert simclr_main(args + flags) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags,message", [
    (["--temperature", "0"], "argument --temperature: must be > 0, got 0"),
    (["--temperature", "-1"], "argument --temperature: must be > 0, got -1"),
    (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["--signal-length", "-5"], "argument --signal-length: must be >= 0, got -5"),
    (["--checkpoint-every", "0"], "argument --checkpoint-every: must be >= 1, got 0"),
    (["--lr", "nan"], "argument --lr: must be finite"),
    (["--batch-size", "1"], "argument --batch-size: must be >= 2"),
    (["--epochs", "abc"], "argument --epochs: expected an integer, got 'abc'"),
])
def test_out_of_range_flags_are_usage_errors_before_any_work(tmp_path, flags, message, capsys):
    with pytest.raises(SystemExit) as exc:
        simclr_main(["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.pt"), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_byol_tau_outside_unit_interval(tmp_path, capsys):
    with pytest.raises(SystemExit):
        byol_main(["--data-root", str(tmp_path), "--out", str(tmp_path / "x.pt"), "--tau", "1.5"])
    assert "argument --tau: must be in (0, 1), got 1.5" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_run(synthetic_cache_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "a.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]
    assert simclr_main(base) == 0
    assert simclr_main(base + ["--resume", "--lr", "0.01"]) == 1
    assert "different run (lr: checkpoint 0.001 vs now 0.01)" in capsys.readouterr().err
    assert simclr_main(base + ["--resume", "--batch-size", "16"]) == 1
    assert "batch_size: checkpoint 32 vs now 16" in capsys.readouterr().err
