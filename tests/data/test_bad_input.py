"""Each kind of bad input fails with a message naming the file/record, and leaves no cache."""
import shutil

import pandas as pd
import pytest

from ecgfast.cli.cache import main as cache_main
from ecgfast.data import PTBXLError, build_cache, load_metadata


@pytest.fixture
def root(synthetic_root, tmp_path):
    """A private 100 Hz copy of the synthetic PTB-XL, cut to 30 records."""
    dst = tmp_path / "PTB-XL"
    shutil.copytree(synthetic_root, dst, ignore=shutil.ignore_patterns("records500"))
    db = pd.read_csv(dst / "ptbxl_database.csv", index_col=0).iloc[:30]
    db.to_csv(dst / "ptbxl_database.csv")
    return dst


def _record(root, ecg_id=5):
    return root / f"records100/00000/{ecg_id:05d}_lr"


def _fails(root, tmp_path, match, **kw):
    out = tmp_path / "out.h5"
    with pytest.raises(PTBXLError, match=match):
        build_cache(root, out, 100, progress=False, **kw)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.h5*"))  # no temp file left behind either


def test_missing_csv(root, tmp_path):
    (root / "scp_statements.csv").unlink()
    _fails(root, tmp_path, r"scp_statements\.csv: file not found")


def test_missing_column(root, tmp_path):
    db = pd.read_csv(root / "ptbxl_database.csv", index_col=0).drop(columns=["strat_fold"])
    db.to_csv(root / "ptbxl_database.csv")
    _fails(root, tmp_path, r"ptbxl_database\.csv: missing column\(s\) strat_fold")


def test_scp_codes_not_a_dict(root, tmp_path):
    db = pd.read_csv(root / "ptbxl_database.csv", index_col=0)
    db.loc[7, "scp_codes"] = "NORM, SR"
    db.to_csv(root / "ptbxl_database.csv")
    _fails(root, tmp_path, r"ecg_id=7: scp_codes 'NORM, SR' is not a dict")


def test_header_disagrees_with_dat(root, tmp_path):
    dat = _record(root).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes() * 2)
    _fails(root, tmp_path, r"00005_lr.*00005_lr\.dat holds 48000 bytes but its header implies 24000")


def test_truncated_dat(root, tmp_path):
    dat = _record(root).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    _fails(root, tmp_path, r"00005_lr.*truncated \(1000 bytes, header implies 24000\)")


def test_wrong_lead_count(root, tmp_path):
    import wfdb

    rec = wfdb.rdrecord(str(_record(root)))
    wfdb.wrsamp(rec.record_name, 100, rec.units[:11], rec.sig_name[:11], p_signal=rec.p_signal[:, :11],
                fmt=["16"] * 11, adc_gain=[1000.0] * 11, baseline=[0] * 11, write_dir=str(_record(root).parent))
    _fails(root, tmp_path, r"00005_lr: has 11 leads, expected 12")


def test_wrong_length(root, tmp_path):
    import wfdb

    rec = wfdb.rdrecord(str(_record(root)))
    wfdb.wrsamp(rec.record_name, 100, rec.units, rec.sig_name, p_signal=rec.p_signal[:900],
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(_record(root).parent))
    _fails(root, tmp_path, r"00005_lr: has 900 samples per lead, expected 1000")


def test_unsupported_sampling_rate(root, tmp_path):
    with pytest.raises(PTBXLError, match="unsupported sampling rate 250 Hz"):
        build_cache(root, tmp_path / "out.h5", 250, progress=False)


def test_missing_records_need_skip_missing(root, tmp_path, capsys):
    for ext in (".hea", ".dat"):
        _record(root, 9).with_suffix(ext).unlink()
    _fails(root, tmp_path, r"1 of 30 records at 100 Hz are missing \(first: records100/00000/00009_lr\); "
                           r"pass --skip-missing")
    out = build_cache(root, tmp_path / "out.h5", 100, skip_missing=True, progress=False)
    import h5py

    with h5py.File(out) as h5:
        assert len(h5["ecg_id"]) == 29 and 9 not in h5["ecg_id"][:]
    assert "skipping 1 missing record" in capsys.readouterr().err


def test_cli_reports_errors_and_exits_nonzero(root, tmp_path, capsys):
    _record(root, 3).with_suffix(".dat").write_bytes(b"\0" * 10)
    code = cache_main(["--data-root", str(root), "--out", str(tmp_path / "x.h5"), "--workers", "2"])
    assert code == 1
    assert "00003_lr.dat is truncated" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_not_a_folder(tmp_path):
    with pytest.raises(PTBXLError, match="PTB-XL folder not found"):
        load_metadata(tmp_path / "nope")


def test_not_a_cache(tmp_path):
    from ecgfast.data import open_cache

    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(PTBXLError, match="not an HDF5 file"):
        open_cache(bad)
