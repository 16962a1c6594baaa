"""What no controller can beat: the closed-loop benchmark's three bounds.

* :func:`hard_max_bound`, a proof. Every stage of the virtual patient is monotone in the pump's
  rate: line concentration and delivered drug rise with the inflow (the line starts at most as
  strong as the syringe), plasma and effect-site levels are positive linear filters of the
  delivered rate, and MAP rises with the effect-site level. Only the rebound knob works the
  other way (a long infusion suppresses the patient's own tone), so leaving it out can only
  raise MAP. Hence the patient on the hard maximum from the first second, through a line
  primed with the syringe's solution, with no pump start-up lag and no rebound, has at every
  moment a MAP at least as high as under any dosing the drug library allows. Every moment
  that MAP is below 65 mmHg is below 65 under every controller.
* :func:`s7_wean_hours`, a rule: the weaning guard (S7) takes one step per interval at most,
  so no wean through it ends sooner than that pace allows.
* :class:`PerfectInformationController`, a measurement. It reads the virtual patient itself
  (parameters, drug levels, MAP0's present wander and disturbance shift; not the future noise),
  sees no transducer error, and every 30 s picks the dose whose noise-free forecast over the
  next 15 minutes stays closest to a set-point inside the band, penalising every mmHg under
  65 twenty-fold. It still goes through the same supervisor, slew limits and line artefacts
  as the real controllers: a practical ceiling for a causal controller on this model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from safety.view import SupervisorView
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.types import Beat, DoseRequest, Requester
from vasopilot.core.units import MINUTES_PER_HOUR
from vasopilot.metrics import MapMetrics, map_metrics
from vasopilot.rig.sim import open_loop_map

if TYPE_CHECKING:
    from drivers.sim.patient import PatientParams, Scenario, VirtualPatient

HYPOTENSION_MMHG = 65.0
BOUND_SAMPLE_S = 2.0


def hard_max_bound(params: PatientParams, scenario: Scenario, seed: int, *, hours: float,
                   hard_max_mcg_min: float, conc_mcg_ml: float) -> MapMetrics:
    """Metrics of the highest MAP any permitted dosing can give (see the module docstring).
    Of them, ``map_below_65_pct`` and ``map_below_60_pct`` are lower bounds for every
    controller; the rest describe that (hypertensive) trajectory, not a bound."""
    t, map_mmhg = open_loop_map(params, scenario, seed, hours=hours,
                                inflow_ml_h=hard_max_mcg_min / conc_mcg_ml * MINUTES_PER_HOUR,
                                conc_mcg_ml=conc_mcg_ml, sample_s=BOUND_SAMPLE_S,
                                rebound=False)
    return map_metrics(t, map_mmhg, params.target_map_mmhg)


def s7_wean_hours(dose_mcg_min: float) -> float:
    """Hours from ``dose_mcg_min`` down to the final step at S7's pace, never paused."""
    steps = max(0, math.ceil(dose_mcg_min / NOREPINEPHRINE.wean_step - 1e-9) - 1)
    return steps * NOREPINEPHRINE.wean_interval_s / 3600.0


@dataclasses.dataclass(frozen=True)
class OracleTuning:
    period_s: float = 30.0
    horizon_s: float = 900.0
    # forecast points before this cannot be changed much by a dose chosen now
    ignore_first_s: float = 60.0
    aim_mmhg: float = 2.5
    below_weight: float = 20.0
    steps_mcg_min: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)


class PerfectInformationController:
    """The benchmark's perfect-information controller (module docstring); bench only."""

    mode = "oracle"
    requester = Requester.CONTROLLER

    def __init__(self, patient: VirtualPatient, conc_mcg_ml: float,
                 tuning: OracleTuning | None = None) -> None:
        self._patient = patient
        self._conc = conc_mcg_ml
        self.tuning = tuning or OracleTuning()
        self._next_s = 0.0
        self._last_dose: float | None = None
        self._last_up_s: float | None = None

    def on_beat(self, beat: Beat) -> None:
        """It reads the patient, not the beats."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        now_s, current = view.t_s, view.dose_mcg_min
        if self._last_dose is not None and current > self._last_dose:
            self._last_up_s = now_s
        self._last_dose = current
        if now_s < self._next_s or not view.running:
            return None
        self._next_s = now_s + self.tuning.period_s
        up_allowed = (self._last_up_s is None
                      or now_s - self._last_up_s >= view.limits.min_up_interval_s)
        candidates = [current]
        for step in self.tuning.steps_mcg_min:
            dose = min(view.limits.hard_max, max(0.0, current + step))
            if step > 0 and not up_allowed:
                continue
            if abs(dose - current) > 1e-9:
                candidates.append(dose)
        best = min(candidates, key=lambda dose: self._cost(dose, view.target_map_mmhg))
        if best == current:
            return None
        return DoseRequest(round(best, 2), self.requester, "perfect-information bound")

    def _cost(self, dose_mcg_min: float, target_mmhg: float) -> float:
        t = self.tuning
        step_s = 10.0
        forecast = self._patient.forecast_map(dose_mcg_min / self._conc * MINUTES_PER_HOUR,
                                              self._conc, t.horizon_s, step_s)
        setpoint = target_mmhg + t.aim_mmhg
        floor = max(HYPOTENSION_MMHG, target_mmhg - 5.0)
        skip = math.ceil(t.ignore_first_s / step_s)
        return sum((m - setpoint) ** 2 + t.below_weight * max(0.0, floor - m) ** 2
                   for m in forecast[skip:])
