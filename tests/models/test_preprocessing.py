"""model.preprocess: leads by name, units, resampling, length, normalisation exactly as training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from ecgfast import LEADS
from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data import Normalizer
from ecgfast.models.pretrained import load_classifier, load_encoder


@pytest.fixture(scope="module")
def enc(encoder_ckpt):
    return load_encoder(encoder_ckpt)


@pytest.fixture(scope="module")
def cls(classifier_ckpt):  # per-lead normaliser
    return load_classifier(classifier_ckpt)


@pytest.mark.parametrize("which", ["enc", "cls"])
def test_normalises_exactly_as_training(which, request, ecg_batch):
    m = request.getfixturevalue(which)
    norm = Normalizer.from_state_dict(m.spec["normalizer"])
    assert torch.equal(m.preprocess(ecg_batch, 100), norm(torch.from_numpy(ecg_batch)))


def test_single_record_and_torch_input(enc, ecg_batch):
    one = enc.preprocess(ecg_batch[1], 100)
    assert one.shape == (1, 12, 1000)
    assert torch.equal(one[0], enc.preprocess(ecg_batch, 100)[1])
    assert torch.equal(enc.preprocess(torch.from_numpy(ecg_batch), 100), enc.preprocess(ecg_batch, 100))
    assert torch.equal(enc.preprocess(ecg_batch.astype(np.float64), 100), enc.preprocess(ecg_batch, 100))


def test_leads_matched_by_name_case_insensitively(cls, ecg_batch):
    perm = np.random.default_rng(1).permutation(12)
    names = [LEADS[i].lower() if i % 2 else LEADS[i] for i in perm]
    names = [n.replace("AV", "aV") for n in names]
    extra = np.concatenate([ecg_batch[:, perm], ecg_batch[:, :1] * 0 + 7], axis=1)  # plus an unknown lead
    got = cls.preprocess(extra, 100, leads=names + ["X1"])
    assert torch.equal(got, cls.preprocess(ecg_batch, 100))
    extra[:, -1] = np.nan  # a dropped lead may hold anything
    assert torch.equal(cls.preprocess(extra, 100, leads=names + ["X1"]), got)


def test_missing_lead_is_named(enc, ecg_batch):
    names = list(LEADS)
    with pytest.raises(DataError, match=r"lead\(s\) V6 missing"):
        enc.preprocess(ecg_batch[:, :11], 100, leads=names[:11])
    with pytest.raises(DataError, match="11 leads, the model needs 12"):
        enc.preprocess(ecg_batch[:, :11], 100)
    with pytest.raises(DataError, match="more than once"):
        enc.preprocess(ecg_batch, 100, leads=names[:11] + ["I"])
    with pytest.raises(DataError, match="13 lead names given for 12 channels"):
        enc.preprocess(ecg_batch, 100, leads=names + ["X"])


def test_units(enc, ecg_batch):
    ref = enc.preprocess(ecg_batch, 100)
    # uV and V: the same signal, within float rounding of the scale factor
    assert torch.allclose(enc.preprocess(ecg_batch.astype(np.float64) * 1000, 100, units="uV"), ref, atol=1e-5)
    assert torch.allclose(enc.preprocess(ecg_batch.astype(np.float64) * 1000, 100, units="µV"), ref, atol=1e-5)
    assert torch.allclose(enc.preprocess(ecg_batch.astype(np.float64) / 1000, 100, units="V"), ref, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown units 'mmHg'"):
        enc.preprocess(ecg_batch, 100, units="mmHg")


def test_resamples_polyphase(enc, ecg_batch):
    x500 = resample_poly(ecg_batch.astype(np.float64), 5, 1, axis=-1)  # a 500 Hz version
    got = enc.preprocess(x500, 500)
    want = Normalizer.from_state_dict(enc.spec["normalizer"])(
        torch.from_numpy(resample_poly(x500, 1, 5, axis=-1).astype(np.float32)))
    assert got.shape == (3, 12, 1000) and torch.equal(got, want)
    # 250 Hz for 10 s -> 1000 samples at 100 Hz
    assert enc.preprocess(np.zeros((12, 2500)), 250).shape == (1, 12, 1000)
    with pytest.raises(ConfigError, match="sampling rate"):
        enc.preprocess(ecg_batch, 0)
    with pytest.raises(ConfigError, match="sampling rate of the input is required"):
        enc.preprocess(ecg_batch, None)


def test_length_crop_pad_and_refusal(enc, ecg_batch):
    long = np.concatenate([ecg_batch, ecg_batch[..., :500] + 1], axis=-1)  # 15 s
    assert torch.equal(enc.preprocess(long, 100), enc.preprocess(ecg_batch, 100))  # first window, as training
    center = enc.preprocess(long, 100, crop="center")
    norm = Normalizer.from_state_dict(enc.spec["normalizer"])
    assert torch.equal(center, norm(torch.from_numpy(np.ascontiguousarray(long[..., 250:1250]))))
    short = ecg_batch[..., :800]
    with pytest.raises(DataError, match=r"800 samples .* shorter than the model's window of 1000.*pad=True"):
        enc.preprocess(short, 100)
    padded = enc.preprocess(short, 100, pad=True)
    assert padded.shape == (3, 12, 1000)
    assert torch.equal(padded[..., :800], enc.preprocess(ecg_batch, 100)[..., :800])
    assert torch.equal(padded[..., 800:], norm(torch.zeros(3, 12, 200)))  # 0 mV, normalised


def test_windows(enc, ecg_batch):
    long = np.concatenate([ecg_batch, ecg_batch, ecg_batch[..., :500]], axis=-1)  # 25 s: windows at 0, 1000, 1500
    w = enc.preprocess_windows(long, 100)
    assert w.shape == (3, 3, 12, 1000)
    norm = Normalizer.from_state_dict(enc.spec["normalizer"])
    for k, s in enumerate((0, 1000, 1500)):
        assert torch.equal(w[:, k], norm(torch.from_numpy(np.ascontiguousarray(long[..., s:s + 1000]))))
    assert enc.preprocess_windows(ecg_batch, 100).shape == (3, 1, 12, 1000)


def test_nan_and_bad_shapes(enc, ecg_batch):
    bad = ecg_batch.copy()
    bad[1, 4, 17] = np.nan
    with pytest.raises(DataError, match=r"NaN or infinite samples \(first at record 1, lead AVL, sample 17\)"):
        enc.preprocess(bad, 100)
    with pytest.raises(DataError, match="shape"):
        enc.preprocess(np.zeros(1000), 100)
    with pytest.raises(DataError, match="dtype"):
        enc.preprocess(np.array([["a"] * 10] * 12), 100)


def test_lead_aliases_build_into_a_corpus_and_embed(enc, ecg_batch, tmp_path):
    """A record whose leads are named DI/DII/DIII (one lead table, ``ecgfast.data.leads``) builds into a
    corpus and embeds, both equal to the same record with the standard names."""
    from ecgfast.data.corpus import build_corpus, open_corpus
    from ecgfast.data.sources.synthetic import write_cinc_record
    from ecgfast.deploy.inputs import embed_records, open_input

    alias = ("DI", "dii", "D3", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    perm = np.array([2, 0, 1, *range(3, 12)])  # the file's rows: III, I, II, aVR, ...
    x = ecg_batch[0].astype(np.float64)
    write_cinc_record(tmp_path / "src" / "WFDB_A", "A1", x[perm], 100, 1000, 50, "Male", ["426783006"],
                      leads=tuple(alias[i] for i in perm))
    write_cinc_record(tmp_path / "ref" / "WFDB_A", "A1", x, 100, 1000, 50, "Male", ["426783006"])
    built = {}
    for name in ("src", "ref"):
        build_corpus("cinc2021", tmp_path / name, tmp_path / f"{name}-corpus", sampling_rate=100, seconds=10,
                     progress=False)
        c = open_corpus(tmp_path / f"{name}-corpus")
        built[name] = np.asarray(c.signals(np.arange(len(c))))
    assert built["src"].shape == (1, 12, 1000)
    np.testing.assert_array_equal(built["src"], built["ref"])
    embedded = {}
    for name in ("src", "ref"):
        with open_input(tmp_path / name / "WFDB_A" / "A1.hea") as source:
            embedded[name] = embed_records(enc, source)[1]
    assert torch.equal(embedded["src"], embedded["ref"])
    # the Preprocessing alone: alias names select the same rows as the standard ones
    assert torch.equal(enc.preprocess(x[perm], 100, leads=[alias[i] for i in perm]), enc.preprocess(x, 100))
    with pytest.raises(DataError, match=r"lead name\(s\) \['I'\] appear more than once"):
        enc.preprocess(x, 100, leads=["I", "DI", *LEADS[2:]])
