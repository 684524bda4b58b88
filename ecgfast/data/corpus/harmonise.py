"""One format for every corpus: the standard 12 leads, one rate, windows of T samples, int16 at a fixed gain.

* Leads are matched by name (case-insensitive; DI/DII/DIII accepted) to I, II,
  III, aVR, aVL, aVF, V1..V6. A record lacking any of them is refused (a
  ``DataError``; skipped and counted under ``--skip-bad``): no masked leads.
* Resampling to the target rate is ``scipy.signal.resample_poly`` (polyphase,
  anti-aliasing FIR) with up/down from the reduced rate ratio, ends padded by
  the signal's trend (``padtype='line'``) so offsets do not ring at the edges.
* A record is cut into consecutive non-overlapping windows of T samples, each
  keeping the record's id and its start sample. A remainder (or a record
  shorter than T) of at least ``min_fraction * T`` samples becomes one more
  window zero-padded at the end, its ``valid`` length stored (the mask is
  ``arange(T) < valid``); a shorter one is dropped and counted.
* Samples are stored as int16 at ``gain`` per mV (1000, as PTB-XL): +-32.767 mV;
  samples beyond are clipped, and the number clipped is counted and reported.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import firwin, resample_poly

from ecgfast.base.errors import DataError
from ecgfast.data.leads import lead_order
from ecgfast.data.sources.readers import SourceRecord

GAIN = 1000.0


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """(leads, n) at ``fs`` -> (leads, round(n * target / fs)) at ``target`` (polyphase, anti-aliased)."""
    if float(fs) == float(target):
        return x
    r = Fraction(float(target) / float(fs)).limit_denominator(1000)
    if r.numerator == 0:
        raise DataError(f"cannot resample {fs} Hz to {target} Hz")
    # padtype 'line': the signal is extended by its end trend, not zeros, so an offset or baseline
    # drift does not ring at the record's ends
    return resample_poly(x, r.numerator, r.denominator, axis=-1, padtype="line",
                         window=_fir(r.numerator, r.denominator))


@lru_cache(maxsize=64)
def _fir(up: int, down: int) -> np.ndarray:
    """resample_poly's own default filter (Kaiser, beta 5), designed once per ratio."""
    half_len = 10 * max(up, down)
    h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    h.setflags(write=False)
    return h


def harmonise(rec: SourceRecord, sampling_rate: float, window: int, gain: float = GAIN,
              min_fraction: float = 0.5):
    """``rec`` as (mv (12, n) float at the target rate, windows int16 (k, 12, window), valid (k,), start (k,),
    clipped)."""
    where = f"{rec.source} record {rec.record_id}"
    x = rec.signal[lead_order(rec.leads, where)].astype(np.float64)
    x = resample(x, rec.sampling_rate, sampling_rate)
    n = x.shape[1]
    starts = list(range(0, n - window + 1, window))
    rest = n - (starts[-1] + window if starts else 0)
    if rest and rest >= max(1, int(np.ceil(min_fraction * window))):
        starts.append(n - rest)
    k = len(starts)
    out = np.zeros((k, 12, window), dtype=np.int16)
    valid = np.empty(k, dtype=np.int32)
    clipped = 0
    for j, s in enumerate(starts):
        seg = np.round(x[:, s:s + window] * gain)
        over = np.abs(seg) > 32767
        if over.any():
            clipped += int(over.sum())
            seg = np.clip(seg, -32767, 32767)
        out[j, :, :seg.shape[1]] = seg
        valid[j] = seg.shape[1]
    return x, out, valid, np.asarray(starts, dtype=np.int64), clipped
