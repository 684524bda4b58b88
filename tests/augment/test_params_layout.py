"""The parameter layout and the band-pass padding have one home (ecgfast/augment/params.py): the compiled
kernels report theirs (``ecgfast::augment_param_layout``, ``ecgfast::augment_bandpass_pad``), checked at
import, and the Numba kernel and the torch reference read params.py's."""
import re

import pytest
import torch
from ecg_signals import ecg_like

import ecgfast.base.extension as ext
from ecgfast.augment import _numba, params
from ecgfast.augment.params import BANDPASS_PADLEN, COL, COLUMNS, N_PARAMS, layout_mismatch

needs_ext = pytest.mark.skipif(not ext.EXTENSION_AVAILABLE, reason="compiled extension not built")


@needs_ext
def test_the_compiled_kernels_have_params_py_layout_and_padding():
    assert tuple(torch.ops.ecgfast.augment_param_layout()) == COLUMNS
    assert torch.ops.ecgfast.augment_bandpass_pad() == BANDPASS_PADLEN
    assert layout_mismatch(torch.ops.ecgfast.augment_param_layout(), torch.ops.ecgfast.augment_bandpass_pad()) is None


@needs_ext
def test_the_compiled_kernels_use_the_padding_they_report():
    """The op refuses exactly the signals too short for its padding: 2 * pad samples, and takes 2 * pad + 1."""
    pad = torch.ops.ecgfast.augment_bandpass_pad()
    for length, ok in ((2 * pad, False), (2 * pad + 1, True)):
        x = ecg_like(2, length=length, seed=1)
        p = torch.zeros(2, 2, N_PARAMS, dtype=torch.float64)
        p[..., COL["bp_on"]] = 1.0  # coefficients of zero: the filter runs, on the padded signal
        if ok:
            assert torch.ops.ecgfast.augment_views(x, p, 100.0).shape == (2, 2, 12, length)
        else:
            with pytest.raises(RuntimeError, match=f"too short for the band-pass filter \\(needs > {2 * pad}\\)"):
                torch.ops.ecgfast.augment_views(x, p, 100.0)


def test_numba_kernel_reads_params_py():
    assert _numba.PAD == BANDPASS_PADLEN
    assert [_numba.HP_B0, _numba.LP_B0, _numba.MIX_PARTNER, _numba.RRC_FRAC] == \
        [COL["hp_b0"], COL["lp_b0"], COL["mix_partner"], COL["rrc_frac"]]


@pytest.mark.parametrize("compiled, pad, message", [
    (COLUMNS[:3] + (COLUMNS[4], COLUMNS[3]) + COLUMNS[5:], BANDPASS_PADLEN,
     r"parameter column 3: the compiled kernels have column 'hp_b1' .*COLUMNS has 'hp_b0'"),
    (COLUMNS[:-1], BANDPASS_PADLEN,
     r"parameter column 34: the compiled kernels have no column .*COLUMNS has 'rrc_frac'"),
    (COLUMNS + ("extra",), BANDPASS_PADLEN,
     r"parameter column 35: the compiled kernels have column 'extra' .*no column"),
    (COLUMNS, 12, r"band-pass padding: the compiled kernels pad by 12 samples .*BANDPASS_PADLEN is 15"),
])
def test_a_drifted_layout_is_named(compiled, pad, message):
    problem = layout_mismatch(compiled, pad)
    assert problem is not None and re.search(message, problem), problem


@needs_ext
def test_a_drifted_build_is_refused_at_import(monkeypatch):
    swapped = list(COLUMNS)
    swapped[13], swapped[14] = swapped[14], swapped[13]

    class Ops:
        augment_param_layout = staticmethod(lambda: swapped)
        augment_bandpass_pad = staticmethod(lambda: BANDPASS_PADLEN)

    monkeypatch.setattr(torch.ops, "ecgfast", Ops())
    with pytest.raises(ImportError, match=r"out of step.*column 13: the compiled kernels have column 'mix_lambda'"
                                          r".*COLUMNS has 'mix_on'.*rebuild"):
        params.check_compiled_layout()

    class OldBuild:  # built before the layout was reported
        pass

    monkeypatch.setattr(torch.ops, "ecgfast", OldBuild())
    with pytest.raises(ImportError, match="does not report its augmentation parameter layout.*rebuild"):
        params.check_compiled_layout()
