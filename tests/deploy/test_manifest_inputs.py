"""Corpus manifests as embed/predict inputs: a corpus is embedded row by row; a JSON that is not a
manifest is refused."""
from __future__ import annotations

import json

import h5py
import numpy as np

import ecgfast.data.corpus
from ecgfast.cli import main as cli
from ecgfast.models.pretrained import load_encoder


class FakeCorpus:
    """The duck type embed relies on (as ecgfast.data.corpus.Corpus provides): windows of 12 x T in mV."""

    def __init__(self, x, rate):
        self.x, self.sampling_rate, self.leads = x, rate, ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3",
                                                             "V4", "V5", "V6")
        self.closed = False

    def __len__(self):
        return len(self.x)

    def signals(self, idx):
        return self.x[np.asarray(idx)]

    def metadata(self):
        return {"record_id": np.array(["a", "b", "b"]), "start": np.array([0, 0, 1000])}

    def close(self):
        self.closed = True


def test_manifest_via_open_corpus(monkeypatch, capsys, tmp_path, encoder_ckpt, ecg_batch):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format": "ecgfast-corpus"}))
    corpus = FakeCorpus(ecg_batch, 100.0)
    monkeypatch.setattr(ecgfast.data.corpus, "open_corpus", lambda path: corpus)
    out = tmp_path / "e.h5"
    assert cli(["embed", "--checkpoint", str(encoder_ckpt), "--input", str(manifest), "--out", str(out),
                "--no-progress", "--device", "cpu"]) == 0, capsys.readouterr().err
    with h5py.File(out) as h5:
        assert [i.decode() for i in h5["ids"][:]] == ["a@0", "b@0", "b@1000"]
        m = load_encoder(encoder_ckpt)
        np.testing.assert_allclose(h5["embeddings"][:], m.embed(m.preprocess(ecg_batch, 100)).numpy(), atol=1e-5)
    assert corpus.closed


def test_a_json_that_is_not_a_corpus_manifest_is_refused_with_its_name(capsys, tmp_path, encoder_ckpt):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    out = tmp_path / "e.h5"
    assert cli(["embed", "--checkpoint", str(encoder_ckpt), "--input", str(manifest), "--out", str(out),
                "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecgfast embed: error: ") and str(manifest) in err and "not an ecgfast corpus" in err
    assert not out.exists()
