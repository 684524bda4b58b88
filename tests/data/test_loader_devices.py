"""The loader's batch assembly on a device: a split held there, each batch gathered there, no CPU tensor."""
import warnings

import pytest
import torch
from devices import cpu_and_cuda, no_cpu_tensors

import ecgfast.base.extension as ext
from ecgfast.data import ECGBatchLoader, build_cache, open_cache


@pytest.fixture(scope="module")
def mini_cache(mini_root_template, tmp_path_factory):
    return open_cache(build_cache(mini_root_template, tmp_path_factory.mktemp("c") / "mini.h5", 100, progress=False))


@pytest.mark.parametrize("path", ["compiled-or-fake", "no-extension"])
def test_device_resident_batches_make_no_cpu_tensor(mini_cache, monkeypatch, path):
    """On meta (no GPU needed): the split is held on the device and an epoch's batches are assembled there;
    the epoch's order (a seeded CPU permutation) is the one upload."""
    if path == "no-extension":
        monkeypatch.setattr(ext, "EXTENSION_AVAILABLE", False)
    idx = mini_cache.split_indices("train")
    loader = ECGBatchLoader(mini_cache, idx, batch_size=4, seed=1, device="meta")
    assert loader.device_resident
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a build without meta kernels takes the plain path, warned
        with no_cpu_tensors(host_ops=True) as checker:
            batches = list(loader)
    assert len(batches) == len(loader) >= 2
    for b in batches:
        assert all(t.device.type == "meta" for t in b)
        assert b.signals.shape[1:] == (12, 1000) and b.signals.dtype == torch.float32
        assert b.labels.shape == (b.signals.shape[0], len(mini_cache.classes)) and b.index.dtype == torch.int64
    assert len(checker.uploads) == 1, checker.uploads


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_device_batches_equal_the_host_batches(mini_cache, device):
    idx = mini_cache.split_indices("train")
    host = list(ECGBatchLoader(mini_cache, idx, batch_size=4, seed=2))
    dev = list(ECGBatchLoader(mini_cache, idx, batch_size=4, seed=2, device=device))
    assert len(dev) == len(host)
    for d, h in zip(dev, host):
        assert all(t.device.type == device for t in d)
        for a, b in zip(d, h):
            assert torch.equal(a.cpu(), b)
