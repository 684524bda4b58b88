"""Pretraining on corpora (``--corpus MANIFEST[:WEIGHT]``): weighted mix, per-corpus counts, resume, provenance."""
import json

import numpy as np
import pytest
import torch

from ecgfast.models import ECGEncoder1DCNN
from ecgfast.train_ssl_simclr import main as simclr_main


def _corpus(path, n, seed):
    from ecgfast.data.corpus import build_corpus_from_arrays
    from ecgfast.data.synthetic import synthesize_ecg  # noqa: F401  (the generator behind the layouts)

    rng = np.random.default_rng(seed)
    t = np.arange(256) / 100
    x = (np.sin(2 * np.pi * rng.uniform(0.8, 2, (n, 12, 1)) * t) + 0.05 * rng.standard_normal((n, 12, 256)))
    build_corpus_from_arrays(path, [(x.astype(np.float32), np.arange(n), None)], sampling_rate=100,
                             signal_length=256, name=f"arrays{seed}")
    return path / "manifest.json"


def test_pretraining_on_a_weighted_mix_of_corpora(tmp_path, capsys):
    a, b = _corpus(tmp_path / "a", 96, 1), _corpus(tmp_path / "b", 64, 2)
    out = tmp_path / "enc.pt"
    argv = ["--corpus", f"{a}:0.75", "--corpus", f"{b}:0.25", "--epoch-samples", "128", "--epochs", "2",
            "--batch-size", "32", "--signal-length", "256", "--out", str(out), "--no-progress",
            "--checkpoint-every", "3", "--precision", "fp32"]
    assert simclr_main(argv) == 0
    err = capsys.readouterr().err
    assert "was not deduplicated against PTB-XL" in err  # said for arrays built without --exclude-ptbxl
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["samples_per_corpus"] for r in log] == [{str(a): 96, str(b): 32}] * 2  # 0.75 / 0.25 of 128
    ckpt = torch.load(out, weights_only=True)
    ECGEncoder1DCNN().load_state_dict(ckpt["encoder"], strict=True)
    corpora = ckpt["data"]["corpora"]
    assert [c["path"] for c in corpora] == [str(a), str(b)] and [c["weight"] for c in corpora] == [0.75, 0.25]
    assert ckpt["data"]["records_seen"] == 2 * 128 and ckpt["spec"]["sampling_rate"] == 100
    # resuming the finished run with another corpus is refused: another dataset
    assert simclr_main([x if x != f"{b}:0.25" else f"{b}:0.5" for x in argv] + ["--resume"]) == 1
    assert "trained on other data" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_pretraining_on_a_corpus_on_cuda(tmp_path):
    """The streamed batches are pinned and copied on a side stream; the run ends with a CPU-loadable encoder."""
    a = _corpus(tmp_path / "a", 96, 1)
    out = tmp_path / "enc.pt"
    assert simclr_main(["--corpus", str(a), "--epochs", "2", "--batch-size", "32", "--signal-length", "256",
                        "--out", str(out), "--no-progress", "--device", "cuda", "--compile", "off",
                        "--checkpoint-every", "2"]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["device"].startswith("cuda") and ckpt["data"]["records_seen"] == 2 * 96
    ECGEncoder1DCNN().load_state_dict(ckpt["encoder"], strict=True)
