"""Streaming arterial beat detection with a quality verdict per beat.

Onsets follow the slope-sum-function detector of Zong et al. (2003, PhysioNet ``wabp``):
low-pass the pressure, sum its positive slopes over ~128 ms, cross an adaptive threshold
(a third of the running SSF peak), and place the onset at the foot of the upstroke (intersecting
tangents). A crossing weaker than the upstroke before it and sooner than the dicrotic notch can
follow is a dicrotic wave, not a beat. A beat runs from one onset to the next, so it is reported
one onset later: the only look-ahead is one beat plus ~150 ms of upstroke. The filter, the SSF
and the threshold search run on whole chunks with numpy; the threshold only changes at beats,
so feeding sample by sample gives the same beats.

Quality checks follow Sun et al. (2006): physiological ranges, pulse pressure, beat-to-beat
consistency, noise and slopes, plus signatures of the artefacts in ``docs/pressure.md``.
Every check that is not a physical fact is judged against the beat's own content (its pulse
pressure, its upstroke, its white noise, its diastolic run-off), so the verdict holds from 10
to 100 mmHg of pulse pressure and from 50 to 1000 Hz. An early (ectopic) beat, the beat it cuts
short and a compensatory pause are real beats, each with its own MAP: they are good, and the
early one is marked ``ectopic``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import median

import numpy as np
import numpy.typing as npt

from vasopilot.core.interfaces import PressureSource
from vasopilot.core.types import GOOD, Beat, BeatQuality

FloatArray = npt.NDArray[np.float64]

# The verdicts this detector gives, by their short names.
FLUSH = BeatQuality.FLUSH
ZEROING = BeatQuality.ZEROING
DAMPING = BeatQuality.DAMPING
DISCONNECTION = BeatQuality.DISCONNECTION
MOTION = BeatQuality.MOTION
SATURATION = BeatQuality.SATURATION
FLAT = BeatQuality.FLAT
CALIBRATION = BeatQuality.CALIBRATION
RANGE = BeatQuality.RANGE
INCONSISTENT = BeatQuality.INCONSISTENT
NOISE = BeatQuality.NOISE
MISSING = BeatQuality.MISSING

# Artefacts whose aftermath (ringing, a settling line) also spoils the next beats. A line
# that was flat (kinked shut, a stopcock turned) comes back at any phase of the pulse: the
# first beat after it starts on the flat line, its foot and DBP are the flat line's.
_LINGERING = frozenset({FLUSH, SATURATION, ZEROING, CALIBRATION, DISCONNECTION, MOTION, FLAT})
# Verdicts that say a stretch is no heartbeat at all (not merely one out of line with the
# level or the rhythm, as an early beat over a long pause may be).
_NO_HEARTBEAT = _LINGERING | {NOISE, RANGE}


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Thresholds of the quality verdict; pressures in mmHg, times in s.

    Only physical facts are absolute (0 mmHg is air, a flush is near 300 mmHg, physiological
    ranges); noise, slopes and beat-to-beat changes are judged against the beat's own pulse
    pressure and upstroke, so the same limits hold at any pulse pressure and sampling rate.
    """

    sbp_max_mmhg: float = 300.0
    # Sun et al. use DBP >= 20 and MAP >= 30; 03700181 is a real patient at MAP 29, and hiding
    # true severe hypotension from a vasopressor controller is the worse error.
    dbp_min_mmhg: float = 15.0
    map_min_mmhg: float = 20.0
    map_max_mmhg: float = 200.0
    hr_min_bpm: float = 20.0
    # Sun et al. stop at 200; sinus tachycardia reaches 200 and jitters over it.
    hr_max_bpm: float = 240.0
    # Below this a pulse cannot be told from a flat line with noise (Sun et al.: 20 mmHg, but
    # shocked patients run at 10-20 and a damped line is caught relative to its own past).
    pp_min_mmhg: float = 5.0
    flush_mmhg: float = 250.0
    near_zero_mmhg: float = 10.0
    zeroing_noise_sd_mmhg: float = 1.5
    plateau_s: float = 0.1
    flat_span_vs_noise: float = 8.0
    # A square wave spends its time at two levels; a pulse passes through its levels.
    square_level_fraction: float = 0.8
    # Steps outside the upstroke larger than this many times the upstroke's largest step (plus
    # the noise) are spikes or baseline jumps; so is a fall faster than the rise.
    jump_vs_upstroke: float = 1.5
    min_rise_s: float = 0.02
    fall_vs_upstroke: float = 1.1
    # White noise (robust SD of the sample-to-sample curvature) over the pulse pressure.
    noise_sd_fraction_of_pp: float = 0.2
    # Up-and-down travel of the smoothed beat beyond one rise and one fall, over the pulse
    # pressure: a dicrotic wave and ringing add under 0.7, bursts of noise far more.
    excess_travel: float = 1.2
    # The last 30 % of a beat is run-off; interference there is structured (many times the
    # white noise) and a visible share of the pulse pressure.
    runoff_share: float = 0.3
    runoff_vs_noise: float = 4.0
    runoff_fraction_of_pp: float = 0.06
    runoff_step_vs_neighbours: float = 4.0
    damping_pp_fraction: float = 0.5
    damping_map_shift_mmhg: float = 15.0
    # SBP and DBP moving together by this much of the pulse pressure in a regular beat (and at
    # least the absolute floor) is a baseline jump, not a heartbeat.
    jump_fraction_of_pp: float = 0.5
    jump_floor_mmhg: float = 20.0
    # A beat this much shorter than the rhythm is interrupted by an early beat, which is
    # ectopic; up to max_period_ratio longer is a compensatory pause or a dropped beat.
    premature_ratio: float = 0.8
    min_period_ratio: float = 0.45
    max_period_ratio: float = 2.6
    # An interval this much longer than the rhythm has lost a beat (a compensatory pause is
    # at most 1.45 x: twice the period minus the early beat's coupling of at least 0.55).
    search_back_ratio: float = 1.6
    # A kinked line can halve the trace; true MAP does not move by 30% within a minute.
    level_shift_fraction: float = 0.3
    # An early beat's MAP (or that of the beat it cuts short) strays up to ~25 %.
    irregular_shift_fraction: float = 0.4
    level_window_s: float = 60.0
    # Breathing moves a steady beat's next foot by a few times the median of its last moves;
    # more, and the beat waits for the next verdict (a jump of the line shows there).
    foot_step_vs_usual: float = 3.0
    linger_s: float = 2.0


