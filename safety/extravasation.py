"""Infiltration by line pressure (S9): a rise that comes with the flow, told from one that does
not by a brief flow probe.

An infiltrated cannula pushes into tissue, which resists the flow more and more: at a constant
rate the line pressure rises slowly above its running baseline. So does the pressure when the
patient sits up or the pump is lowered, which must never stop a vasopressor and raises at most
a low-priority advisory. Only the flow tells them apart: line pressure is P = P_patient + Q·R
+ offset, and pausing the pump takes Q·R away (over the line's R·C, long once R has grown). So:

- once the line has run calm at a rate, one *reference* pause measures the line's own Q·R
  (R does not depend on the rate, so this is done once per line);
- when the pressure (a median, so coughs do not count) stands ``rise_mmhg`` over its baseline
  for ``hold_s``, a pause lets it fall again. An offset falls by the line's own Q·R; a rise
  that came with a growing resistance falls by Q·R' (R' = R + rise/Q) over the longer R'·C.
  A fall past ``flow_fraction`` of the way from the first to the second is flow-related (a
  high "check the cannula site" alarm); otherwise the change is an offset (a low advisory,
  and the baseline moves to the new level). An occlusion, which climbs much faster, is left
  to :mod:`safety.occlusion`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from enum import StrEnum

from safety.occlusion import PressureTrace, ProbeRequest, occluded_slope_mmhg_s
from vasopilot.core.events import ProbeCause

# The resistance a pause can still resolve: beyond it the line barely empties in the pause.
MAX_RESOLVED_FRACTION = 0.98
# The pressure before a pause and at its end: medians over this long.
LEVEL_S = 5.0


class LineChange(StrEnum):
    """What a probe made of a lasting rise of line pressure."""

    FLOW_RELATED = "flow-related"
    OFFSET = "offset"


@dataclass(frozen=True)
class InfiltrationFinding:
    """A probe's verdict on a lasting rise: ``rise_mmhg`` over the baseline, of which
    ``flow_mmhg`` comes with the flow (the resistance's growth times the rate)."""

    change: LineChange
    pressure_mmhg: float
    baseline_mmhg: float
    rise_mmhg: float
    flow_mmhg: float
    message: str


def resistance_from_pause(
    drop_mmhg: float, rate_ml_h: float, pause_s: float, compliance_ul_per_mmhg: float
) -> float:
    """The line resistance (mmHg per mL/h) that lets the pressure fall ``drop_mmhg`` during a
    pause of ``pause_s``: drop = Q·R·(1 − exp(−T/(R·C))), increasing in R (bisection)."""
    if rate_ml_h <= 0 or drop_mmhg <= 0:
        return 0.0
    ceiling = occluded_slope_mmhg_s(rate_ml_h, compliance_ul_per_mmhg) * pause_s
    if drop_mmhg >= MAX_RESOLVED_FRACTION * ceiling:
        return math.inf
    low, high = 1e-9, 1.0
    while pause_fall_mmhg(high, rate_ml_h, pause_s, compliance_ul_per_mmhg) < drop_mmhg:
        high *= 2.0
    for _ in range(60):
        middle = (low + high) / 2
        falls = pause_fall_mmhg(middle, rate_ml_h, pause_s, compliance_ul_per_mmhg)
        low, high = (middle, high) if falls < drop_mmhg else (low, middle)
    return (low + high) / 2


def pause_fall_mmhg(
    resistance_mmhg_per_ml_h: float, rate_ml_h: float, pause_s: float,
    compliance_ul_per_mmhg: float,
) -> float:
    """How far a line of this resistance and compliance, running at ``rate_ml_h``, falls in a
    pause of ``pause_s``: Q·R·(1 − exp(−T/(R·C)))."""
    if resistance_mmhg_per_ml_h <= 0:
        return 0.0
    # R·C in seconds: R in mmHg per (µL/s) is 3.6 times R in mmHg per (mL/h).
    tau_s = resistance_mmhg_per_ml_h * 3.6 * compliance_ul_per_mmhg
    return rate_ml_h * resistance_mmhg_per_ml_h * -math.expm1(-pause_s / tau_s)


class InfiltrationDetector:
    """Lasting rises of line pressure, judged by flow probes (see the module's docstring).

    ``level_window_s`` is the median's window; ``settle_s`` after a start, a rate change or a
    probe the baseline is only learnt; ``tau_s`` is how slowly it follows the pressure while it
    stays within half of ``rise_mmhg``. ``reference_after_s`` of calm running at one rate come
    before the reference pause; each pause lasts :meth:`pause_s`, and the next comes no sooner
    than ``probe_spacing_s`` after it (``offset_spacing_s`` after one that found an offset).
    """

    def __init__(
        self,
        compliance_ul_per_mmhg: float,
        *,
        rise_mmhg: float = 5.0,
        hold_s: float = 45.0,
        level_window_s: float = 20.0,
        settle_s: float = 60.0,
        tau_s: float = 600.0,
        reference_after_s: float = 300.0,
        min_pause_s: float = 10.0,
        max_pause_s: float = 30.0,
        flow_fraction: float = 0.5,
        probe_spacing_s: float = 120.0,
        offset_spacing_s: float = 300.0,
    ) -> None:
        self._compliance_ul_per_mmhg = compliance_ul_per_mmhg
        self._rise_mmhg = rise_mmhg
        self._hold_s = hold_s
        self._level_window_s = level_window_s
        self._settle_s = settle_s
        self._tau_s = tau_s
        self._reference_after_s = reference_after_s
        self._min_pause_s = min_pause_s
        self._max_pause_s = max_pause_s
        self._flow_fraction = flow_fraction
        self._probe_spacing_s = probe_spacing_s
        self._offset_spacing_s = offset_spacing_s
        self._trace = PressureTrace(keep_s=max(level_window_s, max_pause_s) + 10.0)
        self._resistance: float | None = None
        self.reset()

    def reset(self) -> None:
        """A new start or a new line: everything is learnt again, the resistance too."""
        self._trace.clear()
        self._rate_ml_h: float | None = None
        self._calm_since_s = 0.0
        self._baseline_mmhg: float | None = None
        self._last_t_s: float | None = None
        self._above_since_s: float | None = None
        self._resistance = None
        self._wanted = ProbeCause.REFERENCE
        self._probe_cause: ProbeCause | None = None
        self._probe_started_s: float | None = None
        self._resumed_s: float | None = None
        self._probe_before_mmhg = 0.0
        self._probe_baseline_mmhg = 0.0
        self._last_probe_s: float | None = None
        # A declined request waits its spacing before it is asked again; a declined reference
        # does not hold back the question a lasting rise asks.
        self._declined: dict[ProbeCause, float] = {}
        self._spacing_s = self._probe_spacing_s

    @property
    def resistance_mmhg_per_ml_h(self) -> float | None:
        """The line's own resistance, once the reference pause has measured it."""
        return self._resistance

    # -- probes ----------------------------------------------------------------------------------

    def probe_started(self, t_s: float, *, ours: bool) -> None:
        self._probe_cause = self._wanted if ours else None
        self._probe_started_s = t_s
        self._probe_before_mmhg = self._level(t_s - LEVEL_S, t_s) or 0.0
        self._probe_baseline_mmhg = self._baseline_mmhg or self._probe_before_mmhg
        self._last_probe_s = t_s

    def probe_ended(self, t_s: float) -> None:
        """The pump runs again; the probe's verdict is given by the next :meth:`update`."""
        self._resumed_s = t_s

    def probe_declined(self, t_s: float) -> None:
        self._declined[self._wanted] = t_s

    # -- samples ---------------------------------------------------------------------------------

    def update(
        self, pressure_mmhg: float, rate_ml_h: float, t_s: float
    ) -> InfiltrationFinding | ProbeRequest | None:
        """Feed one sample at the programmed ``rate_ml_h`` (also during a probe)."""
        if self._last_t_s is not None and t_s <= self._last_t_s:
            return None
        dt_s = 0.0 if self._last_t_s is None else t_s - self._last_t_s
        self._last_t_s = t_s
        self._trace.add(t_s, pressure_mmhg)
        if self._probe_started_s is not None:
            return self._probing(rate_ml_h, t_s)
        if rate_ml_h != self._rate_ml_h:
            self._rate_ml_h = rate_ml_h
            self._relearn(t_s)
            return None
        level = self._level(t_s - self._level_window_s, t_s)
        if rate_ml_h <= 0 or level is None:
            return None
        if self._baseline_mmhg is None or t_s - self._calm_since_s < self._settle_s:
            # Learning the free-flow pressure of this rate: follow it closely.
            self._baseline_mmhg = level
            return None
        rise = level - self._baseline_mmhg
        if rise < self._rise_mmhg / 2:
            self._baseline_mmhg += rise * min(1.0, dt_s / self._tau_s)
        if rise < 0:
            self._baseline_mmhg = level
        if rise < self._rise_mmhg:
            self._above_since_s = None
            return self._reference(t_s)
        if self._above_since_s is None:
            self._above_since_s = t_s
        if t_s - self._above_since_s < self._hold_s or \
                not self._may_probe(ProbeCause.INFILTRATION, t_s):
            return None
        self._wanted = ProbeCause.INFILTRATION
        return ProbeRequest(
            pause_s=self.pause_s(rate_ml_h), cause=ProbeCause.INFILTRATION, urgent=False,
            message=f"line pressure {rise:.0f} mmHg over its baseline for "
                    f"{t_s - self._above_since_s:.0f} s at {rate_ml_h:.2f} mL/h: does it "
                    "come with the flow?",
        )

    def _reference(self, t_s: float) -> ProbeRequest | None:
        if self._resistance is not None or t_s - self._calm_since_s < self._reference_after_s:
            return None
        if not self._may_probe(ProbeCause.REFERENCE, t_s):
            return None
        self._wanted = ProbeCause.REFERENCE
        return ProbeRequest(
            pause_s=self.pause_s(self._rate_ml_h or 0.0), cause=ProbeCause.REFERENCE,
            urgent=False,
            message="a reference pause measures the line's own resistance",
        )

    def pause_s(self, rate_ml_h: float) -> float:
        """A pause as long as the line's R·C once a rise of ``rise_mmhg`` came with the flow
        (R grown by rise/Q: long at low rates, where the line empties slowly), within
        ``min_pause_s`` and ``max_pause_s`` (30 s is 0.83 % of the hourly dose)."""
        if rate_ml_h <= 0:
            return self._max_pause_s
        tau_s = self._rise_mmhg / rate_ml_h * 3.6 * self._compliance_ul_per_mmhg
        return min(self._max_pause_s, max(self._min_pause_s, tau_s))

    def _may_probe(self, cause: ProbeCause, t_s: float) -> bool:
        return all(since is None or t_s - since >= self._spacing_s
                   for since in (self._last_probe_s, self._declined.get(cause)))

    def _relearn(self, t_s: float) -> None:
        self._calm_since_s = t_s
        self._baseline_mmhg = None
        self._above_since_s = None

    def _level(self, t0_s: float, t1_s: float) -> float | None:
        pressures = self._trace.pressures(t0_s, t1_s)
        return statistics.median(pressures) if pressures else None

    def _probing(self, rate_ml_h: float, t_s: float) -> InfiltrationFinding | None:
        started_s, resumed_s = self._probe_started_s, self._resumed_s
        if started_s is None or resumed_s is None:
            return None
        cause = self._probe_cause
        self._probe_started_s = self._resumed_s = self._probe_cause = None
        # The pause and what the pump takes to refill the line come into no baseline.
        self._relearn(t_s)
        rest = self._level(resumed_s - LEVEL_S, resumed_s)
        if cause is None or rest is None or rate_ml_h <= 0:
            return None
        drop = self._probe_before_mmhg - rest
        pause_s = resumed_s - started_s
        if cause is ProbeCause.REFERENCE:
            self._resistance = resistance_from_pause(drop, rate_ml_h, pause_s,
                                                     self._compliance_ul_per_mmhg)
            return None
        # Without a reference yet the line's own fall counts as none: a false alarm at worst.
        own = self._resistance if self._resistance is not None else 0.0
        if not math.isfinite(own):
            own = 0.0
        baseline = self._probe_baseline_mmhg
        rise = self._probe_before_mmhg - baseline
        offset_fall = pause_fall_mmhg(own, rate_ml_h, pause_s, self._compliance_ul_per_mmhg)
        grown = own + max(0.0, rise) / rate_ml_h
        grown_fall = pause_fall_mmhg(grown, rate_ml_h, pause_s, self._compliance_ul_per_mmhg)
        related = drop >= offset_fall + self._flow_fraction * (grown_fall - offset_fall)
        resistance = resistance_from_pause(drop, rate_ml_h, pause_s,
                                           self._compliance_ul_per_mmhg)
        flow = min(rise, rate_ml_h * (resistance - own)) if math.isfinite(resistance) else rise
        change = LineChange.FLOW_RELATED if related else LineChange.OFFSET
        # An offset seen once is not probed again soon; a suspected infiltration is followed.
        self._spacing_s = self._probe_spacing_s if related else self._offset_spacing_s
        if related:
            message = (f"line pressure {rise:.0f} mmHg over its baseline, {flow:.0f} mmHg of it "
                       f"with the flow (a pause let it fall {drop:.1f} mmHg): check the "
                       "cannula site")
        else:
            message = (f"line pressure changed by {rise:.0f} mmHg, not flow-related (a pause "
                       f"let it fall {drop:.1f} mmHg, as the line's own resistance does)")
        return InfiltrationFinding(change, self._probe_before_mmhg, baseline, rise, flow, message)
