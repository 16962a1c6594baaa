"""The closed-loop benchmark's references and bounds (docs/virtual-patient.md, "References").

* :func:`hard_max_bound`, the floor proof. Every stage of the virtual patient is monotone in
  the pump's rate: line concentration and delivered drug rise with the inflow (the line starts
  at most as strong as the syringe), plasma and effect-site levels are positive linear filters
  of the delivered rate, and MAP rises with the effect-site level. Only the rebound knob works
  the other way (a long infusion suppresses the patient's own tone), so leaving it out can only
  raise MAP. Hence the patient on the hard maximum from the first second, through a line
  primed with the syringe's solution, with no pump start-up lag and no rebound, has at every
  moment a MAP at least as high as under any dosing the drug library allows: its time below
  the floor bounds every controller's, and its time to floor bounds the first climb.
* :func:`s3_pace_climb`, what "the hard maximum at the S3 pace" can mean on one patient: the
  climb at S3's pace from the starting dose, with and without S6's rule that no increase is
  made while MAP stands 10 mmHg over the set-point (the supervisor enforces both).
* :func:`s7_wean_hours`, a rule: the weaning guard (S7) takes one step per interval at most.
* :func:`held_arm`, the wean's counterfactual: the same patient and seed, dose held.
  (Both run the model alone through :func:`vasopilot.rig.sim.open_loop_map`.)
* :class:`ReferenceMpc`, two measurements through the same supervisor, slew limits and line
  artefacts as the controllers. *Full-state* reads the virtual patient's state (parameters,
  line and drug levels, MAP0's present wander and event shift, the transducer's gain and
  offset; not the future), forecasts every S3-feasible plan without noise and scores it by the
  expected time in band, the wander's spread growing over the horizon as its OU law says: the
  causal ceiling. *Clairvoyant* also knows the wander's future path and the events to come:
  the model's ceiling and the yardstick for disturbances. Bench only: they need the model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from safety.limits import DoseLimits
from safety.view import SupervisorView
from vasopilot.control.planner import PlanLimits, PlanTuning, best_plan
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.types import Beat, DoseRequest, Requester
from vasopilot.core.units import MINUTES_PER_HOUR, SECONDS_PER_MIN
from vasopilot.rig.sim import open_loop_dosing, open_loop_map

if TYPE_CHECKING:
    from drivers.sim.patient import PatientParams, Scenario, VirtualPatient

BOUND_SAMPLE_S = 2.0
CLAIRVOYANT_SD_MMHG = 0.5  # only to rank near-equal plans: it knows the future exactly


def hard_max_bound(params: PatientParams, scenario: Scenario, seed: int, *, hours: float,
                   hard_max_mcg_min: float, conc_mcg_ml: float) -> tuple[np.ndarray, np.ndarray]:
    """(t s, true MAP) of the highest MAP any permitted dosing can give (module docstring)."""
    return open_loop_map(params, scenario, seed, hours=hours,
                         inflow_ml_h=hard_max_mcg_min / conc_mcg_ml * MINUTES_PER_HOUR,
                         conc_mcg_ml=conc_mcg_ml, sample_s=BOUND_SAMPLE_S, rebound=False)


def held_arm(params: PatientParams, seed: int, *, hours: float,
             conc_mcg_ml: float) -> tuple[np.ndarray, np.ndarray]:
    """(t s, true MAP) of the wean patient with its pre-wean dose held for the whole run (its
    line starts in steady state on that dose)."""
    return open_loop_map(params, "wean", seed, hours=hours,
                         inflow_ml_h=params.initial_dose_mcg_min / conc_mcg_ml * MINUTES_PER_HOUR,
                         conc_mcg_ml=conc_mcg_ml, sample_s=BOUND_SAMPLE_S, primed=False)


# S6: no increase while MAP stands this far over the set-point
S6_NO_INCREASE_ABOVE_SETPOINT_MMHG = 10.0


def s3_pace_climb(params: PatientParams, scenario: Scenario, seed: int, *, start_mcg_min: float,
                  conc_mcg_ml: float, hours: float) -> tuple[float | None, float | None]:
    """(minutes, minutes): when the climb from ``start_mcg_min`` at S3's pace (one slew step per
    interval, the first at once after the start) reaches the hard maximum, and when the same
    climb does with S6 obeyed (a step waits while the patient's monitor MAP stands 10 mmHg over
    the set-point; the step is taken at the first sample it no longer does). The model alone
    (primed line, no pump lag, no artefacts, no volume check); None: not within ``hours``. The
    first is the contract's "S3 pace"; where the second is later, S6 forbids that pace on this
    patient, for every controller under the supervisor."""
    limits = DoseLimits.from_entry(NOREPINEPHRINE, None)
    ceiling = (params.setpoint_mmhg + S6_NO_INCREASE_ABOVE_SETPOINT_MMHG
               - params.transducer_offset_mmhg) / params.calibration_gain  # on the true MAP
    reached: list[float | None] = []
    for obey_s6 in (False, True):
        climb = _Climb(start_mcg_min, limits, None if not obey_s6 else ceiling)
        open_loop_dosing(params, scenario, seed, hours=hours, conc_mcg_ml=conc_mcg_ml,
                         sample_s=BOUND_SAMPLE_S, dose_for=climb.dose_for)
        reached.append(climb.at_max_min)
    return reached[0], reached[1]


class _Climb:
    """One S3-paced climb, step by step (``ceiling_mmhg``: S6's, on the true MAP, or none)."""

    def __init__(self, start_mcg_min: float, limits: DoseLimits,
                 ceiling_mmhg: float | None) -> None:
        self.dose = start_mcg_min
        self.limits = limits
        self.ceiling_mmhg = ceiling_mmhg
        self.last_up_s = -math.inf  # the first step comes at once after the start
        self.at_max_min: float | None = None

    def dose_for(self, t_s: float, true_map_mmhg: float) -> float | None:
        limits = self.limits
        if self.dose >= limits.hard_max - 1e-9:
            self.at_max_min = t_s / SECONDS_PER_MIN
            return None
        held = self.ceiling_mmhg is not None and true_map_mmhg >= self.ceiling_mmhg
        if t_s - self.last_up_s >= limits.min_up_interval_s - 1e-9 and not held:
            self.dose = min(limits.hard_max, self.dose + limits.up_step_at(self.dose))
            self.last_up_s = t_s
        return self.dose


def s7_wean_hours(dose_mcg_min: float) -> float:
    """Hours from ``dose_mcg_min`` down to the final step at S7's pace, never paused."""
    steps = max(0, math.ceil(dose_mcg_min / NOREPINEPHRINE.wean_step - 1e-9) - 1)
    return steps * NOREPINEPHRINE.wean_interval_s / 3600.0


class ReferenceMpc:
    """The full-state (``clairvoyant=False``) or clairvoyant reference (module docstring)."""

    requester = Requester.CONTROLLER

    def __init__(self, patient: VirtualPatient, conc_mcg_ml: float, *, clairvoyant: bool,
                 period_s: float = 30.0, tuning: PlanTuning | None = None) -> None:
        self._patient = patient
        self._conc = conc_mcg_ml
        self.clairvoyant = clairvoyant
        self.mode = "clairvoyant" if clairvoyant else "full-state"
        self._period_s = period_s
        self.tuning = tuning or PlanTuning()
        self._next_s = 0.0
        self._last_dose: float | None = None
        self._last_up_s: float | None = None

    def on_beat(self, beat: Beat) -> None:
        """It reads the patient, not the beats."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        now_s, current = view.t_s, view.dose_mcg_min
        if self._last_dose is not None and current > self._last_dose + 1e-9:
            self._last_up_s = now_s
        self._last_dose = current
        if now_s < self._next_s or not view.running:
            return None
        self._next_s = now_s + self._period_s
        limits = view.limits
        plan = best_plan(
            current, None if self._last_up_s is None else now_s - self._last_up_s,
            PlanLimits.from_view(limits),
            predict=self._predict, floor_mmhg=self._patient.params.floor_mmhg,
            tuning=self.tuning)
        want = plan.first_move_mcg_min
        if abs(want - current) < 1e-9:
            return None
        return DoseRequest(round(want, 2), self.requester, f"{self.mode} reference")

    def _predict(self, doses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self._patient.params
        step_s = self.tuning.step_s
        n = doses.shape[1]
        true = np.array(self._patient.forecast_maps(
            (doses / self._conc * MINUTES_PER_HOUR).tolist(), self._conc, step_s * n, step_s,
            clairvoyant=self.clairvoyant))
        mean = p.calibration_gain * true + p.transducer_offset_mmhg
        if self.clairvoyant:
            return mean, np.full_like(mean, CLAIRVOYANT_SD_MMHG)
        tau_s = p.ou_tau_min * SECONDS_PER_MIN
        spread = p.calibration_gain * p.ou_sigma_mmhg * np.sqrt(
            1.0 - np.exp(-2.0 * step_s * np.arange(1, n + 1) / tau_s)) + 0.1
        return mean, np.broadcast_to(spread, mean.shape)
