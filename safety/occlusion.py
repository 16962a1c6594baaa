"""Occlusion detection (S8): an absolute pressure threshold plus a compliance-aware rise rate.

Behind an occlusion the whole pump flow goes into the compliance of syringe and line, so the
pressure climbs at ``rate / compliance`` (mmHg/s). At 1 mL/h with a 50 mL syringe (1 µL/mmHg)
that is 0.28 mmHg/s: a 300 mmHg threshold alone takes about 18 min, while a climb at that slope
is recognisable within a minute. The stored volume, released by backing the plunger off, is the
compliance times the pressure rise above the line's free-flow baseline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

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


def occluded_slope_mmhg_s(rate_ml_h: float, compliance_ul_per_mmhg: float) -> float:
    """Pressure slope in mmHg/s when ``rate_ml_h`` flows into a closed compliant line."""
    return rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR / compliance_ul_per_mmhg


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t_s, pressure_mmhg) samples, in mmHg/s."""
    n = len(samples)
    t_mean = sum(t for t, _ in samples) / n
    p_mean = sum(p for _, p in samples) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in samples)
    if sxx == 0:
        return 0.0
    return sum((t - t_mean) * (p - p_mean) for t, p in samples) / sxx


class OcclusionDetector:
    """Threshold and rise-rate occlusion detector over line-pressure samples.

    ``threshold_mmhg`` is the selected absolute level; ``compliance_ul_per_mmhg`` the syringe
    plus line. The rise-rate detector fires when the pressure climbs at no less than
    ``slope_fraction`` of the occluded slope for the current rate *and* stands
    ``min_rise_mmhg`` above the baseline, both held for ``confirm_s`` (so a cough does not stop
    a vasopressor). The slope is fitted over the time a closed line needs to climb
    ``min_rise_mmhg`` (between ``min_window_s`` and ``window_s``): long enough to average
    sensor noise at 1 mL/h, short enough to react within seconds at 20 mL/h.

    The baseline is the lowest pressure of the last ``baseline_window_s`` at this rate. It is
    frozen while the pressure stands ``min_rise_mmhg`` above it, so a slow climb behind an
    occlusion does not drag it along and the back-off volume stays the whole stored volume.
    """

    def __init__(
        self,
        threshold_mmhg: float,
        compliance_ul_per_mmhg: float,
        *,
        rise_rate: bool = True,
        window_s: float = 30.0,
        min_window_s: float = 5.0,
        min_rise_mmhg: float = 10.0,
        slope_fraction: float = 0.5,
        confirm_s: float = 3.0,
        baseline_window_s: float = 300.0,
    ) -> None:
        self.threshold_mmhg = threshold_mmhg
        self.compliance_ul_per_mmhg = compliance_ul_per_mmhg
        self.rise_rate = rise_rate
        self._window_s = window_s
        self._min_window_s = min_window_s
        self._min_rise_mmhg = min_rise_mmhg
        self._slope_fraction = slope_fraction
        self._confirm_s = confirm_s
        self._baseline_window_s = baseline_window_s
        self._window: deque[tuple[float, float]] = deque()
        self._history: deque[tuple[float, float]] = deque()
        self._rising_since_s: float | None = None
        self._last_t_s: float | None = None
        self._rate_ml_h = 0.0

    def reset(self) -> None:
        """Forget the line's history (a new start or a new syringe)."""
        self._window.clear()
        self._history.clear()
        self._rising_since_s = None
        self._last_t_s = None

    def baseline_mmhg(self) -> float:
        return self._history[0][1] if self._history else 0.0

    def stored_ul(self, pressure_mmhg: float | None) -> float:
        """Volume held in the line's compliance at ``pressure_mmhg`` above the baseline."""
        if pressure_mmhg is None:
            return 0.0
        return self.compliance_ul_per_mmhg * max(0.0, pressure_mmhg - self.baseline_mmhg())

    def update(
        self, pressure_mmhg: float, rate_ml_h: float, t_s: float
    ) -> OcclusionFinding | None:
        """Feed one sample taken while infusing at ``rate_ml_h``; a finding means stop now."""
        if self._last_t_s is not None and t_s <= self._last_t_s:
            return None
        self._last_t_s = t_s
        if rate_ml_h != self._rate_ml_h:
            # A new rate has a new free-flow pressure.
            self._rate_ml_h = rate_ml_h
            self._history.clear()
        self._window.append((t_s, pressure_mmhg))
        while self._window[0][0] < t_s - self._window_s:
            self._window.popleft()
        if pressure_mmhg >= self.threshold_mmhg:
            return self._finding(
                "threshold", pressure_mmhg,
                f"line pressure {pressure_mmhg:.0f} mmHg at or over the threshold of "
                f"{self.threshold_mmhg:.0f} mmHg",
            )
        finding = self._rise(pressure_mmhg, rate_ml_h, t_s) if self.rise_rate else None
        elevated = bool(self._history) and (
            pressure_mmhg >= self.baseline_mmhg() + self._min_rise_mmhg)
        if finding is None and not elevated:
            # A monotonic deque: its head is the window's minimum, found in O(1).
            while self._history and self._history[-1][1] >= pressure_mmhg:
                self._history.pop()
            self._history.append((t_s, pressure_mmhg))
            while self._history[0][0] < t_s - self._baseline_window_s:
                self._history.popleft()
        return finding

    def _rise(self, pressure_mmhg: float, rate_ml_h: float, t_s: float) -> OcclusionFinding | None:
        if rate_ml_h <= 0 or not self._history:
            self._rising_since_s = None
            return None
        rise = pressure_mmhg - self.baseline_mmhg()
        # Both conditions must hold; the rise costs nothing, the slope a pass over the window,
        # and on a free-flowing line the rise alone already says no.
        if rise < self._min_rise_mmhg:
            self._rising_since_s = None
            return None
        expected = occluded_slope_mmhg_s(rate_ml_h, self.compliance_ul_per_mmhg)
        span_s = min(self._window_s, max(self._min_window_s, self._min_rise_mmhg / expected))
        recent = [(t, p) for t, p in self._window if t >= t_s - span_s]
        if len(recent) < 3 or t_s - recent[0][0] < span_s / 2:
            self._rising_since_s = None
            return None
        slope = _slope(recent)
        if slope < self._slope_fraction * expected:
            self._rising_since_s = None
            return None
        if self._rising_since_s is None:
            self._rising_since_s = t_s
        if t_s - self._rising_since_s < self._confirm_s:
            return None
        return self._finding(
            "rise-rate", pressure_mmhg,
            f"line pressure climbing {slope:.2f} mmHg/s ({rise:.0f} mmHg over its baseline); "
            f"a closed line at {rate_ml_h:.2f} mL/h climbs {expected:.2f} mmHg/s",
        )

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
