import numpy as np
import pytest
import torch

from ecgfast.data import (
    ECGBatchLoader,
    Normalizer,
    build_cache,
    ensure_cache,
    label_fraction_indices,
    load_metadata,
    open_cache,
    read_record,
)


def test_cache_holds_what_wfdb_reads(synthetic_root, synthetic_cache_path):
    meta = load_metadata(synthetic_root)
    with open_cache(synthetic_cache_path) as c:
        assert len(c) == len(meta) and c.sampling_rate == 100 and c.signal_length == 1000
        assert c.classes == meta.classes
        np.testing.assert_array_equal(c.ecg_ids, meta.ecg_ids)
        np.testing.assert_array_equal(c.folds, meta.folds)
        np.testing.assert_array_equal(c.labels, meta.labels)
        idx = np.array([5, 0, 399, 5])
        x = c.signals(idx)
        assert x.dtype == torch.float32 and x.shape == (4, 12, 1000)
        for row, i in zip(x, idx):
            want = read_record(synthetic_root, int(meta.ecg_ids[i]), 100)
            np.testing.assert_array_equal(row.numpy(), want)


def test_cache_of_real_sample_equals_wfdb(ptbxl_sample_root, tmp_path):
    import wfdb

    path = build_cache(ptbxl_sample_root, tmp_path / "real500.h5", 500, skip_missing=True, progress=False)
    with open_cache(path) as c:
        assert len(c) == 50 and c.signal_length == 5000 and c.fingerprint["skipped"] == 21837 - 50
        x = c.signals([0, 49])
        ref = wfdb.rdsamp(str(ptbxl_sample_root / "records500/00000/00050_hr"))[0].T
        np.testing.assert_allclose(x[1].numpy(), ref, atol=1e-6)


def test_split_indices(synthetic_cache_path):
    with open_cache(synthetic_cache_path) as c:
        tr, va, te = (c.split_indices(s) for s in ("train", "val", "test"))
        assert set(c.folds[tr]) <= set(range(1, 9)) and set(c.folds[va]) == {9} and set(c.folds[te]) == {10}
        assert len(tr) + len(va) + len(te) == len(c)
        assert c.has_label[c.split_indices("train", labelled_only=True)].all()


def test_loader_epoch_covers_split_deterministically(synthetic_cache_path):
    c = open_cache(synthetic_cache_path)
    idx = c.split_indices("train")
    loader = ECGBatchLoader(c, idx, batch_size=64, seed=3)
    seen = torch.cat([b.index for b in loader])
    assert sorted(seen.tolist()) == sorted(idx.tolist())
    batch = next(iter(loader))
    np.testing.assert_array_equal(batch.signals.numpy(), c.signals(batch.index.numpy()).numpy())
    np.testing.assert_array_equal(batch.labels.numpy(), c.labels[batch.index.numpy()])
    again = torch.cat([b.index for b in ECGBatchLoader(c, idx, batch_size=64, seed=3)])
    assert torch.equal(seen, again)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([b.index for b in loader]), seen)


def test_loader_500hz_reads_by_chunk(synthetic_root, tmp_path):
    c = open_cache(build_cache(synthetic_root, tmp_path / "c500.h5", 500, progress=False))
    loader = ECGBatchLoader(c, c.split_indices("val"), batch_size=8, shuffle=False)
    assert loader._raw is None  # not held in memory
    b = next(iter(loader))
    assert b.signals.shape == (8, 12, 5000)
    np.testing.assert_array_equal(b.signals.numpy(), c.signals(b.index.numpy()).numpy())


def test_loader_shards_for_distributed(synthetic_cache_path):
    c = open_cache(synthetic_cache_path)
    idx = c.split_indices("train")
    parts = [torch.cat([b.index for b in ECGBatchLoader(c, idx, 32, seed=1, num_replicas=2, rank=r)])
             for r in range(2)]
    assert len(parts[0]) == len(parts[1])
    assert set(parts[0].tolist()) | set(parts[1].tolist()) == set(idx.tolist())
    overlap = len(parts[0]) + len(parts[1]) - len(idx)  # padding only
    assert len(set(parts[0].tolist()) & set(parts[1].tolist())) <= overlap


def test_batch_larger_than_dataset_is_refused(synthetic_cache_path):
    c = open_cache(synthetic_cache_path)
    with pytest.raises(ValueError, match="larger than"):
        ECGBatchLoader(c, c.split_indices("val"), batch_size=10_000, drop_last=True)


def test_normalizer_fits_training_folds_only(synthetic_cache_path):
    c = open_cache(synthetic_cache_path)
    tr = c.split_indices("train")
    norm = Normalizer.fit(c, tr)
    x = c.signals(tr).double()
    assert norm.mean.item() == pytest.approx(x.mean().item(), abs=1e-6)
    assert norm.std.item() == pytest.approx(x.std(unbiased=False).item(), rel=1e-5)
    lead = Normalizer.fit(c, tr, per_lead=True)
    np.testing.assert_allclose(lead.mean.numpy(), x.mean(dim=(0, 2)).numpy(), atol=1e-6)
    z = lead(c.signals(tr[:50]))
    assert z.shape == (50, 12, 1000)
    back = Normalizer.from_state_dict(lead.state_dict())
    assert torch.equal(back(x[:2].float()), lead(x[:2].float()))


def test_label_fraction_is_stratified_seeded_and_from_training_folds(ptbxl_sample_root):
    meta = load_metadata(ptbxl_sample_root)
    sel = label_fraction_indices(meta.labels, meta.folds, 0.1, seed=42)
    pool = meta.has_label & (meta.folds <= 8)
    assert len(sel) == round(0.1 * pool.sum())
    assert pool[sel].all() and len(np.unique(sel)) == len(sel)
    np.testing.assert_array_equal(sel, label_fraction_indices(meta.labels, meta.folds, 0.1, seed=42))
    assert not np.array_equal(sel, label_fraction_indices(meta.labels, meta.folds, 0.1, seed=43))
    # Stratified: each class's share within 1 percentage point of the pool's.
    share = meta.labels[sel].mean(0)
    np.testing.assert_allclose(share, meta.labels[pool].mean(0), atol=0.01)
    full = label_fraction_indices(meta.labels, meta.folds, 1.0, seed=0)
    np.testing.assert_array_equal(full, np.flatnonzero(pool))


def test_ensure_cache_rebuilds_a_stale_cache(synthetic_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns("records500"))
    path = tmp_path / "c.h5"
    first = ensure_cache(root, path, 100, progress=False)
    n = len(first)
    first.close()
    db = root / "ptbxl_database.csv"
    lines = db.read_text().splitlines(keepends=True)
    db.write_text("".join(lines[:-10]))  # the csv changed: 10 records fewer
    second = ensure_cache(root, path, 100, progress=False)
    assert len(second) == n - 10
    assert "rebuilding" in capsys.readouterr().err
