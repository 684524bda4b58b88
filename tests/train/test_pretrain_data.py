"""The pretraining-data objects (train/pretrain_data.py): the same batches as the loaders they wrap, resumable."""
import logging

import numpy as np
import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.data import ECGBatchLoader, Normalizer, open_cache
from ecgfast.train.pretrain_data import (
    PTBXLFolds,
    WeightedCorpora,
    check_batch,
    dataset_digest,
)


def _indices(batches) -> list[list[int]]:
    return [b.index.tolist() for b in batches]


@pytest.fixture(scope="module")
def folds(synthetic_cache_path):
    return open_cache(synthetic_cache_path)


def test_ptbxl_folds_give_the_seeded_loader_order_of_folds_1_to_8(folds):
    """Epoch e is the ECGBatchLoader's permutation seeded by (seed, e), dropped last batch and all."""
    data = PTBXLFolds(folds, 32, 128, seed=3)
    train = folds.split_indices("train")
    loader = ECGBatchLoader(folds, train, 32, shuffle=True, seed=3, drop_last=True)
    assert len(data) == len(loader) == len(train) // 32
    for epoch in (0, 2):
        data.set_epoch(epoch)
        loader.set_epoch(epoch)
        got = _indices(data)
        assert got == _indices(loader) and data.state_dict() == {"epoch": epoch, "position": len(data)}
    assert got != _indices(PTBXLFolds(folds, 32, 128, seed=3))  # epoch 0 differs from epoch 2
    fitted = Normalizer.fit(folds, train)
    assert data.normalizer.state_dict() == fitted.state_dict()
    assert data.digest == dataset_digest(folds) and data.corpora_info[0]["records"] == len(train)
    assert (data.sampling_rate, data.leads, data.notes) == (folds.sampling_rate, folds.leads, [])


def test_ptbxl_folds_resume_mid_epoch_from_their_state(folds):
    first = PTBXLFolds(folds, 32, 128, seed=5)
    first.set_epoch(1)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 3}
    second = PTBXLFolds(folds, 32, 128, seed=5)
    second.load_state_dict(state)
    rest = _indices(second)
    assert rest == _indices(it)  # the batches the first would have handed out next
    whole = PTBXLFolds(folds, 32, 128, seed=5)
    whole.set_epoch(1)
    assert _indices(head) + rest == _indices(whole)


def test_ptbxl_folds_refuse_a_batch_or_length_they_cannot_give(folds):
    with pytest.raises(ConfigError, match="--signal-length 100000 exceeds"):
        PTBXLFolds(folds, 32, 100_000, seed=0)
    with pytest.raises(ConfigError, match="larger than the .* training records"):
        PTBXLFolds(folds, 100_000, 128, seed=0)
    with pytest.raises(ConfigError, match="--batch-size 33 must be divisible by the 2 processes"):
        check_batch(33, 2, 1000, "records")


def _corpus(path, n, seed):
    from ecgfast.data.corpus import build_corpus_from_arrays, open_corpus

    rng = np.random.default_rng(seed)
    t = np.arange(256) / 100
    x = np.sin(2 * np.pi * rng.uniform(0.8, 2, (n, 12, 1)) * t) + 0.05 * rng.standard_normal((n, 12, 256))
    build_corpus_from_arrays(path, [(x.astype(np.float32), np.arange(n), None)], sampling_rate=100,
                             signal_length=256, name=f"arrays{seed}")
    return open_corpus(path / "manifest.json")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return [(_corpus(root / "a", 96, 1), 0.75), (_corpus(root / "b", 64, 2), 0.25)]


def test_weighted_corpora_give_the_streaming_loader_batches_and_counts(corpora):
    from ecgfast.data.corpus import StreamingLoader

    data = WeightedCorpora(corpora, 32, 200, seed=4, epoch_samples=128)
    loader = StreamingLoader(corpora, 32, seed=4, epoch_samples=128, drop_last=True)
    assert len(data) == len(loader) == 4
    for epoch in (0, 1):
        data.set_epoch(epoch)
        loader.set_epoch(epoch)
        got, want = list(data), list(loader)
        assert _indices(got) == _indices(want)
        assert all(torch.equal(a.signals, b.signals) for a, b in zip(got, want))
        assert data.epoch_stats() == {"samples_per_corpus": {str(c.path): n for (c, _), n in zip(corpora, (96, 32))}}
    assert data.sampling_rate == 100 and data.where == ", ".join(str(c.path) for c, _ in corpora)
    assert [i["weight"] for i in data.corpora_info] == [0.75, 0.25]
    assert [level for level, _ in data.notes] == [logging.WARNING] * 2  # arrays: built without --exclude-ptbxl
    assert all("was not deduplicated against PTB-XL" in note for _, note in data.notes)
    # the digest names the corpora and their weights
    assert data.digest != WeightedCorpora([corpora[0], (corpora[1][0], 0.5)], 32, 200, seed=4).digest


def test_weighted_corpora_resume_mid_epoch_without_reading_the_skipped_batches(corpora):
    first = WeightedCorpora(corpora, 32, 200, seed=4, epoch_samples=128)
    first.set_epoch(3)
    it = iter(first)
    head = [next(it) for _ in range(2)]
    state = first.state_dict()
    second = WeightedCorpora(corpora, 32, 200, seed=4, epoch_samples=128)
    second.load_state_dict(state)
    assert (second.epoch, second.position) == (3, 2)
    rest = list(second)
    assert _indices(rest) == _indices(it) and second.position == len(second) == 4
    whole = WeightedCorpora(corpora, 32, 200, seed=4, epoch_samples=128)
    whole.set_epoch(3)
    assert _indices(head + rest) == _indices(whole)
    with pytest.raises(ConfigError, match="start_batch 5 is not in"):
        second.set_epoch(0, start_batch=5)


def test_corpora_normalizer_is_the_statistics_of_every_window_when_they_are_few(corpora):
    data = WeightedCorpora(corpora, 32, 200, seed=0)
    x = np.concatenate([c.signals(np.arange(len(c)))[..., :200].astype(np.float64) for c, _ in corpora])
    mean, std = data.normalizer.state_dict()["mean"][0], data.normalizer.state_dict()["std"][0]
    assert mean == pytest.approx(x.mean(), rel=1e-6, abs=1e-9) and std == pytest.approx(x.std(), rel=1e-6)
