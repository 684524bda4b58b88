"""ecgfast embed / predict on every input kind; determinism; one-line errors for bad input."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

from ecgfast import CLASSES, LEADS
from ecgfast.cli import main as cli
from ecgfast.models.pretrained import load_classifier, load_encoder

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def read_h5(path):
    with h5py.File(path, "r") as h5:
        return h5["embeddings"][:], [s.decode() if isinstance(s, bytes) else s for s in h5["ids"][:]]


def test_embed_cache_h5_deterministic_across_processes(capsys, tmp_path, encoder_ckpt, small_cache):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    rc, out, err = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", a,
                       "--device", "cpu", "--batch-size", "7", "--no-progress")
    assert rc == 0, err
    assert "24 records" in out
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "ecgfast.cli", "embed", "--checkpoint", str(encoder_ckpt), "--input",
                    str(small_cache), "--out", str(b), "--device", "cpu", "--batch-size", "7", "--no-progress"],
                   check=True, env=env, capture_output=True)
    assert a.read_bytes() == b.read_bytes()
    emb, ids = read_h5(a)
    assert emb.shape == (24, 256) and emb.dtype == np.float32
    # the same numbers as the Python API
    from ecgfast.data import open_cache

    with open_cache(small_cache) as c:
        assert ids == [str(i) for i in c.ecg_ids]
        m = load_encoder(encoder_ckpt)
        ref = m.embed(m.preprocess(c.signals(np.arange(24)).numpy(), 100)).numpy()
    np.testing.assert_allclose(emb, ref, rtol=0, atol=1e-5)


def test_embed_npy_output_and_inputs(capsys, tmp_path, encoder_ckpt, small_cache, small_ptbxl):
    from ecgfast.data import open_cache

    with open_cache(small_cache) as c:
        x = c.signals(np.arange(5)).numpy()
    ref_h5 = tmp_path / "ref.h5"
    assert run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", ref_h5,
               "--device", "cpu", "--no-progress")[0] == 0
    ref, ref_ids = read_h5(ref_h5)

    # .npy in uV with shuffled lead names -> .npy + ids.csv
    perm = np.arange(12)[::-1]
    arr = tmp_path / "x.npy"
    np.save(arr, x[:, perm] * 1000)
    out = tmp_path / "e.npy"
    rc, _, err = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--sampling-rate", "100",
                     "--leads", *[LEADS[i] for i in perm], "--units", "uV", "--out", out, "--no-progress",
                     "--device", "cpu")
    assert rc == 0, err
    got = np.load(out)
    assert got.shape == (5, 256)
    np.testing.assert_allclose(got, ref[:5], atol=1e-4)
    with open(out.with_name("e.ids.csv")) as f:
        assert [r["id"] for r in csv.DictReader(f)] == ["0", "1", "2", "3", "4"]

    # the PTB-XL folder at 500 Hz (resampled to 100 Hz) gives the cache's ids and close embeddings
    folder = tmp_path / "f.h5"
    rc, _, err = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", small_ptbxl, "--sampling-rate", "500",
                     "--out", folder, "--no-progress", "--device", "cpu")
    assert rc == 0, err
    femb, fids = read_h5(folder)
    assert fids == ref_ids and femb.shape == ref.shape
    assert np.corrcoef(femb.ravel(), ref.ravel())[0, 1] > 0.99

    # a text list of WFDB records, and record paths directly
    recs = sorted((small_ptbxl / "records100").rglob("*.hea"))[:3]
    lst = tmp_path / "records.txt"
    lst.write_text("# three records\n" + "\n".join(str(r.with_suffix("")) for r in recs) + "\n\n")
    for inputs in ([lst], [str(r.with_suffix("")) for r in recs]):
        o = tmp_path / "r.h5"
        rc, _, err = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", *inputs, "--out", o,
                         "--no-progress", "--device", "cpu")
        assert rc == 0, err
        remb, rids = read_h5(o)
        assert rids == [str(r.with_suffix("")) for r in recs]
        np.testing.assert_allclose(remb, ref[:3], atol=1e-5)


def test_long_records_are_mean_pooled_windows(capsys, tmp_path, encoder_ckpt, ecg_batch):
    long = np.concatenate([ecg_batch, ecg_batch[..., ::-1]], axis=-1)  # 20 s: two windows
    arr = tmp_path / "long.npy"
    np.save(arr, long)
    out = tmp_path / "l.npy"
    assert run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--sampling-rate", "100",
               "--out", out, "--no-progress", "--device", "cpu")[0] == 0
    m = load_encoder(encoder_ckpt)
    w = m.preprocess_windows(long, 100)
    want = m.embed(w.reshape(-1, 12, 1000)).view(3, 2, 256).mean(1)
    np.testing.assert_allclose(np.load(out), want.numpy(), atol=1e-5)


def test_embed_accepts_a_classifier(capsys, tmp_path, classifier_ckpt, small_cache):
    out = tmp_path / "c.h5"
    rc, _, err = run(capsys, "embed", "--checkpoint", classifier_ckpt, "--input", small_cache, "--out", out,
                     "--no-progress", "--device", "cpu")
    assert rc == 0, err
    assert read_h5(out)[0].shape == (24, 256)


def test_predict_csv(capsys, tmp_path, classifier_ckpt, small_cache):
    out = tmp_path / "preds.csv"
    rc, _, err = run(capsys, "predict", "--checkpoint", classifier_ckpt, "--input", small_cache, "--out", out,
                     "--no-progress", "--device", "cpu", "--batch-size", "10")
    assert rc == 0, err
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id"] + [f"p_{c}" for c in CLASSES] + [f"y_{c}" for c in CLASSES]
    assert len(rows) == 24
    m = load_classifier(classifier_ckpt)
    from ecgfast.data import open_cache

    with open_cache(small_cache) as c:
        p = m.predict_proba(m.preprocess(c.signals(np.arange(24)).numpy(), 100)).numpy()
        assert [r["id"] for r in rows] == [str(i) for i in c.ecg_ids]
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(got, p, atol=1e-5)
    y = np.array([[int(r[f"y_{c}"]) for c in CLASSES] for r in rows])
    assert np.array_equal(y, (got >= np.array(m.thresholds)).astype(int))


# ---- bad input: one line, exit 1, no traceback ---------------------------------------------

def _fails(capsys, *argv, match: str, cmd: str = None):
    rc, out, err = run(capsys, *argv)
    cmd = cmd or argv[0]
    assert rc == 1
    assert err.startswith(f"ecgfast {cmd}: error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


def test_bad_input_errors(capsys, tmp_path, encoder_ckpt, classifier_ckpt, small_cache, ecg_batch):
    out = tmp_path / "o.h5"
    # an encoder given to predict
    _fails(capsys, "predict", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", tmp_path / "p.csv",
           "--no-progress", match=f"{encoder_ckpt} is an encoder checkpoint, not a classifier")
    # a file that is not a checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    for cmd, o in (("embed", out), ("predict", tmp_path / "p.csv")):
        _fails(capsys, cmd, "--checkpoint", junk, "--input", small_cache, "--out", o, "--no-progress",
               match=f"checkpoint {junk} could not be read")
    _fails(capsys, "embed", "--checkpoint", tmp_path / "none.pt", "--input", small_cache, "--out", out,
           match="does not exist")
    # .npy without a rate; with too few leads; too short; NaN
    arr = tmp_path / "x.npy"
    np.save(arr, ecg_batch)
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--out", out, match=f"{arr}")
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--out", out,
           match="pass --sampling-rate")
    few = tmp_path / "few.npy"
    np.save(few, ecg_batch[:, :8])
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", few, "--sampling-rate", "100",
           "--leads", *LEADS[:8], "--out", out, "--no-progress", match="lead(s) V3, V4, V5, V6 missing")
    short = tmp_path / "short.npy"
    np.save(short, ecg_batch[..., :600])
    err = _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", short, "--sampling-rate", "100",
                 "--out", out, "--no-progress", match="shorter than the model's window")
    assert str(short) in err
    rc, _, _ = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", short, "--sampling-rate", "100",
                   "--out", out, "--no-progress", "--pad")
    assert rc == 0
    nan = tmp_path / "nan.npy"
    bad = ecg_batch.copy()
    bad[2, 0, 5] = np.inf
    np.save(nan, bad)
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", nan, "--sampling-rate", "100", "--out", out,
           "--no-progress", match="NaN or infinite samples (first at record 2, lead I, sample 5)")
    # a rate that cannot be resampled by a small ratio; an unknown unit; missing input; bad --out
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--sampling-rate", "-5", "--out", out,
           "--no-progress", match="sampling rate")
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", arr, "--sampling-rate", "100", "--units",
           "mmHg", "--out", out, "--no-progress", match="unknown units")
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", tmp_path / "nothing.h5", "--out", out,
           match="does not exist")
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", tmp_path / "o.txt",
           match="expected a .h5, .hdf5 or .npy file")
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", tmp_path, "--out", out,
           match="not a PTB-XL folder")
    if not torch.cuda.is_available():
        _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", out, "--device",
               "cuda", match="no CUDA device is available here")
    lst = tmp_path / "list.txt"
    lst.write_text("records/none_lr\n")
    _fails(capsys, "predict", "--checkpoint", classifier_ckpt, "--input", lst, "--out", tmp_path / "p.csv",
           match="line 1: record records/none_lr not found")
    assert not out.exists() or out.stat().st_size > 0


def test_wfdb_record_at_other_rate_and_leads(capsys, tmp_path, encoder_ckpt, ecg_batch):
    """A non-PTB-XL WFDB record: 250 Hz, 8 leads in uV -> a clear error naming the missing leads; 12 work."""
    import wfdb

    x = resample_to(ecg_batch[0], 100, 250)
    names = ["V1", "V2", "V3", "V4", "V5", "V6", "I", "II"]
    wfdb.wrsamp("eight", fs=250, units=["uV"] * 8, sig_name=names, p_signal=(x[[6, 7, 8, 9, 10, 11, 0, 1]].T * 1000),
                fmt=["16"] * 8, adc_gain=[1.0] * 8, baseline=[0] * 8, write_dir=str(tmp_path))
    out = tmp_path / "w.h5"
    _fails(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", tmp_path / "eight", "--out", out,
           "--no-progress", match="lead(s) III, AVR, AVL, AVF missing")
    order = [9, 10, 11, 6, 7, 8, 0, 1, 2, 3, 4, 5]  # aVR.. first, lower-case names
    full = [LEADS[i].replace("AV", "aV") for i in order]
    wfdb.wrsamp("twelve", fs=250, units=["uV"] * 12, sig_name=full, p_signal=x[order].T * 1000,
                fmt=["16"] * 12, adc_gain=[1.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    rc, _, err = run(capsys, "embed", "--checkpoint", encoder_ckpt, "--input", tmp_path / "twelve.hea", "--out",
                     out, "--no-progress", "--device", "cpu")
    assert rc == 0, err
    m = load_encoder(encoder_ckpt)
    ref = m.embed(m.preprocess(x, 250)).numpy()
    np.testing.assert_allclose(read_h5(out)[0], ref, atol=2e-3)  # the uV quantisation of the file


def resample_to(x, src, dst):
    from scipy.signal import resample_poly

    return resample_poly(x.astype(np.float64), dst // 50, src // 50, axis=-1)
