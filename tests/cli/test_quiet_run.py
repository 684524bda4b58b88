"""A normal run prints no deprecation or library-internal warning: only the project's own lines."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def test_a_tiny_pretraining_command_prints_only_its_own_lines(cli_tiny_cache, tmp_path):
    """As a user runs it (a fresh process, Python's default warning filters, stderr to a file)."""
    _, cache = cli_tiny_cache
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "ecgfast", "pretrain-simclr", "--cache", str(cache), "--out",
                        str(tmp_path / "enc.pt"), "--epochs", "1", "--batch-size", "32", "--signal-length", "128",
                        "--precision", "fp32", "--device", "cpu"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"saved the encoder to {tmp_path / 'enc.pt'}\n"
    # the one line it means to give (a cache used without its data root), no warning, no progress bar
    assert r.stderr.splitlines() == [f"ecgfast: using cache {cache} as it is: without a --data-root folder its "
                                     "staleness against the PTB-XL source is not checked (its record hashes are)"]


def test_the_gradient_gather_does_not_warn(tmp_path):
    """The NT-Xent gather (every data-parallel step) is warning-free and is the identity on one rank."""
    import torch.distributed as dist

    from ecgfast.base.distributed import all_gather_with_grad

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        x = torch.randn(4, 3, requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (y,) = all_gather_with_grad(x)
            (y * torch.arange(3.0)).sum().backward()
        assert caught == []
        assert torch.equal(y, x)
        assert torch.equal(x.grad, torch.arange(3.0).expand(4, 3))
    finally:
        dist.destroy_process_group()
