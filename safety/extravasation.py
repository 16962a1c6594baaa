"""Extravasation by pressure trend (S9): a sustained rise over the running baseline.

An infiltrated cannula pushes into tissue instead of a vein: at a constant rate the line
pressure settles higher than it ran before, and stays there. An occlusion climbs much faster
and is caught first by :mod:`safety.occlusion`; this detector looks for the slow, lasting rise.
The baseline follows the pressure slowly while it is near, freezes once it departs, and starts
again when the rate changes (a new rate has a new free-flow pressure).
"""

from __future__ import annotations

from dataclasses import dataclass

from safety.occlusion import occluded_slope_mmhg_s


@dataclass(frozen=True)
class ExtravasationFinding:
    pressure_mmhg: float
    baseline_mmhg: float
    message: str


class InfiltrationDetector:
    """Pressure ``rise_mmhg`` over baseline, held ``sustain_s`` at one rate, means infiltration.

    ``settle_s`` after a start or a rate change the baseline is only learnt; ``tau_s`` is how
    slowly the baseline follows the pressure while it stays within half of ``rise_mmhg``. A
    climb at half or more of the occluded slope (``compliance_ul_per_mmhg`` of the line) is an
    occlusion, not tissue filling, and is left to the occlusion detector.
    """

    def __init__(
        self,
        compliance_ul_per_mmhg: float,
        *,
        rise_mmhg: float = 20.0,
        sustain_s: float = 60.0,
        settle_s: float = 60.0,
        tau_s: float = 600.0,
    ) -> None:
        self._compliance_ul_per_mmhg = compliance_ul_per_mmhg
        self._rise_mmhg = rise_mmhg
        self._sustain_s = sustain_s
        self._settle_s = settle_s
        self._tau_s = tau_s
        self._rate_ml_h: float | None = None
        self._rate_since_s = 0.0
        self._baseline_mmhg: float | None = None
        self._last_t_s: float | None = None
        self._above_since_s: float | None = None
        self._above_from_mmhg = 0.0

    def reset(self) -> None:
        self._rate_ml_h = None
        self._baseline_mmhg = None
        self._last_t_s = None
        self._above_since_s = None

    def update(
        self, pressure_mmhg: float, rate_ml_h: float, t_s: float
    ) -> ExtravasationFinding | None:
        if self._last_t_s is not None and t_s <= self._last_t_s:
            return None
        dt_s = 0.0 if self._last_t_s is None else t_s - self._last_t_s
        self._last_t_s = t_s
        if rate_ml_h != self._rate_ml_h:
            self._rate_ml_h = rate_ml_h
            self._rate_since_s = t_s
            self._baseline_mmhg = pressure_mmhg
            self._above_since_s = None
            return None
        if rate_ml_h <= 0 or self._baseline_mmhg is None:
            return None
        if t_s - self._rate_since_s < self._settle_s:
            # Learning the free-flow pressure of this rate: follow it closely.
            self._baseline_mmhg += (pressure_mmhg - self._baseline_mmhg) * min(1.0, dt_s / 10.0)
            return None
        rise = pressure_mmhg - self._baseline_mmhg
        if rise < self._rise_mmhg / 2:
            self._baseline_mmhg += rise * min(1.0, dt_s / self._tau_s)
        if rise < self._rise_mmhg:
            self._above_since_s = None
            return None
        if self._above_since_s is None:
            self._above_since_s, self._above_from_mmhg = t_s, pressure_mmhg
        held_s = t_s - self._above_since_s
        if held_s < self._sustain_s:
            return None
        climb_mmhg_s = (pressure_mmhg - self._above_from_mmhg) / held_s
        if climb_mmhg_s >= 0.5 * occluded_slope_mmhg_s(rate_ml_h, self._compliance_ul_per_mmhg):
            return None
        return ExtravasationFinding(
            pressure_mmhg=pressure_mmhg,
            baseline_mmhg=self._baseline_mmhg,
            message=(
                f"line pressure {pressure_mmhg:.0f} mmHg has stayed {rise:.0f} mmHg over its "
                f"baseline of {self._baseline_mmhg:.0f} mmHg for {self._sustain_s:.0f} s at a "
                f"constant {rate_ml_h:.2f} mL/h"
            ),
        )
