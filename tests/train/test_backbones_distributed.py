"""Data-parallel SimCLR with every new backbone (gloo, 2 CPU processes): the same loss and gradients as
one process on the same global batch. One spawn runs all backbones (process start-up is the cost)."""
import pytest
import torch
import torch.distributed as dist
from ddp import spawn_ranks

from ecgfast.models import SimCLRModel, build_encoder
from ecgfast.models.backbones import ENCODER_NAMES
from ecgfast.train.pretrain import simclr_loss

NEW = [n for n in ENCODER_NAMES if n != "ecg1dcnn"]
N, T, TAU = 8, 96, 0.1


def _batch():
    g = torch.Generator().manual_seed(0)
    # float64: the comparison is about the gather and the gradient scaling, not float32 summation order
    return (torch.randn(N, 12, T, generator=g, dtype=torch.float64),
            torch.randn(N, 12, T, generator=g, dtype=torch.float64))


def _model(name):
    torch.manual_seed(3)
    # eval(): BatchNorm on running statistics, as in test_distributed.py (on the CPU each rank would
    # otherwise normalise by its own half; SyncBatchNorm is what a GPU run uses)
    return SimCLRModel(build_encoder(name), projection_dim=16, hidden=64).double().eval()


def _worker(rank, world, store, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    results = {}
    for name in NEW:
        net = torch.nn.parallel.DistributedDataParallel(_model(name))
        v1, v2 = _batch()
        shard = slice(rank * N // world, (rank + 1) * N // world)
        loss = simclr_loss(net, v1[shard], v2[shard], TAU, world)  # this rank's rows against all columns
        loss.backward()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        results[name] = {"loss": mean / world, "grads": {k: p.grad for k, p in net.module.named_parameters()}}
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


def test_every_backbone_trains_data_parallel_like_one_process(tmp_path):
    out = tmp_path / "rank0.pt"
    spawn_ranks(_worker, (2, str(tmp_path / "store"), str(out)))
    two = torch.load(out)
    for name in NEW:
        model = _model(name)
        v1, v2 = _batch()
        loss = simclr_loss(model, v1, v2, TAU, 1)
        loss.backward()
        assert two[name]["loss"].item() == pytest.approx(loss.item(), rel=1e-10), name
        for key, p in model.named_parameters():
            assert p.grad is not None and key in two[name]["grads"], (name, key)
            torch.testing.assert_close(two[name]["grads"][key], p.grad, rtol=1e-7, atol=1e-10, msg=f"{name} {key}")
