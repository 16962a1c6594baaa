"""Cross-check of the detector's onsets against an independent method (slope sum, Zong 2003).

``beats_wabp.slope_sum_onsets`` finds onsets offline where the SSF starts to rise; the detector
puts them at the tangent foot of the upstroke, streaming. On the clean stretches of the real
records every reference pulse must be a good beat and every good beat a reference pulse (the
same heartbeat, within 0.2 s) or, where the record has QRS annotations, the pulse of a QRS (a
weak pulse under the slope sum's threshold, 0.05-0.4 s after its QRS). Where the two onsets
are more than 50 ms apart the reference slid back onto a late-diastolic wave that runs into the
upstroke (docs/beats.md): there the detector's onset must be the one at the foot of the steep
rise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from beats_wabp import slope_sum_onsets
from record_fixtures import records_dir

from drivers.pressure.beats import BeatDetector
from drivers.pressure.replay import RecordChannel, load_channel
from drivers.sim import beat_battery as battery

ABP = records_dir()
CLEAN = {
    "041s": ("wfdb-python_mimicdb_041s/041s", (0.0, 16.0)),
    "03700181": ("wfdb-python_mimicdb_03700181/03700181", (3.0, 598.0)),
    "3975656_0015": ("wfdb-python_mimic3wdb_s00001/3975656_0015", (15.0, 245.0)),
    "3975656_0013": ("wfdb-python_mimic3wdb_s00001/3975656_0013", (30.0, 120.0)),
}
SAME_BEAT_S = 0.2
QRS = {"03700181": "sqrs"}
# A pulse's foot follows its QRS by the pre-ejection period plus the transit: 0.05-0.4 s.
PULSE_AFTER_QRS_S = (0.05, 0.4)


def _nearest(ref: np.ndarray, found: np.ndarray) -> np.ndarray:
    return np.array([float(np.min(np.abs(found - t))) for t in ref])


def _steepest_rise(ch: RecordChannel, t_s: float) -> float:
    """Largest rise (mmHg per sample) within 60 ms after ``t_s``."""
    i = round(t_s * ch.fs_hz)
    return float(np.diff(ch.samples[i : i + max(2, round(0.06 * ch.fs_hz)) + 1]).max())


def _follows_a_qrs(onsets_s: np.ndarray, record: Path, ext: str) -> np.ndarray:
    import wfdb

    ann = wfdb.rdann(str(record), ext)
    qrs = np.asarray(ann.sample, dtype=float) / float(ann.fs)
    lo, hi = PULSE_AFTER_QRS_S
    return np.array([bool(np.any((t - qrs >= lo) & (t - qrs <= hi))) for t in onsets_s])


def test_reference_finds_the_synthetic_truth() -> None:
    # The reference itself is checked on ground truth before it is trusted on real records.
    cell = battery.Cell(124.9, 105.0, 70.0, "sharp", 0.0, 91.0, seed=1)
    trace = battery.render(cell)
    ref = slope_sum_onsets(trace.samples, cell.fs_hz)
    truth = np.array([b.t_s for b in trace.truth if 10.0 < b.t_s < 38.0])
    assert np.all(_nearest(truth, ref) < 0.03)


@pytest.mark.skipif(not ABP.is_dir(), reason=f"REAL ABP RECORDS MISSING: {ABP}")
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_stretch_beats_agree_with_the_slope_sum_reference(name: str) -> None:
    path, (lo, hi) = CLEAN[name]
    ch = load_channel(ABP / path)
    beats = BeatDetector(ch.fs_hz).feed(0.0, ch.samples)
    ref = slope_sum_onsets(ch.samples, ch.fs_hz)
    ref = ref[(ref > lo + 2.0) & (ref < hi - 2.0)]
    good = np.array([b.t_s for b in beats if b.is_good])
    onsets = np.array([b.t_s for b in beats if b.hr_bpm > 0])
    in_span = good[(good > lo + 2.0) & (good < hi - 2.0)]
    se = np.mean(_nearest(ref, good) <= SAME_BEAT_S)
    true = _nearest(in_span, ref) <= SAME_BEAT_S
    if name in QRS:
        true |= _follows_a_qrs(in_span, ABP / path, QRS[name])
    assert se >= 0.995, ref[_nearest(ref, good) > SAME_BEAT_S]
    assert np.mean(true) >= 0.995, in_span[~true]
    gap = _nearest(ref, onsets)
    assert np.mean(gap <= 0.05) >= 0.95
    for t_ref in ref[(gap > 0.05) & (gap <= SAME_BEAT_S)]:
        t_main = onsets[int(np.argmin(np.abs(onsets - t_ref)))]
        assert _steepest_rise(ch, t_main) > _steepest_rise(ch, t_ref), (t_main, t_ref)
