"""Trust at the output boundary: full, read-only and forbidden disks in every writer.

Failures are injected as ``OSError`` (ENOSPC, EROFS, EACCES: any machine) and, where the
machine lets the tests mount one, produced for real on a 1 MiB tmpfs (full) and a read-only
tmpfs. Root ignores permission bits, so the chmod test runs only as another user.
"""
from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import make_checkpoint

from ecgfast.base import fs as _fs
from ecgfast.base.errors import OutputError
from ecgfast.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
REASONS = {errno.ENOSPC: r"the disk is full \(free some space or choose another --out\)",
           errno.EROFS: r"the file system is read-only \(choose a writable location\)",
           errno.EACCES: r"permission denied \(choose a location you can write to\)"}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _fail_with(code: int):
    def fail(*a, **k):
        raise OSError(code, os.strerror(code))
    return fail


def _one_line_error(err: str, path: Path, reason: str) -> None:
    import re

    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) >= 1, err
    assert re.search(rf"error: cannot write {re.escape(str(path))}: {reason}", lines[-1]), err


# ---------------------------------------------------------------------------------- tmpfs mounts
def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def _tmpfs(tmp_path: Path, name: str, options: str):
    """A tmpfs mounted under ``tmp_path`` for the test, unmounted after; skipped where mounting is not permitted."""
    folder = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}"
    if not _mount(folder, options):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    yield folder
    _umount(folder)


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs (a disk that fills up for real)."""
    yield from _tmpfs(tmp_path, "full", "size=1m")


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only tmpfs (EROFS for root too)."""
    yield from _tmpfs(tmp_path, "ro", "ro,size=1m")


# ---------------------------------------------------------------------------------- the one home
@pytest.mark.parametrize("code", sorted(REASONS))
def test_atomic_write_reports_the_reason_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, code):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(_fs.os, "fsync", _fail_with(code))  # after the data went to the temp file
    with pytest.raises(OutputError, match=rf"^cannot write {target}: {REASONS[code]}$") as info:
        _fs.atomic_write(target, lambda f: f.write(b"new" * 1000))
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temp_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "new.bin"
    monkeypatch.setattr(_fs.os, "replace", _fail_with(errno.EROFS))
    with pytest.raises(OutputError, match="the file system is read-only"):
        _fs.atomic_write(target, lambda f: f.write(b"x"))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_other_exceptions_of_the_writer_pass_through(tmp_path):
    def broken(f):
        f.write(b"half")
        raise ValueError("not a disk problem")
    with pytest.raises(ValueError, match="not a disk problem"):
        _fs.atomic_write(tmp_path / "x.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_hdf5_errno_less_error_on_a_nearly_full_disk_says_full(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_fs.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10, 10))
    e = _fs.explain_os_error(OSError("Can't write data (file write failed)"), tmp_path / "e.h5")
    assert e.errno == errno.ENOSPC and "the disk is full" in str(e)
    monkeypatch.setattr(_fs.shutil, "disk_usage", lambda p: usage(10**9, 0, 10**9))
    e = _fs.explain_os_error(OSError("Can't write data (file write failed)"), tmp_path / "e.h5")
    assert e.errno is None and "file write failed" in str(e)  # not guessed when there is room


@pytest.mark.parametrize("code", sorted(REASONS))
def test_check_writable_refuses_before_the_work(tmp_path, monkeypatch, code):
    monkeypatch.setattr(_fs.os, "open", _fail_with(code))
    with pytest.raises(OutputError, match=rf"^cannot write {tmp_path / 'o.csv'}: {REASONS[code]}$"):
        _fs.check_writable(tmp_path / "o.csv")
    assert _leftovers(tmp_path) == []


def test_check_writable_cases(tmp_path, monkeypatch):
    assert _fs.check_writable(tmp_path / "new" / "deeper" / "o.csv") == tmp_path / "new" / "deeper" / "o.csv"
    assert _leftovers(tmp_path) == [] and (tmp_path / "new" / "deeper").is_dir()
    with pytest.raises(OutputError, match="it is a folder"):
        _fs.check_writable(tmp_path / "new")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match=r"cannot create the folder of .*afile/o.csv: a part of the path is a file"):
        _fs.check_writable(tmp_path / "afile" / "o.csv")
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_fs.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(OutputError, match=r"the disk is full .*needs about 5.0 MB, 1.0 MB are free"):
        _fs.check_writable(tmp_path / "o.npy", need_bytes=5 * 10**6)


