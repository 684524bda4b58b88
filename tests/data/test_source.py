"""The one ECG source protocol (``ecgfast.data.source.ECGSource``): a PTB-XL folder, its cache, a corpus
built from it, WFDB record paths and a list of them, and an array all give the same records."""
from __future__ import annotations

import numpy as np
import pytest

from ecgfast.base.errors import ConfigError, DataError
from ecgfast.data.source import Chunk, ECGSource, open_input


def _records(source, size=7) -> dict[str, np.ndarray]:
    assert isinstance(source, ECGSource)
    out = {}
    for chunk in source.chunks(size):
        assert isinstance(chunk, Chunk) and len(chunk.ids) == len(chunk.signals) <= size
        assert chunk.units == "mV"
        for rid, x in zip(chunk.ids, np.asarray(chunk.signals)):
            out[rid] = (x, chunk.sampling_rate, chunk.leads)
    assert len(out) == len(source)
    return out


@pytest.fixture(scope="module")
def built(mini_root_template, tmp_path_factory):
    from ecgfast.data import build_cache
    from ecgfast.data.corpus import build_corpus

    tmp = tmp_path_factory.mktemp("sources")
    cache = build_cache(mini_root_template, tmp / "c.h5", 100, progress=False)
    build_corpus("ptbxl", mini_root_template, tmp / "corpus", sampling_rate=100, seconds=10, exclude_folds=(),
                 source_options={"sampling_rate": 100}, progress=False)
    return tmp, cache


def test_every_input_is_one_source_of_the_same_records(mini_root_template, built, tmp_path):
    tmp, cache = built
    with open_input(mini_root_template, model_rate=100) as folder:
        ref = _records(folder)
        assert folder.description.startswith("PTB-XL folder")
    assert len(ref) == 20 and {r[1] for r in ref.values()} == {100}
    with open_input(cache) as c:
        got = _records(c)
    assert got.keys() == ref.keys()
    for rid, (x, fs, leads) in got.items():
        np.testing.assert_allclose(x, ref[rid][0], atol=1e-6)
        assert fs == 100 and [lead.upper() for lead in leads] == [lead.upper() for lead in ref[rid][2]]
    with open_input(tmp / "corpus" / "manifest.json") as corpus:
        got = _records(corpus)
    assert set(got) <= set(ref) and len(got) > 0  # PTB-XL records are kept under their ecg_id
    for rid, (x, _, _) in got.items():
        np.testing.assert_allclose(x, ref[rid][0], atol=0.5 / 1000 + 1e-6)  # re-quantised at 1000/mV
    # WFDB record paths, as a list file and as arguments
    from ecgfast.data.metadata import load_metadata

    files = list(load_metadata(mini_root_template).filenames(100))[:3]
    paths = [str(mini_root_template / f) for f in files]
    (tmp_path / "list.txt").write_text("# three\n" + "\n".join(paths) + "\n")
    for inputs in ([tmp_path / "list.txt"], paths):
        with open_input(inputs) as records:
            got = _records(records)
        assert list(got) == paths
        for k, p in enumerate(paths):
            np.testing.assert_array_equal(got[p][0], ref[list(ref)[k]][0])
    # an array: ids are the row numbers, leads and units as given
    arr = np.stack([ref[r][0] for r in list(ref)[:4]]) * 1000
    np.save(tmp_path / "a.npy", arr)
    with open_input(tmp_path / "a.npy", sampling_rate=100, units="uV") as a:
        chunks = list(a.chunks(3))
    assert [c.ids for c in chunks] == [["0", "1", "2"], ["3"]] and chunks[0].units == "uV"
    np.testing.assert_array_equal(np.concatenate([c.signals for c in chunks]), arr)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no input given"):
        open_input([])
    with pytest.raises(DataError, match=r"a folder without ptbxl_database\.csv is not a PTB-XL folder"):
        open_input(tmp_path)
    np.save(tmp_path / "a.npy", np.zeros((2, 12, 10)))
    with pytest.raises(ConfigError, match=r"a\.npy: a \.npy array carries no sampling rate"):
        open_input(tmp_path / "a.npy")
