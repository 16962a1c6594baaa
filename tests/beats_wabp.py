"""A second, independent pulse-onset detector: the slope-sum method of Zong et al. (2003).

Written from the paper's description (W. Zong, T. Heldt, G.B. Moody, R.G. Mark, "An open-source
algorithm to detect onset of arterial blood pressure pulses", Computers in Cardiology 2003;
30:259-262), not from ``wabp.c`` nor from :mod:`drivers.pressure.beats`, and offline (whole
record at once) so that it shares no streaming logic with the detector it checks:

1. low-pass the pressure (two cascaded moving averages of 40 ms, the paper's 16 Hz filter);
2. slope sum function: the sum of the positive first differences over the last 128 ms;
3. decision: a threshold at a fraction of a base value that starts at three times the mean SSF
   over the first seconds and follows the SSF maximum of each accepted pulse; a crossing opens
   a 150 ms search for that maximum; a pulse must rise by at least ``min_rise_mmhg``; after a
   pulse the detector is blind for an eye-closing period of 300 ms;
4. onset: going back from the crossing, the last point where the SSF was still near zero (under
   ``onset_fraction`` of the pulse's SSF maximum), i.e. where the upstroke begins.

Its onsets differ from the tangent-based ones of the main detector by design (the SSF starts
rising at the very foot), so comparisons allow a tolerance.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def slope_sum_onsets(
    x_mmhg: FloatArray,
    fs_hz: float,
    *,
    learn_s: float = 8.0,
    threshold_fraction: float = 0.5,
    eye_s: float = 0.3,
    min_rise_mmhg: float = 3.0,
    onset_fraction: float = 0.05,
) -> FloatArray:
    """Pulse onsets (s from the first sample) of the pressure ``x_mmhg`` sampled at ``fs_hz``."""
    x = np.asarray(x_mmhg, dtype=np.float64)
    valid = ~np.isnan(x)
    if not valid.any():
        return np.empty(0)
    # Missing samples hold the previous value (the first valid one before any).
    idx = np.where(valid, np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    x = np.where(valid, x, x[idx])
    x[: int(np.argmax(valid))] = x[int(np.argmax(valid))]

    n_avg = max(1, round(0.04 * fs_hz))
    box = np.ones(n_avg) / n_avg
    lp = np.convolve(np.convolve(x, box, mode="full"), box, mode="full")[: x.size]
    delay = n_avg - 1  # two causal averages of n samples lag by n - 1 samples
    rises = np.maximum(np.diff(lp, prepend=lp[0]), 0.0)
    w = max(1, round(0.128 * fs_hz))
    ssf = np.convolve(rises, np.ones(w), mode="full")[: x.size]

    learn = ssf[: max(1, min(ssf.size, round(learn_s * fs_hz)))]
    base = 3.0 * float(learn.mean())
    search = round(0.15 * fs_hz)
    eye = round(eye_s * fs_hz)
    back = round(0.3 * fs_hz)
    onsets: list[float] = []
    i = 0
    while i < ssf.size:
        above = np.flatnonzero(ssf[i:] > threshold_fraction * base)
        if not above.size:
            break
        c = i + int(above[0])
        window = ssf[c : c + search]
        peak = float(window.max())
        if peak - float(window.min()) < min_rise_mmhg:
            i = c + 1
            continue
        base += (peak - base) / 4.0
        lo = max(0, c - back)
        quiet = np.flatnonzero(ssf[lo : c + 1] < onset_fraction * peak)
        foot = (lo + int(quiet[-1]) if quiet.size else lo) - delay
        if foot > 0 and (not onsets or foot / fs_hz > onsets[-1]):
            onsets.append(foot / fs_hz)
        i = c + eye
    return np.array(onsets)
