"""PI MAP titration (mode ``pi``; the closed loop of issue #6, kept for comparison).

The supervisor's target is the set-point F + 5 (S6), so the PI aims at it directly.

Design, from docs/virtual-patient.md's physiology:

* Sensitivity varies 100-fold, so the controller works on the logarithm of the dose: a step is
  a fraction of the running dose (plus a small floor so a low dose can still rise). Near the
  operating point dMAP/d(ln dose) = Emax·γ·H·(1 − H) varies far less between patients than
  dMAP/d(dose), which keeps one set of gains stable at 10× sensitivity and fast enough at 0.1×.
* Norepinephrine acts within minutes but the line adds a flow-dependent delay, so the error is
  taken on a *predicted* MAP (the trend of the last minutes extrapolated over a short horizon):
  a MAP already climbing towards target stops further increases long before it arrives.
* The law is incremental (velocity form): every proposal starts from the dose the supervisor
  reports running, so a refused or held request leaves nothing behind to wind up.
* Only good beats count, and a recent untrusted beat (artefact) or missing beats forbid
  increases; the supervisor's own S5/S6 checks stay the last word.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from safety.view import SupervisorView
from vasopilot.core.types import Beat, DoseRequest, Requester


@dataclass(frozen=True)
class MapEstimate:
    """Median MAP of the recent good beats (mmHg), its trend (mmHg/min) and whether an
    untrusted beat or a gap in the beats was seen recently."""

    map_mmhg: float
    slope_mmhg_min: float
    disturbed: bool


class MapEstimator:
    """Robust MAP and trend from trusted beats only.

    ``window_s`` for the median, ``trend_window_s`` for the least-squares slope,
    ``hold_s``: how long an untrusted beat (or a gap longer than ``gap_s``) keeps the estimate
    marked ``disturbed``.
    """

    def __init__(self, *, window_s: float = 30.0, trend_window_s: float = 180.0,
                 hold_s: float = 30.0, gap_s: float = 3.0, min_beats: int = 10) -> None:
        self._window_s = window_s
        self._trend_window_s = trend_window_s
        self._hold_s = hold_s
        self._gap_s = gap_s
        self._min_beats = min_beats
        self._good: deque[tuple[float, float]] = deque()
        self._last_bad_t_s: float | None = None
        self._last_beat_t_s: float | None = None

    def add(self, beat: Beat) -> None:
        if self._last_beat_t_s is not None and beat.t_s - self._last_beat_t_s > self._gap_s:
            # beats stopped for a while (sensor loss): treat the gap like an artefact
            self._last_bad_t_s = beat.t_s
        self._last_beat_t_s = max(beat.t_s, self._last_beat_t_s or beat.t_s)
        if beat.is_good:
            self._good.append((beat.t_s, beat.map_mmhg))
        else:
            self._last_bad_t_s = beat.t_s

    @property
    def last_beat_t_s(self) -> float | None:
        """Time of the newest beat seen, good or not."""
        return self._last_beat_t_s

    def estimate(self, now_s: float) -> MapEstimate | None:
        """``None`` when there are too few good beats in the window to trust a number."""
        while self._good and self._good[0][0] < now_s - self._trend_window_s:
            self._good.popleft()
        recent = [m for t, m in self._good if t >= now_s - self._window_s]
        if len(recent) < self._min_beats:
            return None
        silent = self._last_beat_t_s is None or now_s - self._last_beat_t_s > self._gap_s
        bad_recently = (self._last_bad_t_s is not None
                        and now_s - self._last_bad_t_s < self._hold_s)
        return MapEstimate(statistics.median(recent), self._slope_mmhg_min(),
                           silent or bad_recently)

    def _slope_mmhg_min(self) -> float:
        n = len(self._good)
        if n < 2 * self._min_beats:
            return 0.0
        t0 = self._good[0][0]
        sx = sy = sxx = sxy = 0.0
        for t, m in self._good:
            x = t - t0
            sx += x
            sy += m
            sxx += x * x
            sxy += x * m
        denom = n * sxx - sx * sx
        return 0.0 if denom <= 0 else 60.0 * (n * sxy - sx * sy) / denom


@dataclass(frozen=True)
class Tuning:
    """Gains and cadences; doses in mcg/min, pressures in mmHg, times in seconds.

    ``ki_per_mmhg_min``: change of ln(dose + floor) per minute per mmHg of predicted error.
    ``aim_mmhg``: how far above the supervisor's target (now the set-point F + 5 itself) the
    loop aims. ``horizon_min``: how far the trend is extrapolated (about the drug's onset).
    ``ramp_error_mmhg``: from this predicted shortfall on, an increase is the whole slew step.

    Tuned for issue #6 on a 20-patient seeded cohort with the target at the floor, where an aim
    of +5 (today's set-point) was the best trade; the gains and the 30 s period mattered little
    next to the slew limit and MAP0's wander. ``max_owed_log``: bound on a correction carried
    between looks.
    """

    period_s: float = 30.0
    aim_mmhg: float = 0.0
    ki_per_mmhg_min: float = 0.02
    kp_per_mmhg: float = 0.04
    horizon_min: float = 2.0
    band_mmhg: float = 3.0
    max_slope_mmhg_min: float = 5.0
    floor_mcg_min: float = 1.0
    min_change_mcg_min: float = 0.1
    min_change_ratio: float = 0.03
    ramp_error_mmhg: float = 4.0
    max_owed_log: float = 0.3


class ClosedLoopController:
    """Titrates norepinephrine to the supervisor's target MAP (pure: time from ``view.t_s``)."""

    mode = "pi"
    requester = Requester.CONTROLLER

    def __init__(self, tuning: Tuning | None = None, *, aim_mmhg: float | None = None,
                 min_dose_mcg_min: float = 0.5) -> None:
        self.tuning = tuning or Tuning()
        self._aim_mmhg = self.tuning.aim_mmhg if aim_mmhg is None else aim_mmhg
        self._min_dose = min_dose_mcg_min
        self.estimator = MapEstimator()
        self._next_s: float | None = None
        self._last_t_s: float | None = None
        self._last_error: float | None = None
        self._last_dose: float | None = None
        self._last_up_s: float | None = None
        self._last_down_s: float | None = None
        self._pending_du = 0.0

    def on_beat(self, beat: Beat) -> None:
        self.estimator.add(beat)

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        now_s = view.t_s
        self._note_increase(view)
        if self._next_s is not None and now_s < self._next_s:
            return None
        self._next_s = now_s + self.tuning.period_s
        est = self.estimator.estimate(now_s)
        if not view.running or not view.map_trusted or est is None:
            self._reset_memory()
            return None
        du = self._pending_du + self._law(view, est, view.target_map_mmhg + self._aim_mmhg)
        t = self.tuning
        dose = (view.dose_mcg_min + t.floor_mcg_min) * math.exp(du) - t.floor_mcg_min
        if self._last_error is not None and self._last_error >= t.ramp_error_mmhg:
            # far below the set-point and not climbing: the slew limit (S3), not the gain, is
            # what bounds recovery, so take the whole step it allows
            dose = max(dose, view.dose_mcg_min + view.limits.max_up_step)
        request = self._request(view, est, dose)
        # Increases may come only every 2 min (S3) while decreases may come at every look: a
        # velocity law that dropped the correction of every look it could not act on would
        # lose mostly upward corrections and settle below its set-point. So the correction of a
        # look without a request is owed to the next one (bounded, so a refusal cannot wind
        # it up; none is owed across an artefact).
        if request is None and not est.disturbed:
            self._pending_du = max(-t.max_owed_log, min(t.max_owed_log, du))
        else:
            self._pending_du = 0.0
        return request

    def _law(self, view: SupervisorView, est: MapEstimate, setpoint_mmhg: float) -> float:
        """This look's change of ln(dose + floor)."""
        t = self.tuning
        now_s = view.t_s
        slope = max(-t.max_slope_mmhg_min, min(t.max_slope_mmhg_min, est.slope_mmhg_min))
        error = setpoint_mmhg - (est.map_mmhg + slope * t.horizon_min)
        dt_min = (now_s - self._last_t_s) / 60.0 if self._last_t_s is not None else 0.0
        previous = self._last_error if self._last_error is not None else error
        self._last_t_s, self._last_error = now_s, error
        return t.ki_per_mmhg_min * error * dt_min + t.kp_per_mmhg * (error - previous)

    def _request(self, view: SupervisorView, est: MapEstimate,
                 dose: float) -> DoseRequest | None:
        t = self.tuning
        now_s = view.t_s
        current = view.dose_mcg_min
        # up to the hard maximum: above the soft maximum S2 asks an operator to confirm each step
        dose = max(self._min_dose, min(view.limits.hard_max, dose))
        if dose > current:
            if est.disturbed:
                return None
            if (self._last_up_s is not None
                    and now_s - self._last_up_s < view.limits.min_up_interval_s):
                return None
            # the trend may promise a fall, but a MAP already above the set-point is no reason
            # to push harder (S6 refuses from target + 10 anyway)
            if est.map_mmhg >= view.target_map_mmhg + self._aim_mmhg + self.tuning.band_mmhg:
                return None
        # nor is a rising trend a reason to cut the dose of a patient still below target
        elif dose < current and est.map_mmhg < view.target_map_mmhg:
            return None
        elif dose < current:
            # never lower faster than S3 lets the dose climb back: a cut made on a passing
            # high (a hypertensive event, a wander) otherwise leaves a hole that takes three
            # times as long to refill (seed 1, 24 patients, disturbance: MAP < 65 for 54 %
            # of the time with cuts of 2 mcg/min every look, 46 % with this bound)
            interval_s = view.limits.min_up_interval_s
            since_s = interval_s if self._last_down_s is None else now_s - self._last_down_s
            drop = view.limits.max_up_step * (min(1.0, since_s / interval_s) if interval_s
                                              else 1.0)
            dose = max(dose, current - drop)
        if abs(dose - current) < max(t.min_change_mcg_min, t.min_change_ratio * current):
            return None
        if dose < current:
            self._last_down_s = now_s
        if dose > current:
            # the supervisor refuses a second increase within its interval (S3): do not ask
            self._last_up_s = now_s
        reason = (f"{self.mode}: MAP {est.map_mmhg:.1f} mmHg, trend "
                  f"{est.slope_mmhg_min:+.1f} mmHg/min: {current:.2f} -> {dose:.2f} mcg/min")
        return DoseRequest(round(dose, 2), self.requester, reason)

    def _note_increase(self, view: SupervisorView) -> None:
        if self._last_dose is not None and view.dose_mcg_min > self._last_dose:
            self._last_up_s = view.t_s
        self._last_dose = view.dose_mcg_min

    def _restart(self) -> None:
        """Look at once, with no memory of the errors before a pause (a hand-back from S7)."""
        self._reset_memory()
        self._next_s = None

    def _reset_memory(self) -> None:
        # after a hold the proportional term must not act on an error from before the gap
        self._last_t_s = None
        self._last_error = None
        self._pending_du = 0.0