def test_output_error_survives_a_process_pool():
    e = OutputError("cannot write x: the disk is full", errno.ENOSPC, "x")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is OutputError and str(back) == str(e) and back.errno == errno.ENOSPC


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (the injected EACCES tests cover it)")
def test_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=REASONS[errno.EACCES]):
            _fs.check_writable(locked / "o.csv")
        with pytest.raises(OutputError, match=REASONS[errno.EACCES]):
            _fs.atomic_write(locked / "o.csv", lambda f: f.write(b"x"))
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------------- real disks
def test_a_disk_that_fills_up_for_real(full_disk):
    target = full_disk / "big.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match=rf"cannot write {target}: {REASONS[errno.ENOSPC]}"):
        _fs.atomic_write(target, lambda f: f.write(b"\1" * (2 << 20)))
    assert target.read_bytes() == b"old" and sorted(p.name for p in full_disk.iterdir()) == ["big.bin"]
    filler = full_disk / "filler"
    with pytest.raises(OSError):
        filler.write_bytes(b"\1" * (2 << 20))  # leaves the disk full
    with pytest.raises(OutputError, match=REASONS[errno.ENOSPC]):
        _fs.check_writable(full_disk / "later.csv")
    assert sorted(p.name for p in full_disk.iterdir()) == ["big.bin", "filler"]


def test_a_read_only_disk_for_real(read_only_disk):
    for call in (lambda: _fs.check_writable(read_only_disk / "o.csv"),
                 lambda: _fs.atomic_write(read_only_disk / "o.csv", lambda f: f.write(b"x")),
                 lambda: _fs.prepare_output_folder(read_only_disk / "corpus")):
        with pytest.raises(OutputError, match=REASONS[errno.EROFS]):
            call()
    assert list(read_only_disk.iterdir()) == []


