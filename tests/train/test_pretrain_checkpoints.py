"""Trust at the training and checkpoint boundary: safe loads, divergence, consistency, housekeeping."""
import json
import os
import pickle

import pytest
import torch

from ecgfast.base.checkpoint import atomic_save, load_checkpoint
from ecgfast.base.errors import CheckpointError
from ecgfast.train.pretrain import resume_path
from ecgfast.train_finetune import main as finetune_main
from ecgfast.train_ssl_simclr import main as simclr_main

TINY = ["--epochs", "1", "--batch-size", "32", "--signal-length", "256", "--checkpoint-every", "2",
        "--no-progress", "--precision", "fp32"]


class _Payload:
    """A pickle that runs code when unpickled: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"encoder": {}, "evil": _Payload(marker)}, f)
    return path


def test_a_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    bad = _malicious(tmp_path / "bad.pt", marker)
    with pytest.raises(CheckpointError, match="refused without being run"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_every_command_refuses_a_malicious_checkpoint(synthetic_cache_path, tmp_path, capsys):
    from ecgfast.cli.evaluate import main as evaluate_main

    marker = tmp_path / "pwned"
    bad = _malicious(tmp_path / "bad.pt", marker)
    assert finetune_main(["--ssl-checkpoint", str(bad), "--cache", str(synthetic_cache_path),
                          "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1
    assert evaluate_main(["--checkpoint", str(bad), "--cache", str(synthetic_cache_path)]) == 1
    out = tmp_path / "run.pt"
    _malicious(resume_path(out), marker)  # planted as a resume file
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), "--resume", *TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("refused without being run") == 3 and "Traceback" not in err
    assert not marker.exists()


def test_checkpoints_hold_only_safe_types(tmp_path):
    with pytest.raises(TypeError, match="cannot go into a checkpoint"):
        atomic_save({"x": object()}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists() and not list(tmp_path.iterdir())


def test_wrong_kind_and_non_checkpoints_are_named(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"text.pt could not be read"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"encoder": {}}, tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match="is an encoder checkpoint, but this command needs a fine-tuning"):
        load_checkpoint(tmp_path / "enc.pt", kind="classifier")


def test_divergence_without_nan_stops_with_advice_that_works(synthetic_cache_path, tmp_path, capsys):
    """lr 1e6: Adam's first step moves every weight by ~1e6 while the loss stays finite (the projections
    are normalised, BatchNorm rescales), so the weight-norm check must catch it: the run stops with
    "the weights ran away", not a non-finite loss or gradient, and says what to do."""
    out = tmp_path / "div.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), "--epochs", "1", "--batch-size", "32",
            "--signal-length", "256", "--checkpoint-every", "1", "--log-every", "1", "--no-progress"]
    assert simclr_main(base + ["--lr", "1e6", "--precision", "fp32"]) == 1  # the same arithmetic on every CPU
    err = capsys.readouterr().err
    assert "the weights ran away (norm " in err and "became" not in err, err
    # the very first step diverges here: nothing good was ever written, so the advice is to start over
    assert "start over with a lower --lr (e.g. --lr 100000)" in err and not resume_path(out).exists()
    assert not out.exists()


def test_after_a_nan_stop_resume_with_a_lower_lr_finishes(synthetic_cache_path, tmp_path, monkeypatch, capsys):
    from ecgfast.train import pretrain

    real = pretrain.Pretrainer.loss
    monkeypatch.setattr(pretrain.Pretrainer, "loss",
                        lambda self, x: real(self, x) * (float("nan") if self.global_step == 3 else 1.0))
    out = tmp_path / "nan.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]
    assert simclr_main(base) == 1
    assert "--resume and a lower --lr (e.g. --lr 0.0001)" in capsys.readouterr().err
    monkeypatch.setattr(pretrain.Pretrainer, "loss", real)
    assert simclr_main(base + ["--resume", "--lr", "1e-4"]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["lr"] == 1e-4
    assert all(torch.isfinite(v).all() for v in ckpt["encoder"].values() if v.is_floating_point())


def test_resume_refuses_another_dataset(synthetic_cache_path, tmp_path, capsys):
    import h5py

    out = tmp_path / "a.pt"
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]) == 0
    other = tmp_path / "other.h5"
    other.write_bytes(synthetic_cache_path.read_bytes())
    from ecgfast.data.cache import canonical_json, fingerprint_digest

    with h5py.File(other, "a") as h5:  # the same records claimed to come from other csvs
        fp = json.loads(h5.attrs["fingerprint"])
        fp["database_sha256"] = "0" * 64
        h5.attrs["fingerprint"] = canonical_json(fp)
        h5.attrs["fingerprint_sha256"] = fingerprint_digest(fp)
    assert simclr_main(["--cache", str(other), "--out", str(out), "--resume", *TINY]) == 1
    assert "trained on other data" in capsys.readouterr().err


def test_stale_temp_files_of_killed_writers_are_removed(synthetic_cache_path, tmp_path):
    out = tmp_path / "t.pt"
    dead = tmp_path / f".{out.name}.999999999.0123abcd.tmp"  # no process has this pid
    alive = tmp_path / f".{out.name}.{os.getpid()}.0123abcd.tmp"
    dead.write_bytes(b"half")
    alive.write_bytes(b"being written")
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]) == 0
    assert not dead.exists() and alive.exists()


def test_evaluate_refuses_a_cache_of_another_rate(synthetic_root, synthetic_cache_path, tmp_path, capsys):
    from ecgfast.cli.evaluate import main as evaluate_main
    from ecgfast.train_supervised import main as supervised_main

    clf = tmp_path / "clf.pt"
    assert supervised_main(["--cache", str(synthetic_cache_path), "--epochs", "1", "--signal-length", "256",
                            "--out", str(clf), "--no-progress", "--precision", "fp32"]) == 0
    assert evaluate_main(["--checkpoint", str(clf), "--data-root", str(synthetic_root), "--sampling-rate", "500",
                          "--cache", str(tmp_path / "c500.h5")]) == 1
    err = capsys.readouterr().err
    assert "was trained on 100 Hz signals" in err and "holds 500 Hz" in err and "--sampling-rate 100" in err
    ckpt = torch.load(clf, weights_only=True)
    assert ckpt["kind"] == "classifier" and len(ckpt["thresholds"]) == 5
    assert ckpt["spec"]["sampling_rate"] == 100 and ckpt["spec"]["signal_length"] == 256


# ---------------------------------------------------------------- resume files carry a checksum
def _nan_at_step_3(monkeypatch):
    from ecgfast.train import pretrain

    real = pretrain.Pretrainer.loss
    monkeypatch.setattr(pretrain.Pretrainer, "loss",
                        lambda self, x: real(self, x) * (float("nan") if self.global_step == 3 else 1.0))
    return lambda: monkeypatch.setattr(pretrain.Pretrainer, "loss", real)


def test_checksum_covers_every_tensor_and_value():
    from ecgfast.base.checkpoint import state_checksum, verify_checksum, with_checksum

    state = {"model": {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)},
             "optimizer": {"state": {0: {"step": torch.tensor(2.0)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
             "config": {"lr": 1e-3, "name": "x"}, "torch_rng": torch.zeros(8, dtype=torch.uint8)}
    saved = with_checksum(state)
    verify_checksum(saved, "f.pt")  # intact: no error
    assert saved["checksum"]["digest"] == state_checksum(state)
    for damage in (lambda s: s["model"]["w"].view(torch.int32)[0, 1].__ixor__(1),   # one flipped bit
                   lambda s: s["config"].__setitem__("lr", 1e-2),                    # a flipped digit
                   lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", 1e-4),
                   lambda s: s["torch_rng"].__setitem__(3, 1)):
        bad = {k: (v if k == "checksum" else pickle.loads(pickle.dumps(v))) for k, v in saved.items()}
        damage(bad)
        with pytest.raises(CheckpointError, match=r"checkpoint f.pt is corrupt: its contents no longer match"):
            verify_checksum(bad, "f.pt")
    verify_checksum(state, "old.pt")  # no checksum (written before it existed): nothing to check


def test_a_flipped_byte_in_a_resume_file_is_corruption_not_a_learning_rate_problem(synthetic_cache_path, tmp_path,
                                                                                    monkeypatch, capsys):
    restore = _nan_at_step_3(monkeypatch)
    out = tmp_path / "r.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]
    assert simclr_main(base) == 1
    capsys.readouterr()
    restore()
    resume = resume_path(out)
    ckpt = torch.load(resume, weights_only=True)
    assert ckpt["checksum"]["algorithm"] == "sha256"
    weight = next(v for v in ckpt["model"].values() if v.is_floating_point() and v.numel() >= 64)
    raw = bytearray(resume.read_bytes())
    at = bytes(raw).find(weight.numpy().tobytes()[:64])
    assert at > 0
    raw[at + 1] ^= 0x01  # a low mantissa bit of the first element: still finite, silently wrong without a checksum
    resume.write_bytes(bytes(raw))
    assert torch.isfinite(torch.load(resume, weights_only=True)["model"][next(
        k for k, v in ckpt["model"].items() if v is weight)]).all()
    assert simclr_main(base + ["--resume", "--lr", "1e-4"]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint {resume} is corrupt" in err and "lower --lr" not in err
    assert "Traceback" not in err


def test_a_resume_file_without_a_checksum_still_loads(synthetic_cache_path, tmp_path, monkeypatch):
    restore = _nan_at_step_3(monkeypatch)
    out = tmp_path / "old.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), *TINY]
    assert simclr_main(base) == 1
    restore()
    ckpt = torch.load(resume_path(out), weights_only=True)
    del ckpt["checksum"]  # as written before resume files carried one
    torch.save(ckpt, resume_path(out))
    assert simclr_main(base + ["--resume", "--lr", "1e-4"]) == 0
    assert torch.load(out, weights_only=True)["config"]["lr"] == 1e-4
