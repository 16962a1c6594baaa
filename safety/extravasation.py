"""Extravasation by pressure trend (S9): a sustained rise over the running baseline.

An infiltrated cannula pushes into tissue instead of a vein: at a constant rate the line
pressure settles higher than it ran before, and stays there. An occlusion climbs much faster
and is caught first by :mod:`safety.occlusion`; this detector looks for the slow, lasting rise.
The baseline follows the pressure slowly while it is near, freezes once it departs, and starts
again when the rate changes (a new rate has a new free-flow pressure).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtravasationFinding:
    pressure_mmhg: float
    baseline_mmhg: float
    message: str


class InfiltrationDetector:
    """Pressure ``rise_mmhg`` over baseline, held ``sustain_s`` at one rate, means infiltration.

    ``settle_s`` after a start or a rate change the baseline is only learnt; ``tau_s`` is how
    slowly the baseline follows the pressure while it stays within half of ``rise_mmhg``.
    """

    def __init__(
        self,
        *,
        rise_mmhg: float = 20.0,
        sustain_s: float = 60.0,
        settle_s: float = 60.0,
        tau_s: float = 600.0,
    ) -> None:
        self._rise_mmhg = rise_mmhg
        self._sustain_s = sustain_s
        self._settle_s = settle_s
        self._tau_s = tau_s
        self._rate_ml_h: float | None = None
        self._rate_since_s = 0.0
        self._baseline_mmhg: float | None = None
        self._last_t_s: float | None = None
        self._above_since_s: float | None = None

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
            self._above_since_s = t_s
        if t_s - self._above_since_s < self._sustain_s:
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