def test_hdf5_embeddings_on_a_full_disk_fail_cleanly_in_a_fresh_process(full_disk, encoder_ckpt, small_cache):
    """The HDF5 writer on a disk that fills up mid-file: a one-line error, no crash, nothing left."""
    out = full_disk / "emb.h5"
    (full_disk / "filler").write_bytes(b"\1" * ((1 << 20) - (16 << 10)))  # 16 KiB free: the probe fits, 24 KiB don't
    r = subprocess.run([sys.executable, "-m", "ecgfast.cli", "embed", "--checkpoint", str(encoder_ckpt), "--input",
                        str(small_cache), "--out", str(out), "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])  # not -11 (a segfault)
    _one_line_error(r.stderr, out, REASONS[errno.ENOSPC])
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_every_command_refuses_a_read_only_out_before_the_work(read_only_disk, capsys, encoder_ckpt,
                                                              classifier_ckpt, small_cache, small_ptbxl):
    ro = read_only_disk
    common = ["--device", "cpu", "--no-progress"]
    cases = {
        "embed": ["embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", ro / "e.h5", *common],
        "predict": ["predict", "--checkpoint", classifier_ckpt, "--input", small_cache, "--out", ro / "p.csv",
                    *common],
        "export": ["export", "--checkpoint", encoder_ckpt, "--format", "torchscript", "--out", ro / "m.pt"],
        "evaluate": ["evaluate", "--checkpoint", classifier_ckpt, "--cache", small_cache, "--data-root",
                     small_ptbxl, "--bootstrap", "5", "--json", ro / "r.json", "--device", "cpu"],
        "pretrain": ["pretrain-simclr", "--cache", small_cache, "--data-root", small_ptbxl, "--out", ro / "s.pt",
                     "--epochs", "1", "--batch-size", "8", *common],
        "finetune": ["finetune", "--ssl-checkpoint", encoder_ckpt, "--cache", small_cache, "--data-root",
                     small_ptbxl, "--out", ro / "f.pt", "--epochs", "1", *common],
        "corpus": ["corpus", "build", "--layout", "ptbxl", "--source", small_ptbxl, "--out", ro / "corpus",
                   "--quiet"],
    }
    target = {"embed": ro / "e.h5", "predict": ro / "p.csv", "export": ro / "m.pt", "evaluate": ro / "r.json",
              "pretrain": ro / "s.pt", "finetune": ro / "f.pt"}
    for name, argv in cases.items():
        rc = cli(list(map(str, argv)))
        out, err = capsys.readouterr()
        assert rc == 1, (name, err)
        if name == "corpus":
            assert err.strip().splitlines()[-1].endswith(
                f"error: cannot create the folder {ro / 'corpus'}: the file system is read-only "
                "(choose a writable location)") and "Traceback" not in err, err
        else:
            _one_line_error(err, target[name], REASONS[errno.EROFS])
    assert list(ro.iterdir()) == []


# ---------------------------------------------------------------------------------- every writer, injected
@pytest.mark.parametrize("code", sorted(REASONS))
def test_each_writer_fails_cleanly_when_the_disk_fails_during_the_write(tmp_path, monkeypatch, capsys, code,
                                                                        encoder_ckpt, classifier_ckpt, small_cache):
    """The check before the work passes; the rename at the end fails (a disk remounted read-only, filled
    or locked mid-run): one line naming the file and the reason, no temp, no partial file."""
    monkeypatch.setattr(_fs.os, "replace", _fail_with(code))
    common = ["--device", "cpu", "--no-progress"]
    cases = [
        (["embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", tmp_path / "e.h5", *common],
         tmp_path / "e.h5"),
        (["embed", "--checkpoint", encoder_ckpt, "--input", small_cache, "--out", tmp_path / "e.npy", *common],
         tmp_path / "e.npy"),
        (["predict", "--checkpoint", classifier_ckpt, "--input", small_cache, "--out", tmp_path / "p.csv",
          *common], tmp_path / "p.csv"),
        (["export", "--checkpoint", encoder_ckpt, "--format", "torchscript", "--out", tmp_path / "m.pt"],
         tmp_path / "m.pt"),
    ]
    for argv, target in cases:
        rc = cli(list(map(str, argv)))
        _, err = capsys.readouterr()
        assert rc == 1, err
        _one_line_error(err, target, REASONS[code])
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", sorted(REASONS))
def test_checkpoints_cards_experiment_results_and_corpus_shards(tmp_path, monkeypatch, code):
    from ecgfast.base.checkpoint import atomic_save, load_checkpoint
    from ecgfast.data.corpus import build_corpus_from_arrays
    from ecgfast.report.card import write_model_card
    from ecgfast.study.experiment import write_outputs

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "src" / "enc.pt", "encoder"))
    monkeypatch.setattr(_fs.os, "fsync", _fail_with(code))
    out = tmp_path / "out"
    for call, target in [
        (lambda: atomic_save({"a": torch.ones(3)}, out / "c.pt"), out / "c.pt"),
        (lambda: write_model_card(out / "c.pt", ckpt, wall_time_s=1.0, device="cpu"), out / "c.card.json"),
        (lambda: build_corpus_from_arrays(out / "corpus", [np.zeros((2, 12, 100), np.float32)], sampling_rate=100,
                                          signal_length=100), out / "corpus"),
    ]:
        with pytest.raises(OutputError, match=REASONS[code]) as info:
            call()
        assert str(target) in str(info.value)
    rows = [{"arm": "supervised", "seed": 1, "fraction": 1.0, **{m: 0.5 for m in ("macro_auroc", "macro_f1",
             "micro_sensitivity", "micro_specificity")}, "ci95": {m: [0.4, 0.6] for m in (
             "macro_auroc", "macro_f1", "micro_sensitivity", "micro_specificity")}}]
    with pytest.raises(OutputError, match=rf"cannot write {out / 'results.csv'}: {REASONS[code]}"):
        write_outputs(rows, ["supervised"], out, {})
    assert [p for p in out.rglob("*") if p.is_file()] == []


def test_evaluate_checks_its_json_before_evaluating(tmp_path, monkeypatch, capsys, classifier_ckpt, small_cache,
                                                    small_ptbxl):
    import ecgfast.eval.evaluate as ev

    ran = []
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: ran.append(1) or {})
    (tmp_path / "afile").write_text("x")
    rc = cli(["evaluate", "--checkpoint", str(classifier_ckpt), "--cache", str(small_cache), "--data-root",
              str(small_ptbxl), "--json", str(tmp_path / "afile" / "r.json")])
    err = capsys.readouterr().err
    assert rc == 1 and ran == [] and "cannot create the folder of" in err and "Traceback" not in err
