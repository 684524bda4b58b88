"""Devices, compilation and checkpoints across devices.

The ``cuda`` tests run wherever a GPU is present and skip with the reason elsewhere.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.base.runtime import resolve_compile, resolve_device, resolve_precision
from ecgfast.models import ECGEncoder1DCNN
from ecgfast.train_ssl_byol import main as byol_main
from ecgfast.train_ssl_simclr import main as simclr_main

TINY = ["--epochs", "1", "--batch-size", "32", "--signal-length", "256", "--no-progress"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_device_precision_and_compile_on_this_machine():
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    from ecgfast.base.runtime import cpu_has_native_bf16

    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_compile("auto", torch.device("cpu")) is False
    assert resolve_compile("on", torch.device("cpu")) is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_names_the_devices_available(spec):
    with pytest.raises(ConfigError, match=r"no CUDA device is available here \(devices: cpu\)"):
        resolve_device(spec)


class _FakeGPUs:
    """torch.cuda as seen by a rank of a machine with these GPUs (capabilities), the current one 0."""

    def __init__(self, monkeypatch, capabilities):
        self.capabilities = capabilities
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"GPU{self._index(d)}")
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capabilities[self._index(d)])
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capabilities[0][0] >= 8)

    @staticmethod
    def _index(d):
        return 0 if d is None else (d if isinstance(d, int) else (torch.device(d).index or 0))


@pytest.mark.parametrize("gpus, env, spec, want", [
    (2, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda", 1),      # several visible: the rank's own
    (2, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "auto", 1),
    (2, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:1", 1),    # naming its own GPU is fine
    (1, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda", 0),      # one visible GPU per rank
    (1, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:0", 0),
    (2, {}, "cuda", 0),                                          # one process: the first GPU
    (2, {}, "cuda:1", 1),
])
def test_each_rank_gets_a_gpu_of_its_own(monkeypatch, gpus, env, spec, want):
    _FakeGPUs(monkeypatch, [(9, 0)] * gpus)
    for key in ("LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert resolve_device(spec) == torch.device("cuda", want)


def test_two_ranks_on_one_named_gpu_are_refused(monkeypatch):
    _FakeGPUs(monkeypatch, [(9, 0), (9, 0)])
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"--device cuda:0 under torchrun: rank LOCAL_RANK=1 would share GPU 0"):
        resolve_device("cuda:0")


def test_bf16_is_decided_by_the_chosen_gpu_not_the_current_one(monkeypatch):
    """GPU 0 (current) is a V100-class card without bf16, GPU 1 an H100: each gets its own answer."""
    _FakeGPUs(monkeypatch, [(7, 0), (9, 0)])
    assert resolve_precision("auto", torch.device("cuda", 1)) == "bf16"
    assert resolve_precision("bf16", torch.device("cuda", 1)) == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    with pytest.raises(ConfigError, match="GPU0 has no bf16"):
        resolve_precision("bf16", torch.device("cuda", 0))
    _FakeGPUs(monkeypatch, [(9, 0), (7, 5)])
    assert resolve_precision("auto", torch.device("cuda", 1)) == "fp16"


def test_bad_device_strings():
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="out of range"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        with pytest.raises(ConfigError, match="integer N"):
            resolve_device("cuda:x")


@pytest.mark.slow
def test_a_compiled_run_writes_the_plain_encoder_keys(synthetic_cache_path, tmp_path):
    """``--compile on`` compiles the encoder in place: no ``_orig_mod.`` in the checkpoint."""
    out = tmp_path / "compiled.pt"
    assert simclr_main(["--cache", str(synthetic_cache_path), "--out", str(out), "--compile", "on",
                        "--device", "cpu", "--precision", "fp32", *TINY]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["compile"] is True
    assert not any("_orig_mod" in k for k in ckpt["encoder"])
    ECGEncoder1DCNN().load_state_dict(ckpt["encoder"], strict=True)


# -- on a GPU ------------------------------------------------------------------------------
@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("method,compile_", [("simclr", "off"), ("simclr", "on"), ("byol", "off"), ("byol", "on")])
def test_pretraining_on_cuda(synthetic_cache_path, tmp_path, method, compile_):
    main = simclr_main if method == "simclr" else byol_main
    out = tmp_path / f"{method}_{compile_}.pt"
    assert main(["--cache", str(synthetic_cache_path), "--out", str(out), "--device", "cuda",
                 "--compile", compile_, "--checkpoint-every", "3", *TINY]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["device"].startswith("cuda") and ckpt["device"].startswith("cuda")
    assert all(v.device.type == "cpu" for v in ckpt["encoder"].values())  # loads on a CPU machine
    ECGEncoder1DCNN().load_state_dict(ckpt["encoder"], strict=True)
    assert ckpt["config"]["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")


@cuda
@pytest.mark.cuda
def test_a_cuda_run_resumes_on_cuda(synthetic_cache_path, tmp_path):
    from ecgfast.train.pretrain import resume_path

    out = tmp_path / "r.pt"
    base = ["--cache", str(synthetic_cache_path), "--out", str(out), "--device", "cuda", "--compile", "off",
            "--precision", "fp32", "--checkpoint-every", "2", "--no-progress", "--batch-size", "32",
            "--signal-length", "256"]
    assert simclr_main(base + ["--epochs", "1"]) == 0
    assert resume_path(out).is_file()
    out.unlink()
    assert simclr_main(base + ["--epochs", "1", "--resume"]) == 0  # nothing left to do: writes the output
    assert out.is_file()


@cuda
@pytest.mark.cuda
def test_checkpoints_cross_devices(synthetic_cache_path, tmp_path):
    """A classifier trained on the GPU evaluates on the CPU and vice versa, with the same probabilities."""
    from ecgfast.eval.evaluate import evaluate
    from ecgfast.train_supervised import main as supervised_main

    results = {}
    for train_dev in ("cuda", "cpu"):
        out = tmp_path / f"sup_{train_dev}.pt"
        assert supervised_main(["--cache", str(synthetic_cache_path), "--epochs", "1", "--batch-size", "32",
                                "--signal-length", "256", "--device", train_dev, "--precision", "fp32",
                                "--compile", "off", "--out", str(out), "--no-progress"]) == 0
        for eval_dev in ("cuda", "cpu"):
            results[train_dev, eval_dev] = evaluate(out, cache_path=synthetic_cache_path, n_boot=10,
                                                    device=eval_dev)
    for train_dev in ("cuda", "cpu"):
        a, b = results[train_dev, "cuda"], results[train_dev, "cpu"]
        assert torch.allclose(torch.tensor(a["y_prob"]), torch.tensor(b["y_prob"]), atol=1e-4)


@cuda
@pytest.mark.cuda
def test_gpu_resident_loader_equals_the_host_loader(synthetic_cache_path):
    from ecgfast.data import ECGBatchLoader, open_cache

    cache = open_cache(synthetic_cache_path)
    idx = cache.split_indices("train")
    gpu = ECGBatchLoader(cache, idx, 32, seed=1, drop_last=True, device="cuda")
    host = ECGBatchLoader(cache, idx, 32, seed=1, drop_last=True)
    big = ECGBatchLoader(cache, idx, 32, seed=1, drop_last=True, device="cuda", in_memory=False)
    assert gpu.gpu_resident and not big.gpu_resident
    for g, h, p in zip(gpu, host, big):
        assert g.signals.is_cuda and p.signals.is_cuda
        torch.testing.assert_close(g.signals.cpu(), h.signals)
        torch.testing.assert_close(p.signals.cpu(), h.signals)
        assert torch.equal(g.index.cpu(), h.index) and torch.equal(p.labels.cpu(), h.labels)


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@cuda
@pytest.mark.cuda
def test_one_process_nccl_run(synthetic_cache_path, tmp_path):
    out = tmp_path / "nccl.pt"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_port",
                    str(_port()), "-m", "ecgfast.train_ssl_simclr", "--cache", str(synthetic_cache_path),
                    "--out", str(out), "--device", "cuda", "--compile", "off", *TINY], check=True,
                   env=dict(os.environ), timeout=600)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["world_size"] == 1 and ckpt["config"]["device"] == "cuda:0"
