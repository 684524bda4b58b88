"""Data-parallel pretraining on the CPU with gloo: 2 processes equal 1 on the same global batch."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from ddp import spawn_ranks

from ecgfast.models import SimCLRModel
from ecgfast.train.pretrain import simclr_loss

N, T, TAU = 16, 128, 0.1


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch():
    g = torch.Generator().manual_seed(0)
    # float64: the comparison is about the gather and the gradient scaling, not about float32
    # summation order (the data-parallel form sums column gradients across ranks).
    return (torch.randn(N, 12, T, generator=g, dtype=torch.float64),
            torch.randn(N, 12, T, generator=g, dtype=torch.float64))


def _model():
    torch.manual_seed(3)
    # eval(): BatchNorm uses its running statistics. SyncBatchNorm (used when CUDA is
    # present) is GPU-only in DDP; in train mode on CPU each rank would normalise by
    # its own half, so the comparison pins BN to make it about the gather and the
    # gradient scaling.
    return SimCLRModel(projection_dim=32).double().eval()


def _worker(rank, world, store, out):
    torch.set_num_threads(1)
    # A file store: no TCP store server that rank 0 could take down while rank 1 still uses it.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    net = torch.nn.parallel.DistributedDataParallel(_model())
    v1, v2 = _batch()
    shard = slice(rank * N // world, (rank + 1) * N // world)
    loss = simclr_loss(net, v1[shard], v2[shard], TAU, world)  # this rank's rows against all columns
    loss.backward()
    mean = loss.detach().clone()
    dist.all_reduce(mean)  # the ranks' losses average to the global loss
    if rank == 0:
        torch.save({"loss": mean / world, "grads": {k: p.grad for k, p in net.module.named_parameters()}}, out)
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


def test_two_processes_equal_one_on_the_same_global_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    spawn_ranks(_worker, (2, str(tmp_path / "store"), str(out)))
    two = torch.load(out)
    model = _model()
    v1, v2 = _batch()
    loss = simclr_loss(model, v1, v2, TAU, 1)
    loss.backward()
    assert two["loss"].item() == pytest.approx(loss.item(), rel=1e-10)
    for name, p in model.named_parameters():
        assert torch.allclose(two["grads"][name], p.grad, rtol=1e-7, atol=1e-10), name


@pytest.mark.slow
def test_torchrun_trains_with_rank0_checkpoints(synthetic_cache_path, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                    str(_port()), "-m", "ecgfast.train_ssl_simclr", "--cache", str(synthetic_cache_path),
                    "--out", str(out), "--epochs", "1", "--batch-size", "32", "--signal-length", "256",
                    "--no-progress", "--precision", "fp32"], check=True, env=env, timeout=300)
    ckpt = torch.load(out, weights_only=True)
    assert "encoder" in ckpt
    # Two ranks joined one process group (world size 2 comes from the group, not from a flag) and
    # trained together: DDP's per-step all-reduce and the epoch's loss all-reduce need both.
    assert ckpt["config"]["world_size"] == 2
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(log) == 1  # rank 0 logs, once per epoch
    # each rank took 32 / 2 = 16 samples a step from its half of the epoch: the steps of a rank's shard
    from ecgfast.data import ECGBatchLoader, open_cache

    cache = open_cache(synthetic_cache_path)
    shard = ECGBatchLoader(cache, cache.split_indices("train"), 16, drop_last=True, num_replicas=2, rank=0)
    assert log[0]["step"] == len(shard)