@dataclass(frozen=True, slots=True)
class _Reference:
    sbp_mmhg: float
    dbp_mmhg: float
    map_mmhg: float
    pp_mmhg: float
    upstroke_mmhg: float  # largest step of the smoothed upstroke, per sample


class BeatDetector:
    """Pure, streaming: ``feed(t0_s, samples_mmhg)`` returns the beats completed so far.

    ``fs_hz`` is the sample rate; NaN samples are missing. Memory is bounded by the larger of
    a few seconds of signal and the chunk being fed. Pressures come out in mmHg, ``t_s`` is the
    onset on the caller's time line and ``hr_bpm`` is 60 over the onset-to-onset interval. A
    stretch of ``max_gap_s`` without a detectable upstroke is reported as one non-good beat with
    ``hr_bpm == 0`` so that flat lines, zeroing and disconnection are flagged, not just silent.
    """

    def __init__(
        self,
        fs_hz: float,
        *,
        learning_s: float = 2.0,
        max_gap_s: float = 3.0,
        limits: QualityLimits | None = None,
    ) -> None:
        if fs_hz < 50:
            raise ValueError(f"beat detection needs at least 50 Hz, got {fs_hz} Hz")
        self.fs_hz = float(fs_hz)
        self.limits = limits or QualityLimits()
        box = max(2, round(0.04 * fs_hz))
        kernel = np.convolve(np.ones(box), np.ones(box))
        self._kernel: FloatArray = kernel / kernel.sum()
        self._delay = box - 1  # group delay of the triangular low-pass, samples
        # Mean |step| of white noise of unit SD after the low-pass, with a 1.5x margin for its
        # spread over one beat.
        self._noise_travel = 1.5 * math.sqrt(2.0 / math.pi) * float(
            np.linalg.norm(np.diff(self._kernel)))
        self._window = max(2, round(0.128 * fs_hz))
        self._eye = round(0.25 * fs_hz)
        self._look = round(0.15 * fs_hz)
        self._foot_slack = round(0.02 * fs_hz)
        self._learn = round(learning_s * fs_hz)
        self._gap = round(max_gap_s * fs_hz)
        self._plateau = max(3, round(self.limits.plateau_s * fs_hz))
        # An SSF peak below this is noise, not an upstroke (mmHg of rise per SSF window).
        self._ssf_floor = 3.0
        self._history = len(self._kernel) + self._window + self._look + self._eye

        self._t_origin: float | None = None
        self._n = 0  # absolute index of the next sample to arrive
        self._base = 0  # absolute index of buffer element 0
        self._raw: FloatArray = np.empty(0)
        self._nan = np.empty(0, dtype=bool)
        self._y: FloatArray = np.empty(0)
        self._ssf: FloatArray = np.empty(0)
        self._last_valid: float | None = None
        self._start = 0  # first valid sample: learning starts here
        self._scan = 0
        self._seg_start = 0
        self._onset: int | None = None
        self._ta: float | None = None
        self._refs: deque[_Reference] = deque(maxlen=8)
        # Recent onsets: their median interval is the rhythm, which early beats and their
        # compensatory pauses (one shorter, one longer) do not move.
        self._onsets: deque[int] = deque(maxlen=9)
        self._rhythm_n: float | None = None
        self._last_peak: float | None = None  # SSF peak of the last onset
        self._prev_ratio = 1.0  # the previous beat's period over the rhythm's
        self._prev_quality = GOOD
        # The dicrotic notch ends ejection ~0.3 s after onset; no ventricle ejects again
        # sooner than its refractory time (~0.4 s): a weak crossing in between is refused.
        self._refractory_s = 0.36
        # (onset index, MAP) of recent beats past the artefact checks: the level a kinked
        # line leaves; a median, so a few wrong first beats do not seed it.
        self._levels: deque[tuple[int, float]] = deque()
        # A lone small beat and a beat cut short wait for the next one's verdict (_emit).
        self._held: Beat | None = None
        self._held_weak = False
        self._weak = False
        # A steady beat whose next foot moved more than this patient's feet usually move
        # from beat to beat also waits: a baseline jump or a kink released inside it shows
        # in the next beat (a spike, the trace out of line), breathing does not.
        self._foot_steps: deque[float] = deque(maxlen=8)
        self._foot_shifted = False
        # The verdict just given says the line moved (a kink, a baseline jump), not that a
        # beat was out of the rhythm.
        self._line_moved = False
        self._linger_reason: BeatQuality | None = None
        self._linger_until = 0

    def feed(self, t0_s: float, samples_mmhg: Sequence[float] | FloatArray) -> list[Beat]:
        """Take samples starting at ``t0_s`` (s); return beats completed, oldest first.

        A chunk that starts later than the previous one ended is joined by missing samples.
        """
        x = np.asarray(samples_mmhg, dtype=np.float64)
        if self._t_origin is None:
            self._t_origin = t0_s
        else:
            expected = self._t_origin + self._n / self.fs_hz
            skipped = round((t0_s - expected) * self.fs_hz)
            if skipped < 0:
                raise ValueError(f"chunk at {t0_s} s overlaps samples already fed")
            if skipped:
                x = np.concatenate([np.full(skipped, np.nan), x])
        if x.size == 0:
            return []
        beats: list[Beat] = []
        if self._last_valid is None:
            x = self._skip_leading_missing(x, beats)
            if x.size == 0:
                return beats
        self._append(x)
        self._detect(beats)
        self._trim()
        return beats

    # --- signal path ------------------------------------------------------------------------

    def _skip_leading_missing(self, x: FloatArray, beats: list[Beat]) -> FloatArray:
        """Before the first valid sample there is nothing to filter: count and report it."""
        valid = np.flatnonzero(~np.isnan(x))
        lead = int(valid[0]) if valid.size else x.size
        end = self._n + lead
        while end - self._seg_start >= self._gap:
            beats.append(self._missing_report(self._seg_start))
            self._seg_start += self._gap
        self._n = end
        if not valid.size:
            return x[:0]
        first = float(x[lead])
        self._last_valid = first
        self._start = self._base = self._scan = end
        self._seg_start = max(self._seg_start, end)
        # Pad the filter history with the first value so the start is not a step from zero.
        pad = len(self._kernel) + self._window
        self._raw = np.full(pad, first)
        self._nan = np.zeros(pad, dtype=bool)
        self._y = np.full(pad, first)
        self._ssf = np.zeros(pad)
        self._base -= pad
        return x[lead:]

    def _append(self, x: FloatArray) -> None:
        nan = np.isnan(x)
        if nan.any():
            # Missing samples hold the last value: the filter stays finite and beats that
            # contain them are marked "missing" anyway.
            idx = np.where(nan, -1, np.arange(x.size))
            np.maximum.accumulate(idx, out=idx)
            assert self._last_valid is not None
            filled = np.where(idx >= 0, x[np.maximum(idx, 0)], self._last_valid)
        else:
            filled = x
        if not nan.all():
            self._last_valid = float(filled[-1])
        k = len(self._kernel)
        raw = np.concatenate([self._raw, filled])
        y_new = np.convolve(raw[len(self._raw) - (k - 1) :], self._kernel, mode="valid")
        y = np.concatenate([self._y, y_new])
        w = self._window
        dy = np.diff(y[len(self._y) - w :])
        ssf_new = np.convolve(np.maximum(dy, 0.0), np.ones(w), mode="valid")
        self._raw = raw
        self._nan = np.concatenate([self._nan, nan])
        self._y = y
        self._ssf = np.concatenate([self._ssf, ssf_new])
        self._n += x.size

    def _trim(self) -> None:
        keep_from = min(self._seg_start, self._scan - self._history)
        if self._onset is not None:
            keep_from = min(keep_from, self._onset)
        cut = keep_from - self._base
        if cut > 0:
            self._raw = self._raw[cut:]
            self._nan = self._nan[cut:]
            self._y = self._y[cut:]
            self._ssf = self._ssf[cut:]
            self._base = keep_from

    # --- onsets -----------------------------------------------------------------------------

    def _detect(self, beats: list[Beat]) -> None:
        limit = self._n - self._look
        if self._ta is None:
            if self._n - self._start < self._learn:
                return
            learn = self._ssf[self._start - self._base : self._start - self._base + self._learn]
            self._ta = max(3.0 * float(learn.mean()), 3.0 * self._ssf_floor)
        base = self._base
        while True:
            deadline = self._seg_start + self._max_gap()
            stop = min(limit, deadline)
            if self._scan >= stop:
                if deadline > limit:
                    return
                self._emit(self._seg_start, deadline, 0.0, beats)
                self._seg_start = deadline
                self._onset = None
                self._scan = max(self._scan, deadline)
                # Lost beats or a weaker pulse: lower the threshold, as wabp does.
                self._ta = max(0.5 * self._ta, 3.0 * self._ssf_floor)
                continue
            threshold = self._ta / 3.0
            # A crossing is a rise through the threshold: an SSF still high when the eye
            # opens (a long, notched upstroke) is the same beat.
            above = self._ssf[self._scan - 1 - base : stop - base] > threshold
            hits = np.flatnonzero(above[1:] & ~above[:-1])
            if not hits.size:
                self._scan = stop
                continue
            c = self._scan + int(hits[0])
            peak = float(self._ssf[c - base : c + self._look - base].max())
            self._scan = c + self._eye
            if peak < self._ssf_floor:
                continue
            lo = max(c - self._window - self._delay, self._start + self._delay)
            if self._onset is not None:
                lo = max(lo, self._onset + self._delay + self._eye // 2)
            foot = self._foot(min(lo, c), c)
            # A dicrotic wave rises less than the upstroke before it; an early beat both that
            # weak and that soon cannot be a heartbeat.
            last = self._last_peak
            if last is not None and peak < 0.6 * last and self._onset is not None and \
                    foot - self._onset < self._refractory():
                continue
            self._last_peak = peak
            self._ta += (min(peak, 2.0 * self._ta) - self._ta) / 10.0
            if foot <= self._start:
                continue  # the trace began on an upstroke: its foot was never seen
            if self._onset is not None and foot > self._onset:
                missed = self._search_back(self._onset, foot)
                if missed is not None:
                    self._accept(missed, beats)
            self._accept(foot, beats)

    def _accept(self, foot: int, beats: list[Beat]) -> None:
        """Close the beat running since the last onset at ``foot`` and start the next."""
        if self._onset is not None and foot > self._onset:
            self._emit(self._onset, foot, 60.0 * self.fs_hz / (foot - self._onset), beats)
        self._onset = foot
        self._onsets.append(foot)
        if len(self._onsets) >= 4:
            on = self._onsets
            self._rhythm_n = float(median(b - a for a, b in itertools.pairwise(on)))
        self._seg_start = max(foot, self._seg_start)

    def _search_back(self, onset: int, foot: int) -> int | None:
        """The foot of a weak upstroke missed between ``onset`` and ``foot``, if any.

        An interval that long in a known rhythm has lost a beat: an early beat that filled
        little, or a weak one riding on a strong one's run-off, can rise under the threshold.
        As in Pan and Tompkins' search-back (1985) the interval is searched again with the
        threshold and the noise floor halved, for the strongest upstroke that leaves a beat
        of at least ``min_period_ratio`` of the rhythm on either side and starts after the
        refractory time (so it is no dicrotic wave).
        """
        rhythm = self._rhythm()
        lim = self.limits
        if rhythm is None or foot - onset < lim.search_back_ratio * rhythm:
            return None
        shortest = lim.min_period_ratio * rhythm
        first = onset + round(max(self._refractory(), shortest))
        last = foot - round(shortest)
        if last <= first:
            return None
        assert self._ta is not None
        base, dl = self._base, self._delay
        # The SSF of an upstroke whose foot is at i crosses from i + delay on, within a window.
        lo_c, hi_c = first + dl, last + dl + self._window
        above = self._ssf[lo_c - 1 - base : hi_c - base] > self._ta / 6.0
        hits = np.flatnonzero(above[1:] & ~above[:-1])
        best: tuple[float, int] | None = None
        for h in hits:
            c = lo_c + int(h)
            peak = float(self._ssf[c - base : c + self._look - base].max())
            if peak >= self._ssf_floor / 2.0 and (best is None or peak > best[0]):
                best = (peak, c)
        if best is None:
            return None
        c = best[1]
        found = self._foot(max(c - self._window - dl, onset + dl + self._eye // 2), c)
        return found if first <= found <= last else None

    def _foot(self, lo: int, crossing: int) -> int:
        """Onset of the upstroke crossing the threshold at ``crossing`` (raw sample index).

        Intersecting tangents (Chiu et al. 1991) bound it: the tangent at the steepest point of
        the upstroke meets the level of the minimum before it. Unlike the minimum itself this
        does not slide back along a slowly rising (breathing, drifting) end of diastole; the
        onset is then the last sample before that point still within 3 % of the rise of the
        minimum (looking back at most 20 ms, and 20 ms back if none is), so that a blunt
        upstroke's slow start is not cut off.
        """
        base = self._base
        y = self._y[lo - base : crossing + self._look + 1 - base]
        i_min = int(np.argmin(y[: crossing + 1 - lo]))
        dy = np.diff(y[i_min:])
        k = int(np.argmax(dy))
        if dy[k] <= 0:
            return lo + i_min - self._delay
        mid = 0.5 * float(y[i_min + k] + y[i_min + k + 1])
        cross = i_min + k + 0.5 - (mid - float(y[i_min])) / float(dy[k])
        at = min(max(round(cross), i_min), i_min + k)
        rise = float(y[i_min + k + 1:].max() - y[i_min])
        first = max(i_min, at - self._foot_slack)
        low = np.flatnonzero(y[first : at + 1] <= y[i_min] + 0.03 * rise)
        # Still above that level all the way back: the foot is at least that far back.
        return lo + (first + int(low[-1]) if low.size else first) - self._delay

    def _rhythm(self) -> float | None:
        """The rhythm's period (samples): the median interval between recent onsets."""
        return self._rhythm_n

    def _max_gap(self) -> int:
        """A compensatory pause in a slow rhythm outlasts ``max_gap_s``: it is no gap."""
        rhythm = self._rhythm()
        if rhythm is None:
            return self._gap
        return max(self._gap, round(self.limits.max_period_ratio * rhythm))

    def _refractory(self) -> float:
        rhythm = self._rhythm()
        limit = self._refractory_s * self.fs_hz
        return limit if rhythm is None else min(limit, 0.6 * rhythm)

    # --- one beat ---------------------------------------------------------------------------

    def _missing_report(self, start: int) -> Beat:
        nan = math.nan
        return Beat(self._time(start), nan, nan, nan, 0.0, MISSING)

    def _emit(self, start: int, end: int, hr_bpm: float, beats: list[Beat]) -> None:
        """Measure and judge the beat from ``start`` to ``end`` and add it to ``beats``; a good
        beat that a lone small pulse or an early upstroke ends, or whose next foot moved more
        than usual, waits for the next verdict.

        A damped line stays damped for many beats: a small beat between trusted ones was a
        weak heartbeat. A beat is cut short by the one after it: if that one is no heartbeat
        (a spike, a jump), the cut is not a heartbeat's end either, and the beat's MAP is not
        the mean of a cardiac cycle. A baseline jump or a kink released inside a beat is no
        bigger than its upstroke's steps, but it holds to the next foot and the next beat
        shows the line (spikes, the trace out of line): the beat takes that verdict.
        """
        beat = self._measure(start, end, hr_bpm)
        held, self._held = self._held, None
        if held is not None and self._held_weak and not beat.is_good:
            held = replace(held, quality=DAMPING)
        elif held is not None and (beat.quality in _NO_HEARTBEAT or self._line_moved):
            held = replace(held, quality=beat.quality, ectopic=False)
        if held is not None:
            beats.append(held)
        cut_short = self._prev_ratio < self.limits.premature_ratio  # this beat's, just set
        if beat.is_good and (self._weak or cut_short or self._foot_shifted):
            self._held, self._held_weak = beat, self._weak
        else:
            beats.append(beat)
        self._weak = self._foot_shifted = self._line_moved = False

    def _time(self, index: int) -> float:
        assert self._t_origin is not None
        return self._t_origin + index / self.fs_hz

    def _measure(self, start: int, end: int, hr_bpm: float) -> Beat:
        b = self._base
        x = self._raw[start - b : end - b]
        foot = x[: max(2, round(0.05 * self.fs_hz))]
        rhythm = self._rhythm()
        ratio = (end - start) / rhythm if rhythm is not None else 1.0
        # A beat whose predecessor was cut short came early: it is the ectopic one (if that
        # predecessor was a trusted beat; after artefacts short "beats" are no rhythm).
        ectopic = (self._prev_ratio < self.limits.premature_ratio and hr_bpm > 0
                   and self._prev_quality == GOOD)
        beat = Beat(self._time(start), float(x.max()), float(foot.min()), float(x.mean()),
                    hr_bpm, ectopic=ectopic)
        quality = self._verdict(start, end, beat, ratio)
        self._prev_ratio = ratio if hr_bpm > 0 else 1.0
        self._prev_quality = quality
        return replace(beat, quality=quality, ectopic=ectopic and quality == GOOD)

    def _verdict(self, start: int, end: int, beat: Beat, ratio: float) -> BeatQuality:
        lim = self.limits
        b = self._base
        if self._nan[start - b : end - b].any():
            return MISSING
        upstroke = self._upstroke(start, end)
        usual = self._reference()
        # A weak beat (early, or riding on a strong one's run-off) falls faster than it rose;
        # a spike or a baseline jump falls faster than any upstroke this heart makes.
        fastest_rise = max(upstroke, usual.upstroke_mmhg if usual is not None else 0.0)
        reason = self._artefact(start, end, beat, fastest_rise)
        if reason in _LINGERING:
            self._linger_reason = reason
            self._linger_until = end + round(lim.linger_s * self.fs_hz)
        if reason is None and self._linger_reason is not None and start < self._linger_until:
            reason = self._linger_reason
        if reason is not None:
            return reason
        sbp, dbp, map_mmhg = beat.sbp_mmhg, beat.dbp_mmhg, beat.map_mmhg
        pp = sbp - dbp
        if (
            sbp > lim.sbp_max_mmhg
            or dbp < lim.dbp_min_mmhg
            or not lim.map_min_mmhg <= map_mmhg <= lim.map_max_mmhg
            or not lim.hr_min_bpm <= self._rate_bpm(beat) <= lim.hr_max_bpm
            or self._rhythm_bpm() > lim.hr_max_bpm
        ):
            return RANGE
        ref = usual
        small = not beat.ectopic and ref is not None and (
            pp < lim.damping_pp_fraction * ref.pp_mmhg
            and abs(map_mmhg - ref.map_mmhg) < lim.damping_map_shift_mmhg)
        # An early beat has less time to fill: its pulse may be small, and is still a beat.
        # A small beat right after a trusted one may be a weak heartbeat (one riding on a
        # strong beat's run-off): the next beat tells, since a damped line stays damped.
        lone = not (self._held is not None and self._held_weak) and self._prev_quality == GOOD
        if (not beat.ectopic and pp < lim.pp_min_mmhg) or (small and not lone):
            return DAMPING
        if not small:
            self._refs.append(_Reference(sbp, dbp, map_mmhg, pp, upstroke))
        if not lim.min_period_ratio <= ratio <= lim.max_period_ratio:
            return INCONSISTENT  # a double detection, or beats lost inside this one
        # A beat cut short by an early one, the early one and the one after its pause have
        # their own SBP, DBP and MAP: they are held to the level only loosely and set none.
        regular = not beat.ectopic and all(
            lim.premature_ratio <= r <= 1.0 / lim.premature_ratio for r in (ratio, self._prev_ratio)
        )
        level = self._level(start, map_mmhg, regular and not small)
        # A pause ends low, an early beat starts high; a beat of the rhythm's length after
        # none of them (the one before may be refused, cut short by an artefact) ends near
        # the diastole it started from.
        steady = not beat.ectopic and self._prev_ratio <= 1.0 / lim.premature_ratio and (
            lim.premature_ratio <= ratio <= 1.0 / lim.premature_ratio)
        foot_step = self._foot_step(end, dbp) if steady else 0.0
        if level is not None:
            shift = (map_mmhg - level) / level
            limit = lim.level_shift_fraction if regular else lim.irregular_shift_fraction
            explained = ref is not None and (
                self._stronger_beat(beat, ref, limit) if shift > 0
                else self._early_beat_over_pause(beat, ref))
            if abs(shift) > limit and not explained:
                self._line_moved = regular
                return INCONSISTENT
            if abs(foot_step) > lim.level_shift_fraction * level:
                self._line_moved = True
                return INCONSISTENT
        if ref is not None and regular:
            # In a regular rhythm SBP and DBP moving together is the baseline jumping.
            jump = max(lim.jump_floor_mmhg, lim.jump_fraction_of_pp * ref.pp_mmhg)
            d_sbp, d_dbp = sbp - ref.sbp_mmhg, dbp - ref.dbp_mmhg
            if abs(d_sbp) > jump and abs(d_dbp) > jump and d_sbp * d_dbp > 0:
                self._line_moved = True
                return INCONSISTENT
        if steady:
            steps = self._foot_steps
            self._foot_shifted = len(steps) >= 4 and abs(foot_step) > (
                lim.foot_step_vs_usual * median(steps))
            steps.append(abs(foot_step))
        self._weak = small
        return GOOD

    @staticmethod
    def _stronger_beat(beat: Beat, ref: _Reference, limit: float) -> bool:
        """A MAP above the level raised by a wider pulse over the usual diastole.

        A kinked or damped line lowers the trace or narrows the pulse; a baseline offset moves
        the diastole with it. A beat whose systole rose above the recent ones while its
        diastole stayed within the level's own tolerance is the heart ejecting more (after a
        pause, post-extrasystolic potentiation), not the line.
        """
        return (beat.map_mmhg > ref.map_mmhg
                and beat.sbp_mmhg - beat.dbp_mmhg > ref.pp_mmhg
                and abs(beat.dbp_mmhg - ref.dbp_mmhg) <= limit * ref.dbp_mmhg)

    @staticmethod
    def _early_beat_over_pause(beat: Beat, ref: _Reference) -> bool:
        """A MAP under the level because an early beat's cycle holds its compensatory pause.

        The early beat's mean runs over the long run-off after it (at a wide pulse it falls
        far in a long pause); its foot still interrupts the run-off before the usual time, so
        it lies above the usual diastole. A kinked line lowers the whole trace, foot and all.
        """
        return beat.ectopic and beat.dbp_mmhg >= ref.dbp_mmhg

    def _foot_step(self, end: int, dbp: float) -> float:
        """How far the next beat's foot lies from this beat's diastole (mmHg, up positive).

        In a regular rhythm a beat ends near the diastole it started from (breathing and
        wander move it by a few mmHg); a line that kinks or is released within the beat halves
        or doubles the trace between its two feet, a jump of about half the MAP level.
        """
        b = self._base
        foot = self._raw[end - b : end - b + max(2, round(0.05 * self.fs_hz))]
        return float(foot.min()) - dbp

    def _upstroke(self, start: int, end: int) -> float:
        """The largest step of the smoothed trace in the first 0.2 s of a beat (mmHg)."""
        b, dl = self._base, self._delay
        n = min(end - start, round(0.2 * self.fs_hz) + 1)
        return float(np.diff(self._y[start - b + dl : start - b + dl + n]).max()) if n >= 2 \
            else 0.0

    def _artefact(self, start: int, end: int, beat: Beat,
                  fastest_rise: float) -> BeatQuality | None:
        """The artefact signature a stretch of pressure shows, if any; ``fastest_rise`` is
        the steepest smoothed upstroke step (mmHg per sample) of this beat or the usual
        ones."""
        lim = self.limits
        b, dl = self._base, self._delay
        x = self._raw[start - b : end - b]
        pp = beat.sbp_mmhg - beat.dbp_mmhg
        span = beat.sbp_mmhg - float(x.min())
        if span < 2.5 * lim.near_zero_mmhg and abs(float(np.median(x))) < lim.near_zero_mmhg:
            if float(x.std()) < lim.zeroing_noise_sd_mmhg:
                return ZEROING
            return DISCONNECTION
        if x.size < 4:
            return MOTION
        if self._square(x, span):
            return CALIBRATION
        step = np.diff(x)
        d2 = np.diff(step)
        # Robust SD of white noise: the curvature of a pulse is large only at a few corners
        # (and sums to about zero over a beat, so |d2| needs no centring).
        noise_sd = 1.4826 * float(np.median(np.abs(d2))) / math.sqrt(6.0)
        # A flat line's span is its noise's: n samples of white noise span about
        # 2 sqrt(2 ln n) SD (6-8 SD over a few seconds, under 5 over the 19 samples of a beat
        # at 200/min and 62.5 Hz). Its curvature is noise everywhere, so its quietest quarter
        # gives the same SD; a short, coarsely sampled beat has corners in most samples.
        quiet_sd = float(np.quantile(np.abs(d2), 0.25)) / (0.3186 * math.sqrt(6.0))
        spread = min(lim.flat_span_vs_noise, 2.0 * math.sqrt(2.0 * math.log(x.size)))
        if span < max(lim.pp_min_mmhg / 2, spread * min(noise_sd, quiet_sd)):
            return FLAT
        if self._plateau_at_extreme(x):
            return SATURATION
        if beat.sbp_mmhg >= lim.flush_mmhg:
            return FLUSH
        up = max(2, min(step.size, round(0.2 * self.fs_hz)))
        rise = float(step[:up].max())
        margin = 6.0 * math.sqrt(2.0) * noise_sd
        # No pulse rises faster than over min_rise_s: a step bigger than that allows (and
        # than the upstroke's own largest one elsewhere) is a spike or a baseline jump.
        fastest = span / max(1.0, lim.min_rise_s * self.fs_hz)
        if float(np.abs(step).max()) > lim.jump_vs_upstroke * fastest + margin:
            return MOTION
        if step.size > up and float(np.abs(step[up:]).max()) > lim.jump_vs_upstroke * rise + margin:
            return MOTION
        y = self._y[start - b + dl : end - b + dl]
        dy = np.diff(y)
        if float(-dy.min()) > lim.fall_vs_upstroke * fastest_rise + margin / 4:
            return MOTION
        if pp > 0 and noise_sd > lim.noise_sd_fraction_of_pp * pp:
            return NOISE
        # White noise left by the low-pass travels too, the more the longer the beat (a slow
        # or paused beat at a small pulse pressure): only travel beyond it counts.
        noise_travel = self._noise_travel * noise_sd * dy.size
        if float(np.abs(dy).sum()) > 2.0 * (1.0 + lim.excess_travel) * span + noise_travel:
            return NOISE
        tail = self._runoff(x)
        if tail is not None and self._runoff_residual(tail) > max(
                lim.runoff_vs_noise * noise_sd, lim.runoff_fraction_of_pp * pp):
            return NOISE
        # After the systolic peak the pressure falls, notches and runs off smoothly: one
        # step many times both its neighbours (beyond the noise, and beyond two levels of
        # the converter: a quantised run-off moves in isolated one-level steps) is the
        # baseline jumping. Its first step is weighed against the step into it too. The last
        # 30 ms may already hold the foot of the next upstroke (the onset is where its
        # tangents cross, after the curve has begun to turn): a rhythm whose next beat comes
        # early is not a baseline jump.
        peak = int(np.argmax(x))
        s = np.abs(step[peak : step.size - round(0.03 * self.fs_hz)])
        if s.size >= 3:
            excess = float(np.max(s[1:-1] - lim.runoff_step_vs_neighbours
                                  * np.maximum(s[:-2], s[2:]))) - margin
            if excess > 0.0:
                moves = np.abs(step[step != 0])
                if excess > 2.0 * float(moves.min()):
                    return MOTION
        return None

    def _runoff(self, x: FloatArray) -> FloatArray | None:
        """The end of diastole, the smoothest part of a beat; None if under 0.1 s long."""
        # Before ~0.4 s the dicrotic wave may still be running; a beat cut short that soon
        # by an early one has no run-off to judge.
        first = max(round((1.0 - self.limits.runoff_share) * x.size), round(0.4 * self.fs_hz))
        tail = x[first:]
        return tail if tail.size >= max(5, round(0.1 * self.fs_hz)) else None

    @staticmethod
    def _runoff_residual(tail: FloatArray) -> float:
        """RMS residual of the run-off around a parabola (mmHg).

        There a clean trace leaves only its white noise around a parabola, and a burst of
        interference stands out.
        """
        t = np.linspace(-1.0, 1.0, tail.size)
        basis = np.vstack([np.ones(tail.size), t, t * t])
        coef = np.linalg.solve(basis @ basis.T, basis @ tail)
        resid = tail - coef @ basis
        return math.sqrt(float(resid @ resid) / tail.size)

    def _rate_bpm(self, beat: Beat) -> float:
        """The heart rate to check: an early beat's own period is its compensatory pause."""
        rhythm = self._rhythm()
        return 60.0 * self.fs_hz / rhythm if beat.ectopic and rhythm else beat.hr_bpm

    def _rhythm_bpm(self) -> float:
        """The rhythm's rate; faster than any heart means the onsets are noise (0 if unknown)."""
        rhythm = self._rhythm()
        return 60.0 * self.fs_hz / rhythm if rhythm else 0.0

    def _level(self, start: int, map_mmhg: float, regular: bool) -> float | None:
        """The recent MAP level (the median of the last minute's regular beats), once known."""
        levels = self._levels
        while levels and levels[0][0] < start - self.limits.level_window_s * self.fs_hz:
            levels.popleft()
        if regular:
            levels.append((start, map_mmhg))
        if len(levels) < 4:
            return None
        return float(median(m for _, m in levels))

    def _square(self, x: FloatArray, span: float) -> bool:
        """Most samples sit at one of two levels: a monitor's calibration square wave."""
        k = x.size - 1
        lo, hi = np.partition(x, (k // 20, k - k // 20))[[k // 20, k - k // 20]]
        if hi - lo < 0.5 * span:
            return False
        tol = 0.05 * (hi - lo)
        at_lo = float(np.mean(np.abs(x - lo) <= tol))
        at_hi = float(np.mean(np.abs(x - hi) <= tol))
        return at_lo + at_hi >= self.limits.square_level_fraction and min(at_lo, at_hi) >= 0.15

    def _plateau_at_extreme(self, x: FloatArray) -> bool:
        """A run of identical samples at the top or bottom: the ADC or monitor is clipping."""
        n = self._plateau
        if x.size < n:
            return False
        for level in (x.max(), x.min()):
            at = np.concatenate([[False], x == level, [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(at))
            if edges.size and int((edges[1::2] - edges[::2]).max()) >= n:
                return True
        return False

    def _reference(self) -> _Reference | None:
        if len(self._refs) < 3:
            return None
        refs = self._refs
        return _Reference(median(r.sbp_mmhg for r in refs), median(r.dbp_mmhg for r in refs),
                          median(r.map_mmhg for r in refs), median(r.pp_mmhg for r in refs),
                          median(r.upstroke_mmhg for r in refs))


class DetectedBeatSource:
    """A :class:`~vasopilot.core.interfaces.BeatSource` made of a pressure source and a detector."""

    def __init__(self, source: PressureSource, detector: BeatDetector) -> None:
        if source.fs_hz != detector.fs_hz:
            raise ValueError(
                f"detector runs at {detector.fs_hz} Hz but the source delivers {source.fs_hz} Hz"
            )
        self.source = source
        self.detector = detector

    def read_beats(self) -> list[Beat]:
        chunk = self.source.read()
        return self.detector.feed(chunk.t0_s, chunk.samples_mmhg)
