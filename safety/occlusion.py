"""Occlusion detection (S8): an absolute threshold, and a climb tied to the pump's own flow.

Line pressure is P = P_patient + Q·R + a hydrostatic offset, in a line of compliance C. Behind
an occlusion the whole flow goes into the compliance, so P climbs at Q/C (mmHg/s) for as long
as the pump pushes: at 1 mL/h with a 50 mL syringe (1 µL/mmHg) 0.28 mmHg/s, which a 300 mmHg
threshold alone takes 18 min to notice. A cough, a Valsalva, the patient sitting up or the bed
or pump moved shifts P by an amount that does not depend on the flow, and must never stop a
vasopressor. Two kinds of evidence tie a climb to the flow:

- a climb that keeps tracking the delivered volume (ΔP ≈ ΔV/C, linear) for longer than any
  patient-side change lasts (``unambiguous_rise_mmhg``, more than a 30 mmHg ramp and a 40 mmHg
  step together can fake without breaking the line);
- a brief flow probe: when a climb at the occluded slope appears, the detector asks for a pause
  (:class:`ProbeRequest`, which the supervisor enacts, journals and makes up). Behind an
  occlusion nothing leaves the line, so the climb stops while the pump does and resumes with
  it: slope before − slope during the pause ≈ Q/C, and after − during ≈ Q/C again. A ramp
  (the patient sitting up) climbs on through the pause; a step that happened before it does
  not come back after it. An occlusion that starts during a ramp adds Q/C to the ramp's slope
  and is told apart the same way.

The stored volume, released by backing the plunger off, is the compliance times the pressure
rise above the line's free-flow baseline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from vasopilot.core.events import ProbeCause
from vasopilot.core.units import SECONDS_PER_MIN, UL_PER_ML

SECONDS_PER_HOUR = SECONDS_PER_MIN * 60.0


@dataclass(frozen=True)
class OcclusionFinding:
    """Why an occlusion was declared; ``stored_ul`` is the volume to back off."""

    detector: str
    pressure_mmhg: float | None
    baseline_mmhg: float
    stored_ul: float
    message: str


@dataclass(frozen=True)
class ProbeRequest:
    """A detector asks the supervisor to pause the pump for ``pause_s``; ``urgent`` when the
    evidence already points to an occlusion (then a MAP below the floor does not forbid it)."""

    pause_s: float
    cause: ProbeCause
    urgent: bool
    message: str


# A noise estimate from the 20th percentile of second differences needs five of them.
MIN_FIT_SAMPLES = 7


@dataclass(frozen=True)
class Fit:
    """A least-squares line through pressure samples: slope (mmHg/s), residual RMS (mmHg),
    the sensor noise seen in them (mmHg, from second differences, which neither a slope nor a
    single jump moves much), the fitted values at the first and last samples, and the time it
    spans."""

    slope: float
    rms: float
    noise_mmhg: float
    start_mmhg: float
    end_mmhg: float
    span_s: float
    samples: int

    def straight(self, tolerance_mmhg: float) -> bool:
        """Whether a line explains the samples: residuals no larger than the noise allows.
        A jump, a cough or a curve leaves residuals the noise does not explain. Too few samples
        to estimate the noise from cannot show it: a cough among them would pass as noise."""
        return self.samples >= MIN_FIT_SAMPLES and \
            self.rms <= 1.5 * self.noise_mmhg + tolerance_mmhg


def occluded_slope_mmhg_s(rate_ml_h: float, compliance_ul_per_mmhg: float) -> float:
    """Pressure slope in mmHg/s when ``rate_ml_h`` flows into a closed compliant line."""
    return rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR / compliance_ul_per_mmhg


def fit_line(samples: Iterable[tuple[float, float]]) -> Fit | None:
    """Least-squares line of (t_s, pressure_mmhg) samples; ``None`` for fewer than 3."""
    points = list(samples)
    n = len(points)
    if n < 3:
        return None
    t_mean = sum(t for t, _ in points) / n
    p_mean = sum(p for _, p in points) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in points)
    if sxx == 0:
        return None
    slope = sum((t - t_mean) * (p - p_mean) for t, p in points) / sxx
    rss = sum((p - p_mean - slope * (t - t_mean)) ** 2 for t, p in points)
    span_s = points[-1][0] - points[0][0]
    second = sorted(abs(points[i + 1][1] - 2 * points[i][1] + points[i - 1][1])
                    for i in range(1, n - 1))
    # The 20th percentile of |second difference| of white noise σ is 0.253·√6·σ; a train of
    # coughs, whose edges make most of the others large, leaves it alone.
    noise = second[len(second) // 5] / (0.253 * 6 ** 0.5)
    return Fit(slope, (rss / n) ** 0.5, noise, p_mean + slope * (points[0][0] - t_mean),
               p_mean + slope * (points[-1][0] - t_mean), span_s, n)


class PressureTrace:
    """The recent (t_s, pressure_mmhg) samples of a line, oldest first."""

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._samples: deque[tuple[float, float]] = deque()

    def clear(self) -> None:
        self._samples.clear()

    def add(self, t_s: float, pressure_mmhg: float) -> None:
        self._samples.append((t_s, pressure_mmhg))
        while self._samples[0][0] < t_s - self._keep_s:
            self._samples.popleft()

    @property
    def span_s(self) -> float:
        return self._samples[-1][0] - self._samples[0][0] if self._samples else 0.0

    def between(self, t0_s: float, t1_s: float) -> list[tuple[float, float]]:
        """Samples with t0_s <= t_s <= t1_s (scanned from the newest end)."""
        out: list[tuple[float, float]] = []
        for sample in reversed(self._samples):
            if sample[0] < t0_s:
                break
            if sample[0] <= t1_s:
                out.append(sample)
        out.reverse()
        return out

    def fit(self, t0_s: float, t1_s: float, *, min_cover: float = 0.8) -> Fit | None:
        """A line through the samples of [t0_s, t1_s] if they cover ``min_cover`` of it."""
        found = fit_line(self.between(t0_s, t1_s))
        if found is None or found.span_s < min_cover * (t1_s - t0_s):
            return None
        return found


@dataclass
class _Probe:
    started_s: float
    before: Fit | None
    ours: bool
    resumed_s: float | None = None


class OcclusionDetector:
    """Threshold, volume-tracking climb and flow-probe occlusion detector.

    ``threshold_mmhg`` is the selected absolute level; ``compliance_ul_per_mmhg`` the syringe
    plus line. With ``rise_rate`` a climb counts once it stands ``min_rise_mmhg`` over the
    baseline and a line fitted over the time the occluded line needs to climb ``fit_mmhg``
    (between ``min_window_s`` and ``max_window_s``: long enough to average sensor noise at
    0.5 mL/h, short enough to react in seconds at 20 mL/h) is straight (its residual no more
    than the noise explains, plus ``linear_tolerance_mmhg``: a jump, a cough or a Valsalva
    is not) and climbs at ``trigger_fraction`` of Q/C or more (the probe's verdict draws the
    line at ``slope_fraction``). Such a climb asks for a probe; ``settle_s`` of each pause and
    of each resumption are skipped (the open line's own R·C relaxation, about 2 s), and across them
    the pressure must stay within ``continuity_mmhg`` of what an occluded line would show.

    The baseline is the lowest pressure of the last ``baseline_window_s`` at this rate, frozen
    while the pressure stands ``min_rise_mmhg`` above it, so that the back-off volume is the
    whole stored volume.
    """

    def __init__(
        self,
        threshold_mmhg: float,
        compliance_ul_per_mmhg: float,
        *,
        rise_rate: bool = True,
        min_rise_mmhg: float = 3.5,
        fit_mmhg: float = 3.8,
        min_window_s: float = 4.0,
        max_window_s: float = 20.0,
        slope_fraction: float = 0.5,
        trigger_fraction: float = 0.8,
        linear_tolerance_mmhg: float = 0.3,
        settle_s: float = 2.5,
        continuity_mmhg: float = 2.0,
        unambiguous_rise_mmhg: float = 45.0,
        probe_spacing_s: float = 30.0,
        baseline_window_s: float = 300.0,
    ) -> None:
        self.threshold_mmhg = threshold_mmhg
        self.compliance_ul_per_mmhg = compliance_ul_per_mmhg
        self.rise_rate = rise_rate
        self._min_rise_mmhg = min_rise_mmhg
        self._fit_mmhg = fit_mmhg
        self._min_window_s = min_window_s
        self._max_window_s = max_window_s
        self._slope_fraction = slope_fraction
        self._trigger_fraction = trigger_fraction
        self._linear_tolerance_mmhg = linear_tolerance_mmhg
        self._settle_s = settle_s
        self._continuity_mmhg = continuity_mmhg
        self._unambiguous_rise_mmhg = unambiguous_rise_mmhg
        self._probe_spacing_s = probe_spacing_s
        self._baseline_window_s = baseline_window_s
        self._trace = PressureTrace(keep_s=max(baseline_window_s, 900.0))
        self._history: deque[tuple[float, float]] = deque()
        self._last_t_s: float | None = None
        self._rate_ml_h = 0.0
        self._probe: _Probe | None = None
        self._last_probe_s: float | None = None
        # The flow-independent slope the last negative probe saw (a ramp).
        self._disturbance_slope = 0.0
        # Whether the last sample showed a climb this detector is judging, which another
        # detector's probe must not interrupt.
        self.climbing = False

    def reset(self) -> None:
        """Forget the line's history (a new start or a new syringe)."""
        self._trace.clear()
        self._history.clear()
        self._last_t_s = None
        self._probe = None
        self._last_probe_s = None
        self._disturbance_slope = 0.0
        self.climbing = False

    def baseline_mmhg(self) -> float:
        return self._history[0][1] if self._history else 0.0

    def stored_ul(self, pressure_mmhg: float | None) -> float:
        """Volume held in the line's compliance at ``pressure_mmhg`` above the baseline."""
        if pressure_mmhg is None:
            return 0.0
        return self.compliance_ul_per_mmhg * max(0.0, pressure_mmhg - self.baseline_mmhg())

    def window_s(self, rate_ml_h: float) -> float:
        """How long a fit runs at ``rate_ml_h``: the time a closed line climbs ``fit_mmhg``."""
        expected = occluded_slope_mmhg_s(rate_ml_h, self.compliance_ul_per_mmhg)
        if expected <= 0:
            return self._max_window_s
        return min(self._max_window_s, max(self._min_window_s, self._fit_mmhg / expected))

    # -- probes ----------------------------------------------------------------------------------

    def probe_started(self, t_s: float, *, ours: bool) -> None:
        """The supervisor paused the pump now (for this detector's request if ``ours``)."""
        before = None
        if ours:
            before = self._trace.fit(t_s - self.window_s(self._rate_ml_h), t_s)
        self._probe = _Probe(t_s, before, ours)
        self._last_probe_s = t_s

    def probe_ended(self, t_s: float) -> None:
        """The supervisor set the pump running again."""
        if self._probe is not None:
            self._probe.resumed_s = t_s

    def probe_declined(self, t_s: float) -> None:
        """The supervisor did not enact the probe (it waits for unambiguous evidence)."""
        self._last_probe_s = t_s

    # -- samples ---------------------------------------------------------------------------------

    def update(
        self, pressure_mmhg: float, rate_ml_h: float, t_s: float
    ) -> OcclusionFinding | ProbeRequest | None:
        """Feed one sample taken while infusing at ``rate_ml_h`` (the programmed rate, also
        during a probe): a finding means stop now, a request asks for a pause."""
        if self._last_t_s is not None and t_s <= self._last_t_s:
            return None
        self._last_t_s = t_s
        if rate_ml_h != self._rate_ml_h and self._probe is None:
            # A new rate has a new free-flow pressure.
            self._rate_ml_h = rate_ml_h
            self._history.clear()
        self._trace.add(t_s, pressure_mmhg)
        if pressure_mmhg >= self.threshold_mmhg:
            return self._finding(
                "threshold", pressure_mmhg,
                f"line pressure {pressure_mmhg:.0f} mmHg at or over the threshold of "
                f"{self.threshold_mmhg:.0f} mmHg",
            )
        if self._probe is not None:
            return self._probing(pressure_mmhg, t_s)
        found = self._climb(pressure_mmhg, rate_ml_h, t_s) if self.rise_rate else None
        elevated = bool(self._history) and (
            pressure_mmhg >= self.baseline_mmhg() + self._min_rise_mmhg)
        if found is None and not elevated:
            # A monotonic deque: its head is the window's minimum, found in O(1).
            while self._history and self._history[-1][1] >= pressure_mmhg:
                self._history.pop()
            self._history.append((t_s, pressure_mmhg))
            while self._history[0][0] < t_s - self._baseline_window_s:
                self._history.popleft()
        return found

    def _climb(
        self, pressure_mmhg: float, rate_ml_h: float, t_s: float
    ) -> OcclusionFinding | ProbeRequest | None:
        self.climbing = False
        # A rate too small to move the line (down to a denormal a pump could report) climbs
        # nothing.
        if occluded_slope_mmhg_s(rate_ml_h, self.compliance_ul_per_mmhg) <= 0 or not self._history:
            return None
        rise = pressure_mmhg - self.baseline_mmhg()
        # The rise costs nothing, a fit a pass over a window: on a free line the rise says no.
        if rise < self._min_rise_mmhg:
            self._disturbance_slope = 0.0
            return None
        expected = occluded_slope_mmhg_s(rate_ml_h, self.compliance_ul_per_mmhg)
        if rise >= self._unambiguous_rise_mmhg:
            # Long enough that only a climb at (1 − slope_fraction / 2)·Q/C or more covers it,
            # and no faster than twice Q/C: a closed line climbs with the volume, not ahead of it.
            floor = (1 - self._slope_fraction / 2) * expected
            span_s = self._unambiguous_rise_mmhg / floor
            tracked = self._trace.fit(t_s - span_s, t_s, min_cover=0.95)
            # A ramp an earlier probe showed to be flow-independent is no part of the climb.
            if (tracked is not None and tracked.straight(self._linear_tolerance_mmhg)
                    and floor <= tracked.slope - self._disturbance_slope <= 2 * expected):
                return self._finding(
                    "rise-rate", pressure_mmhg,
                    f"line pressure has climbed {tracked.slope * tracked.span_s:.0f} mmHg "
                    f"in step with the delivered volume ({tracked.slope:.2f} mmHg/s; a closed "
                    f"line at {rate_ml_h:.2f} mL/h climbs {expected:.2f} mmHg/s)",
                )
        recent = self._trace.fit(t_s - self.window_s(rate_ml_h), t_s)
        if recent is None or not recent.straight(self._linear_tolerance_mmhg):
            return None
        # A ramp seen by an earlier probe is forgiven only while it lasts.
        self._disturbance_slope = min(self._disturbance_slope,
                                      max(0.0, recent.slope + expected * self._slope_fraction / 2))
        self.climbing = recent.slope - self._disturbance_slope >= self._slope_fraction * expected
        # A probe is asked for once the climb fills the window (a slope near Q/C), not at the
        # first sign of one: a probe of half a climb proves nothing and delays the next.
        if recent.slope - self._disturbance_slope < self._trigger_fraction * expected:
            return None
        if self._last_probe_s is not None and t_s - self._last_probe_s < self._probe_spacing_s:
            return None
        pause_s = self._settle_s + self.window_s(rate_ml_h)
        if self._unambiguous_rise_mmhg / expected <= 2 * pause_s:
            # At this rate the climb proves itself sooner than a probe could: never delay it.
            return None
        return ProbeRequest(
            pause_s=pause_s, cause=ProbeCause.OCCLUSION,
            urgent=True,
            message=f"line pressure climbing {recent.slope:.2f} mmHg/s, {rise:.0f} mmHg over "
                    f"its baseline, as a closed line at {rate_ml_h:.2f} mL/h would "
                    f"({expected:.2f} mmHg/s)",
        )

    def _probing(self, pressure_mmhg: float, t_s: float) -> OcclusionFinding | None:
        probe = self._probe
        assert probe is not None
        if probe.resumed_s is None:
            return None
        after_from_s = probe.resumed_s + self._settle_s
        if not probe.ours or probe.before is None:
            # Another detector's probe: only the line's refilling is kept out of the fits.
            if t_s >= after_from_s:
                self._probe = None
                self._trace.clear()
            return None
        if t_s < after_from_s + self.window_s(self._rate_ml_h):
            return None
        self._probe = None
        during = self._trace.fit(probe.started_s + self._settle_s, probe.resumed_s)
        after = self._trace.fit(after_from_s, t_s)
        fits = (probe.before, during, after)
        if during is None or after is None or any(
                f is None or not f.straight(self._linear_tolerance_mmhg) for f in fits):
            return None  # a cough or a jump in a window: inconclusive, ask again later
        expected = occluded_slope_mmhg_s(self._rate_ml_h, self.compliance_ul_per_mmhg)
        stops = probe.before.slope - during.slope
        resumes = after.slope - during.slope
        # Behind an occlusion the pressure holds where it was when the pump stopped and climbs
        # on from there when it runs again: a jump between the windows is something else (an
        # open line losing Q·R, a step that came or went in the gaps).
        held = abs(during.start_mmhg - probe.before.end_mmhg) <= self._continuity_mmhg
        climbs_on = abs(after.start_mmhg - during.end_mmhg - expected * self._settle_s) \
            <= self._continuity_mmhg
        if held and climbs_on and min(stops, resumes) >= self._slope_fraction * expected:
            return self._finding(
                "probe", pressure_mmhg,
                f"line pressure climbed {probe.before.slope:.2f} mmHg/s, {during.slope:.2f} "
                f"while the pump paused and {after.slope:.2f} once it ran again: the climb "
                f"follows the pump's flow ({expected:.2f} mmHg/s behind a closed line)",
            )
        self._disturbance_slope = max(0.0, during.slope)
        return None

    def stall(self, pressure_mmhg: float | None, cause: str) -> OcclusionFinding:
        """A motor stall is an occlusion whatever the pressure says."""
        return self._finding("stall", pressure_mmhg, cause)

    def _finding(
        self, detector: str, pressure_mmhg: float | None, message: str
    ) -> OcclusionFinding:
        return OcclusionFinding(
            detector=detector,
            pressure_mmhg=pressure_mmhg,
            baseline_mmhg=self.baseline_mmhg(),
            stored_ul=self.stored_ul(pressure_mmhg),
            message=message,
        )
