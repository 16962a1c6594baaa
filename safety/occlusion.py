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
  occlusion nothing leaves the line, so the pressure holds while the pump pauses and climbs
  on from there with it: one model, P = level + ramp·t + (Q/C)·(time the pump ran), explains
  before, during and after the pause down to the sensor noise. A ramp (the patient sitting
  up) climbs on through the pause (the model's ramp, no flow slope); a step or a cough that
  came or went leaves a residual no noise explains, and a small step the residual hides (a
  jump before the pause and its return during it pass for a flow slope beside a falling
  ramp) is explained as well by a level, a ramp and one jump anywhere in the window, which
  then refuses the verdict. An occlusion that starts during a ramp adds Q/C to the ramp's
  slope and is told apart the same way. The noise is learnt on the calm line, never from the
  samples judged, which a train of coughs would inflate.

The stored volume, released by backing the plunger off, is the compliance times the pressure
rise above the line's free-flow baseline.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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


# A line is judged over no fewer samples: with fewer, a cough among them bends the fit about
# as much as it shows in the residual (the stateful test found one in four samples a second).
MIN_FIT_SAMPLES = 7
# Calm samples a noise estimate needs, and how many of the latest it keeps.
MIN_NOISE_SAMPLES = 16
NOISE_KEEP = 64


@dataclass(frozen=True)
class Fit:
    """A least-squares line through pressure samples: slope (mmHg/s), residual RMS (mmHg),
    the fitted values at the first and last samples, and the time it spans."""

    slope: float
    rms: float
    start_mmhg: float
    end_mmhg: float
    span_s: float
    samples: int

    def straight(self, noise_mmhg: float | None, tolerance_mmhg: float) -> bool:
        """Whether a line explains the samples: residuals no larger than the sensor's noise
        (learnt on the calm line, never from these samples, which a train of coughs or a jump
        would inflate) allows. Without a noise estimate nothing is straight."""
        return noise_mmhg is not None and self.samples >= MIN_FIT_SAMPLES and \
            self.rms <= 1.5 * noise_mmhg + tolerance_mmhg


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
    return Fit(slope, (rss / n) ** 0.5, p_mean + slope * (points[0][0] - t_mean),
               p_mean + slope * (points[-1][0] - t_mean), span_s, n)


class NoiseMeter:
    """The pressure sensor's noise σ (mmHg), learnt from the calm line only.

    Each sample whose two predecessors were calm too gives a second difference, scaled for
    uneven sampling so that any straight line cancels and white noise σ leaves σ; the median
    of the last ``NOISE_KEEP`` magnitudes over 0.6745 is σ. A cough or a step is not calm
    (it stands over the baseline), so neither enters.
    """

    def __init__(self) -> None:
        self._last: list[tuple[float, float]] = []
        self._scaled: deque[float] = deque(maxlen=NOISE_KEEP)
        self._sigma: float | None = None
        self._stale = False

    def clear(self) -> None:
        self._last.clear()
        self._scaled.clear()
        self._sigma = None
        self._stale = False

    def add(self, t_s: float, pressure_mmhg: float, *, calm: bool) -> None:
        if not calm:
            self._last.clear()
            return
        self._last.append((t_s, pressure_mmhg))
        if len(self._last) < 3:
            return
        (t0, p0), (t1, p1), (t2, p2) = self._last[-3:]
        del self._last[0]
        ratio = (t2 - t1) / (t1 - t0)
        scale = (1.0 + (1.0 + ratio) ** 2 + ratio * ratio) ** 0.5
        self._scaled.append(abs(p2 - p1 - ratio * (p1 - p0)) / scale)
        self._stale = True

    @property
    def sigma_mmhg(self) -> float | None:
        """σ, or ``None`` until enough calm samples were seen."""
        if self._stale:
            self._stale = False
            ordered = sorted(self._scaled)
            self._sigma = ordered[len(ordered) // 2] / 0.6745 \
                if len(ordered) >= MIN_NOISE_SAMPLES else None
        return self._sigma


class PressureTrace:
    """The recent (t_s, pressure_mmhg) samples of a line, oldest first, with running sums so
    that a line through any window of them costs a bisection, not a pass over the window.

    The sums run from an origin at the oldest sample kept (times as offsets from it, so that
    their squares stay small); when more than half the stored samples are older than
    ``keep_s`` they are dropped and the sums rebuilt from the new oldest one.
    """

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._t: list[float] = []
        self._p: list[float] = []
        self._head = 0
        self._origin_s = 0.0
        # Sums over the first i samples of x, p, x², x·p and p² (x = t − origin).
        self._sums: list[tuple[float, float, float, float, float]] = [(0.0,) * 5]

    def clear(self) -> None:
        self._t.clear()
        self._p.clear()
        self._head = 0
        del self._sums[1:]

    def add(self, t_s: float, pressure_mmhg: float) -> None:
        if not self._t:
            self._origin_s = t_s
        self._t.append(t_s)
        self._p.append(pressure_mmhg)
        x = t_s - self._origin_s
        sx, sp, sxx, sxp, spp = self._sums[-1]
        self._sums.append((sx + x, sp + pressure_mmhg, sxx + x * x, sxp + x * pressure_mmhg,
                           spp + pressure_mmhg * pressure_mmhg))
        cutoff = t_s - self._keep_s
        while self._t[self._head] < cutoff:
            self._head += 1
        if self._head >= 64 and 2 * self._head > len(self._t):
            kept = list(zip(self._t[self._head:], self._p[self._head:], strict=True))
            self.clear()
            for sample in kept:
                self.add(*sample)

    @property
    def span_s(self) -> float:
        return self._t[-1] - self._t[self._head] if self._t else 0.0

    def _window(self, t0_s: float, t1_s: float) -> tuple[int, int]:
        first = bisect_left(self._t, t0_s, self._head)
        return first, bisect_right(self._t, t1_s, first)

    def between(self, t0_s: float, t1_s: float) -> list[tuple[float, float]]:
        """Samples with t0_s <= t_s <= t1_s."""
        first, last = self._window(t0_s, t1_s)
        return list(zip(self._t[first:last], self._p[first:last], strict=True))

    def pressures(self, t0_s: float, t1_s: float) -> list[float]:
        """The pressures of the samples with t0_s <= t_s <= t1_s."""
        first, last = self._window(t0_s, t1_s)
        return self._p[first:last]

    def fit(self, t0_s: float, t1_s: float, *, min_cover: float = 0.8) -> Fit | None:
        """A line through the samples of [t0_s, t1_s] if they cover ``min_cover`` of it (the
        same line :func:`fit_line` draws, from the running sums)."""
        first, last = self._window(t0_s, t1_s)
        n = last - first
        if n < 3:
            return None
        span_s = self._t[last - 1] - self._t[first]
        if span_s < min_cover * (t1_s - t0_s):
            return None
        high, low = self._sums[last], self._sums[first]
        sx, sp, sxx, sxp, spp = (a - b for a, b in zip(high, low, strict=True))
        x_mean, p_mean = sx / n, sp / n
        cxx = sxx - sx * x_mean
        if cxx <= 0:
            return None
        slope = (sxp - sx * p_mean) / cxx
        rss = max(0.0, spp - sp * p_mean - slope * (sxp - sx * p_mean))
        x_first = self._t[first] - self._origin_s
        x_last = self._t[last - 1] - self._origin_s
        return Fit(slope, (rss / n) ** 0.5, p_mean + slope * (x_first - x_mean),
                   p_mean + slope * (x_last - x_mean), span_s, n)


@dataclass(frozen=True)
class ProbeFit:
    """One model through a probe's samples, before, during and after the pause: pressure =
    level + ``ramp_slope``·t (flow-independent) + ``flow_slope``·(time the pump ran). Behind
    an occlusion ``flow_slope`` is Q/C and the residual is the sensor's noise; ``flow_se`` is
    the flow slope's standard error per mmHg of noise."""

    flow_slope: float
    ramp_slope: float
    rms: float
    flow_se: float
    samples: int


def fit_probe(samples: Iterable[tuple[float, float, float]]) -> ProbeFit | None:
    """Least squares of (t_s, pumped_s, pressure_mmhg) samples on the two slopes and a level;
    ``None`` when the two times cannot be told apart (no pause among the samples)."""
    points = list(samples)
    n = len(points)
    if n < 4:
        return None
    t_mean = sum(t for t, _, _ in points) / n
    u_mean = sum(u for _, u, _ in points) / n
    p_mean = sum(p for _, _, p in points) / n
    stt = suu = stu = stp = sup = spp = 0.0
    for t, u, p in points:
        dt, du, dp = t - t_mean, u - u_mean, p - p_mean
        stt += dt * dt
        suu += du * du
        stu += dt * du
        stp += dt * dp
        sup += du * dp
        spp += dp * dp
    det = stt * suu - stu * stu
    if det <= 1e-9 * stt * suu:
        return None
    ramp = (stp * suu - sup * stu) / det
    flow = (sup * stt - stp * stu) / det
    rss = max(0.0, spp - ramp * stp - flow * sup)
    return ProbeFit(flow, ramp, (rss / n) ** 0.5, (stt / det) ** 0.5, n)


def step_rss(samples: Iterable[tuple[float, float]]) -> float | None:
    """The smallest residual sum of squares (mmHg²) of a flow-independent model with one step:
    a level, a ramp and a jump between any two consecutive (t_s, pressure_mmhg) samples
    (sorted by time); ``None`` for fewer than 4 samples.

    For a jump after sample k the step's column, made orthogonal to the level and the ramp,
    takes (Σ_{i>k} e_i)² / |h⊥|² off the straight line's residuals e; both are suffix sums,
    so every place for the jump costs O(1)."""
    points = list(samples)
    n = len(points)
    line = fit_line(points) if n >= 4 else None
    if line is None:
        return None
    residuals = [p - line.start_mmhg - line.slope * (t - points[0][0]) for t, p in points]
    t_mean = sum(t for t, _ in points) / n
    stt = sum((t - t_mean) ** 2 for t, _ in points)
    rss = line.rms ** 2 * n
    best = 0.0
    e_sum = t_sum = 0.0
    for m, ((t, _), e) in enumerate(zip(reversed(points[1:]), reversed(residuals[1:]),
                                        strict=True), start=1):
        e_sum += e
        t_sum += t - t_mean
        norm = m - m * m / n - t_sum * t_sum / stt
        if norm > 1e-12:
            best = max(best, e_sum * e_sum / norm)
    return max(0.0, rss - best)


@dataclass
class _Probe:
    started_s: float
    ours: bool
    resumed_s: float | None = None


class OcclusionDetector:
    """Threshold, volume-tracking climb and flow-probe occlusion detector.

    ``threshold_mmhg`` is the selected absolute level; ``compliance_ul_per_mmhg`` the syringe
    plus line. With ``rise_rate`` a climb counts once it stands ``min_rise_mmhg`` over the
    baseline and a line fitted over the time the occluded line needs to climb ``fit_mmhg``
    (between ``min_window_s`` and ``max_window_s``: long enough to average sensor noise at
    0.5 mL/h, short enough to react in seconds at 20 mL/h) is straight (its residual no more
    than the sensor noise learnt on the calm line explains, plus ``linear_tolerance_mmhg``: a
    jump, a cough or a Valsalva is not) and climbs at ``trigger_fraction`` of Q/C or more.
    Such a climb asks for a probe. Its verdict fits one model through a window before the
    pause, the pause and a window after it (``settle_s`` after each switch skipped: the open
    line's own R·C relaxation, about 2 s): a level, a flow-independent ramp and a slope with
    the pump's running time. An occlusion is a model that leaves only noise, explains the
    samples better than a level, a ramp and one step anywhere in the window would, and whose
    flow slope is ``slope_fraction`` of Q/C to twice it and ``flow_z`` standard errors clear
    of zero.

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
        fit_mmhg: float = 3.0,
        min_window_s: float = 4.0,
        max_window_s: float = 20.0,
        slope_fraction: float = 0.5,
        trigger_fraction: float = 0.8,
        linear_tolerance_mmhg: float = 0.3,
        settle_s: float = 2.5,
        flow_z: float = 3.0,
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
        self._flow_z = flow_z
        self._unambiguous_rise_mmhg = unambiguous_rise_mmhg
        self._probe_spacing_s = probe_spacing_s
        self._baseline_window_s = baseline_window_s
        self._trace = PressureTrace(keep_s=max(baseline_window_s, 900.0))
        self._history: deque[tuple[float, float]] = deque()
        self._noise = NoiseMeter()
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
        self._noise.clear()
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
        self._probe = _Probe(t_s, ours)
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
            self._noise.add(t_s, pressure_mmhg, calm=False)
            return self._probing(pressure_mmhg, t_s)
        found = self._climb(pressure_mmhg, rate_ml_h, t_s) if self.rise_rate else None
        elevated = bool(self._history) and (
            pressure_mmhg >= self.baseline_mmhg() + self._min_rise_mmhg)
        self._noise.add(t_s, pressure_mmhg, calm=bool(self._history) and not elevated)
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
            if (tracked is not None
                    and tracked.straight(self._noise.sigma_mmhg, self._linear_tolerance_mmhg)
                    and floor <= tracked.slope - self._disturbance_slope <= 2 * expected):
                return self._finding(
                    "rise-rate", pressure_mmhg,
                    f"line pressure has climbed {tracked.slope * tracked.span_s:.0f} mmHg "
                    f"in step with the delivered volume ({tracked.slope:.2f} mmHg/s; a closed "
                    f"line at {rate_ml_h:.2f} mL/h climbs {expected:.2f} mmHg/s)",
                )
        recent = self._trace.fit(t_s - self.window_s(rate_ml_h), t_s)
        if recent is None or not recent.straight(self._noise.sigma_mmhg,
                                                 self._linear_tolerance_mmhg):
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
        if not probe.ours:
            # Another detector's probe: only the line's refilling is kept out of the fits.
            if t_s >= after_from_s:
                self._probe = None
                self._trace.clear()
            return None
        window_s = self.window_s(self._rate_ml_h)
        if t_s < after_from_s + window_s:
            return None
        self._probe = None
        started_s, resumed_s = probe.started_s, probe.resumed_s
        before = self._trace.between(started_s - window_s, started_s)
        during = self._trace.between(started_s + self._settle_s, resumed_s)
        after = self._trace.between(after_from_s, t_s)
        spans = (window_s, resumed_s - started_s - self._settle_s, window_s)
        noise = self._noise.sigma_mmhg
        if noise is None or any(len(part) < MIN_FIT_SAMPLES or
                                part[-1][0] - part[0][0] < 0.8 * span
                                for part, span in zip((before, during, after), spans, strict=True)):
            return None  # too little of the line seen to judge: ask again later
        # The pump ran before and after the pause, not during it; the settling samples, where
        # an open line relaxes by its own R·C, come into no model.
        fit = fit_probe([(t, t - started_s, p) for t, p in before]
                        + [(t, 0.0, p) for t, p in during]
                        + [(t, t - resumed_s, p) for t, p in after])
        bound_mmhg = 1.5 * noise + self._linear_tolerance_mmhg
        if fit is None or fit.rms > bound_mmhg:
            # A cough, a step or a ramp that came or went: no verdict. While the pump was
            # paused it added nothing, so a straight line through the pause alone is the
            # flow-independent slope.
            paused = fit_line(during)
            self._disturbance_slope = max(0.0, paused.slope) if paused is not None \
                and paused.straight(noise, self._linear_tolerance_mmhg) else 0.0
            return None
        # A jump at any time in the window (a step that came or went, before, during or after
        # the pause) can pass for a flow slope beside a ramp: the flow model must explain the
        # samples better than a step would, or the probe proves nothing (ask again later).
        stepped = step_rss(before + during + after)
        if stepped is None or stepped <= fit.rms ** 2 * fit.samples:
            return None
        expected = occluded_slope_mmhg_s(self._rate_ml_h, self.compliance_ul_per_mmhg)
        # Behind an occlusion the pressure climbs with the pump's running time, holds while it
        # pauses and climbs on from where it held, at Q/C and no faster; the flow's share must
        # stand out from what the largest noise a fit may leave could make of it.
        if self._slope_fraction * expected <= fit.flow_slope <= 2 * expected \
                and fit.flow_slope >= self._flow_z * fit.flow_se * bound_mmhg:
            return self._finding(
                "probe", pressure_mmhg,
                f"line pressure climbed {fit.flow_slope:.2f} mmHg/s while the pump ran, held "
                f"while it paused and climbed on once it ran again (a closed line at "
                f"{self._rate_ml_h:.2f} mL/h climbs {expected:.2f} mmHg/s), beside a "
                f"flow-independent {fit.ramp_slope:+.2f} mmHg/s",
            )
        self._disturbance_slope = max(0.0, fit.ramp_slope)
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
