"""StreamingLoader: batch interface, determinism, resume, ranks, mixed corpora, memory flat in corpus size."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.data.corpus import StreamingLoader, build_corpus, open_corpus


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, arrays):
    root = tmp_path_factory.mktemp("stream")
    out = {}
    for name, n in (("a", 300), ("b", 130)):
        arrays(root / f"src_{name}", n, T=200, rate=100, seed=len(name) + n)
        build_corpus("numpy", root / f"src_{name}", root / name, sampling_rate=100, seconds=2,
                     shard_records=70, progress=False)
        out[name] = open_corpus(root / name / "manifest.json")
    return out


def _epoch(loader):
    return [b for b in loader]


def test_batches_cover_the_corpus_once(corpora):
    a = corpora["a"]
    loader = StreamingLoader([(a, 1.0)], 16, seed=0, memory_budget_mb=1.5, drop_last=False, block_windows=8)
    assert loader.group_size < len(a)  # the buffer holds a fraction of the corpus
    batches = _epoch(loader)
    assert len(batches) == len(loader) == 19
    b = batches[0]
    assert b.signals.dtype == torch.float32 and b.signals.shape == (16, 12, 200)
    assert b.labels.shape == (16, 5) and b.index.dtype == torch.int64
    idx = torch.cat([b.index for b in batches]).numpy()
    assert sorted(idx.tolist()) == list(range(300))
    x = torch.cat([b.signals for b in batches])
    np.testing.assert_array_equal(x.numpy(), a.signals(idx))  # one gather_dequantize: bit-identical
    lab = np.concatenate([a.shard_labels(k) for k in range(len(a.shard_names))])
    np.testing.assert_array_equal(torch.cat([b.labels for b in batches]).numpy(), lab[idx])
    assert abs(np.corrcoef(np.arange(300), idx)[0, 1]) < 0.3  # shuffled across shards


def test_deterministic_and_resumable(corpora):
    a = corpora["a"]
    def make():
        return StreamingLoader([(a, 1.0)], 10, seed=3, memory_budget_mb=1.5, block_windows=8)
    l1, l2 = make(), make()
    l1.set_epoch(2)
    l2.set_epoch(2)
    e1, e2 = _epoch(l1), _epoch(l2)
    assert all(torch.equal(x.index, y.index) and torch.equal(x.signals, y.signals) for x, y in zip(e1, e2))
    l2.set_epoch(3)
    assert not torch.equal(torch.cat([b.index for b in _epoch(l2)]), torch.cat([b.index for b in e1]))
    for k in (1, 7, 13, len(l1)):
        l2.set_epoch(2, start_batch=k)
        rest = _epoch(l2)
        assert len(rest) == len(e1) - k
        assert all(torch.equal(x.index, y.index) and torch.equal(x.signals, y.signals) for x, y in zip(e1[k:], rest))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_pinned_batches_equal_pooled_ones(corpora):
    make = lambda pin: StreamingLoader([(corpora["a"], 1.0)], 16, seed=0, memory_budget_mb=1.5,  # noqa: E731
                                       block_windows=8, pin_memory=pin)
    pinned, pooled = _epoch(make(True)), _epoch(make(False))
    assert len(pinned) == len(pooled) and all(t.is_pinned() for b in pinned for t in b)
    assert all(torch.equal(x.signals, y.signals) and torch.equal(x.labels, y.labels) and torch.equal(x.index, y.index)
               for x, y in zip(pinned, pooled))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_pin_memory_without_cuda_warns_and_streams_unpinned(corpora):
    with pytest.warns(UserWarning, match="pin_memory needs CUDA"):
        loader = StreamingLoader([(corpora["a"], 1.0)], 16, seed=0, memory_budget_mb=1.5, pin_memory=True)
    assert not loader.pin_memory and len(_epoch(loader)) == len(loader)


def test_ranks_are_disjoint_and_equal(corpora):
    a = corpora["a"]
    seen = []
    lens = set()
    for r in range(3):
        l = StreamingLoader([(a, 1.0)], 8, seed=1, num_replicas=3, rank=r, memory_budget_mb=1.5, block_windows=8)
        l.set_epoch(4)
        lens.add(len(l))
        seen.append(set(torch.cat([b.index for b in l]).tolist()))
    assert len(lens) == 1
    # blocks are dealt to ranks disjointly; only a rank that runs short wraps into the next pass
    overlap = len(seen[0] & seen[1]) + len(seen[0] & seen[2]) + len(seen[1] & seen[2])
    assert overlap <= 2 * 8 and len(set.union(*seen)) >= 300 - 3 * 8


def test_mixed_corpora_weights_and_counts(corpora):
    a, b = corpora["a"], corpora["b"]
    l = StreamingLoader([(a, 0.7), (b, 0.3)], 10, seed=0, epoch_samples=1000, memory_budget_mb=1.5,
                        block_windows=8)
    assert len(l) == 100 and l.quotas.tolist() == [700, 300]
    idx = torch.cat([x.index for x in l]).numpy()
    assert l.counts == [700, 300]
    assert (idx < len(a)).sum() == 700 and (idx >= len(a)).sum() == 300  # b's indices follow a's
    assert len(set(idx[idx >= len(a)].tolist())) == len(b)  # b (130) was passed more than twice
    first = torch.cat([x.index for x in list(l)[:10]]).numpy()
    assert 0.4 < (first < len(a)).mean() < 0.95  # interleaved, not one corpus after the other


def test_bad_configurations(corpora, tmp_path, arrays):
    a = corpora["a"]
    with pytest.raises(ConfigError, match="memory_budget_mb"):
        StreamingLoader([(a, 1.0)], 256, seed=0, memory_budget_mb=1)
    with pytest.raises(ConfigError, match="weights must be positive"):
        StreamingLoader([(a, 0.0)], 8, seed=0)
    for kwargs, message in [({"memory_budget_mb": float("nan")}, "memory_budget_mb must be a finite number"),
                            ({"memory_budget_mb": True}, "memory_budget_mb must be a finite number"),
                            ({"epoch_samples": 2.5}, "epoch_samples must be an integer >= 1"),
                            ({"epoch_samples": 0}, "epoch_samples must be an integer >= 1"),
                            ({"seed": -1}, "seed must be an integer >= 0"),
                            ({"seed": "7"}, "seed must be an integer >= 0"),
                            ({"num_replicas": 1.5}, "num_replicas must be an integer >= 1"),
                            ({"num_replicas": 2, "rank": 2}, r"rank 2 is not in \[0, 2\)")]:
        with pytest.raises(ConfigError, match=message):
            StreamingLoader([(a, 1.0)], 8, **{"seed": 0, **kwargs})
    with pytest.raises(ConfigError, match="epoch must be an integer >= 0"):
        StreamingLoader([(a, 1.0)], 8, seed=0).set_epoch(-1)
    arrays(tmp_path / "s", 20, T=300, rate=100)
    other = open_corpus(build_corpus("numpy", tmp_path / "s", tmp_path / "o", sampling_rate=100, seconds=3,
                                     progress=False) and tmp_path / "o")
    with pytest.raises(ConfigError, match="does not match"):
        StreamingLoader([(a, 1.0), (other, 1.0)], 8, seed=0)


_PROBE = textwrap.dedent("""
    import json, sys
    import torch
    from ecgfast.data.corpus import StreamingLoader, open_corpus

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

    torch.set_num_threads(1)
    c = open_corpus(sys.argv[1])
    loader = StreamingLoader([(c, 1.0)], 32, seed=0, memory_budget_mb=float(sys.argv[2]))
    warm = StreamingLoader([(c, 1.0)], 32, seed=0, memory_budget_mb=float(sys.argv[2]), epoch_samples=64)
    for b in warm:
        pass
    before = anon()
    peak = before
    n = 0
    for b in loader:
        n += len(b.index)
        peak = max(peak, anon())
    print(json.dumps({"before": before, "peak": peak, "n": n, "len": len(c)}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_anonymous_memory_is_flat_in_corpus_size(tmp_path, arrays):
    procs = {}
    for n in (400, 4000):
        arrays(tmp_path / f"s{n}", n, T=500, rate=100, seed=n)
        build_corpus("numpy", tmp_path / f"s{n}", tmp_path / f"c{n}", sampling_rate=100, seconds=5, shard_records=512,
                     progress=False)
        (tmp_path / f"s{n}" / "signals.npy").unlink()
    for n in (400, 4000):  # two fresh processes, side by side
        procs[n] = subprocess.Popen([sys.executable, "-c", _PROBE, str(tmp_path / f"c{n}"), "8"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for n, p in procs.items():
        out, err = p.communicate()
        assert p.returncode == 0, err
        results[n] = json.loads(out)
    small, large = results[400], results[4000]
    assert large["n"] >= 3900 and large["len"] == 10 * small["len"]  # 10x the corpus (46 MB of int16)...
    assert large["peak"] <= 1.10 * small["peak"], results  # ...no more anonymous memory within 10 %
    # the growth over a warmed-up process is the 8 MB budget plus allocator slack (two buffers live at once)
    assert large["peak"] - large["before"] < 20 * 2**20, results


def test_two_live_iterators_do_not_share_a_buffer(corpora):
    """A second iterator runs a whole epoch while the first is paused inside its first shuffle
    buffer: had they shared the buffer, the second would have refilled it (with the next group's
    windows) under the first, whose later batches would hold other windows than their indices."""
    a = corpora["a"]
    l = StreamingLoader([(a, 1.0)], 10, seed=5, memory_budget_mb=1.5, block_windows=8)
    assert l.group_size < len(a) - l.batch_size  # an epoch is two buffer fills: the second overwrites
    want = list(l)  # leaves a buffer to reuse
    first, second = iter(l), iter(l)
    got1 = [next(first)]  # paused mid-buffer
    got2 = list(second)
    got1 += list(first)
    for got in (got1, got2):
        assert len(got) == len(want) == 30
        for x, y in zip(got, want):
            assert torch.equal(x.index, y.index) and torch.equal(x.signals, y.signals)
            np.testing.assert_array_equal(x.signals.numpy(), a.signals(x.index.numpy()))
