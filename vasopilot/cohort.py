"""Seeded cohort benchmark of docs/virtual-patient.md: controllers, references, strata.

Every patient of the seeded cohort (``vasopilot.rig.sim.draw_patients``) runs under each
controller through :func:`~vasopilot.simulate.run_sim` (same supervisor, pump twin and virtual
patient as ``vasopilot sim``, no journal): the closed loop (the model-predictive controller; the
wean mode in the wean scenario), the nurse protocol and, with ``bound``, the full-state and
clairvoyant references. One process-pool task is one patient under all of them, so the per-
patient ratios (time to floor against full-state, time in band against clairvoyant, the
avoidable deficit, the wean time against the protocol's) are taken on the same patient; the
floor proof and the wean's held arm are computed there once.

Scoring: the monitor MAP (gain and levelling offset in, beat noise out) is primary, the model's
true MAP beside it. Strata: the drawn ones (stable, hypertensive, refractory) and, from each
patient's need at its starting MAP0 and set-point, reachable / out of reach (need above the
hard maximum, or no dose reaches it).

The benchmark runs the 8 mg/50 mL solution (160 mcg/mL): at the library's 80 mcg/mL a
refractory patient on the 30 mcg/min soft maximum empties the 50 mL syringe in about 2.2 h.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from safety.limits import DoseLimits
from vasopilot.bounds import ReferenceMpc, hard_max_bound, held_arm, s3_pace_climb, s7_wean_hours
from vasopilot.control.base import Controller
from vasopilot.control.mpc import LineModel, MpcController
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import AlarmCleared, AlarmCode, AlarmRaised, DoseApplied, Event
from vasopilot.metrics import (
    DoseChange,
    MapMetrics,
    WeanMetrics,
    artefact_increases,
    dose_changes_per_h,
    map_metrics,
    wean_metrics,
)
from vasopilot.rig.sim import draw_patients, scenario_events
from vasopilot.settings import RigConfig, load_rig
from vasopilot.simulate import SimOptions, run_sim

if TYPE_CHECKING:
    from drivers.sim.patient import PatientParams, Scenario, VirtualPatient

ControllerName = Literal["closed-loop", "protocol", "full-state", "clairvoyant"]
CONTROLLERS: tuple[ControllerName, ...] = ("closed-loop", "protocol")
REFERENCES: tuple[ControllerName, ...] = ("full-state", "clairvoyant")
StratumName = Literal["all", "reachable", "out-of-reach", "stable", "hypertensive", "refractory"]
STRATA: tuple[StratumName, ...] = ("all", "reachable", "out-of-reach", "stable", "hypertensive",
                                   "refractory")
BENCH_CONC_MCG_ML = 160.0
TRACE_EVERY_S = 60


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    scenario: Scenario = "resuscitate"
    patients: int = 100
    seed: int = 1
    hours: float = 4.0
    dt_s: float = 2.0
    artefacts_per_h: float = 4.0
    conc_mcg_ml: float = BENCH_CONC_MCG_ML
    workers: int = 2
    # the optional ±10 % transducer calibration error of docs/virtual-patient.md (30 % of
    # patients); off by default so the headline scores the controllers, on for the robustness run
    calibration_error: bool = False
    # also run the full-state and clairvoyant references and the floor proof
    bound: bool = False
    # the line, a scenario option (docs/virtual-patient.md): primed and carrier-free by default
    carrier_ml_h: float = 0.0
    primed_line: bool = True

    @property
    def controllers(self) -> tuple[ControllerName, ...]:
        return (*CONTROLLERS, *REFERENCES) if self.bound else CONTROLLERS


class PatientOutcome(BaseModel):
    """One patient under one controller. ``monitor`` and ``true`` are the yardstick on the
    monitor MAP and the true MAP; ``trace_mmhg`` the monitor MAP every minute. Ratios against
    a reference are None when it did not run. ``floor``: the floor proof's metrics (on the
    full-state outcome only)."""

    controller: ControllerName
    index: int
    stratum: str
    weight_kg: float
    need_mcg_min: float | None  # steady state at the start's MAP0 and set-point; None: never
    out_of_reach: bool
    # out of reach even with the patient's own tone intact (the need without the rebound
    # knob's suppression): the rest of the stratum is out of reach only once the infusion has
    # suppressed that tone, which no look before the rebound develops can tell from a
    # reachable patient (the same patient without the knob)
    out_of_reach_without_rebound: bool = False
    monitor: MapMetrics
    true: MapMetrics
    total_drug_mcg_per_kg: float
    dose_changes_per_h: float
    artefact_increases: int
    time_to_floor_ratio: float | None = None
    tib_ratio_to_clairvoyant: float | None = None
    avoidable_deficit_mmhg_min: float | None = None
    # the wean scenario
    wean: WeanMetrics | None = None
    weanable: bool | None = None
    wean_excess_h: float | None = None
    wean_ratio_to_protocol: float | None = None
    # out-of-reach figures: minutes to the hard maximum beyond S3's pace from the start (the
    # time no increase could be made not counted), the same from the last time MAP stood at
    # the set-point before it, and to the TARGET_UNREACHABLE alarm (the closed loop raises it)
    hard_max_lag_min: float | None = None
    hard_max_fall_lag_min: float | None = None
    unreachable_min: float | None = None
    # the alarm was true when it came: the floor proof (the hard maximum from t = 0, no
    # rebound: the highest MAP any dosing can give) had the monitor MAP under the set-point then
    unreachable_proven: bool | None = None
    # out-of-reach patients: how much later than S3's pace S6 lets any climb reach the hard
    # maximum (vasopilot.bounds.s3_pace_climb; None: it does not within the run)
    s6_pace_delay_min: float | None = None
    floor: MapMetrics | None = None
    trace_mmhg: list[float]

    @property
    def reachable(self) -> bool:
        return not self.out_of_reach

    def in_stratum(self, stratum: StratumName) -> bool:
        if stratum == "all":
            return True
        if stratum == "reachable":
            return self.reachable
        if stratum == "out-of-reach":
            return self.out_of_reach
        return self.stratum == stratum


class CohortSummary(BaseModel):
    """One ``--json`` line: one (controller, stratum). Medians unless named otherwise;
    ``artefact_increases``, ``diverged``, ``weanable``, ``weaned_unweanable`` are totals."""

    model_config = ConfigDict(extra="forbid")

    controller: ControllerName
    scenario: str
    stratum: StratumName
    patients: int
    tib_pct: float | None
    tib_p25_pct: float | None
    below_floor_pct: float | None
    below_floor5_pct: float | None
    above_pct: float | None
    mdpe_pct: float | None
    mdape_pct: float | None
    wobble_pct: float | None
    divergence_pct_per_h: float | None
    time_to_floor_min: float | None
    time_to_floor_ratio: float | None
    dose_changes_per_h: float | None
    total_drug_mcg_per_kg: float | None
    true_tib_pct: float | None
    true_below_floor_pct: float | None
    artefact_increases: int
    diverged: int
    tib_ratio_to_clairvoyant: float | None
    avoidable_deficit_mmhg_min: float | None
    event_recovery_min: float | None
    weanable: int | None
    wean_excess_h: float | None
    not_weaned_pct: float | None
    weaned_unweanable: int | None
    excess_rebound_low5: float | None
    excess_rebound_low5_p90: float | None
    excess_rebound_floor: float | None
    wean_ratio_to_protocol: float | None


# one controller's run of one patient: outcome, sample times, monitor MAP, dose changes
_Run = tuple[PatientOutcome, np.ndarray, np.ndarray, list[DoseChange]]


def bench_config(conc_mcg_ml: float) -> RigConfig:
    config = load_rig(None)
    return dataclasses.replace(
        config, drug=config.drug.model_copy(update={"conc_mcg_ml": conc_mcg_ml}))


def _dose_changes(events: Sequence[Event]) -> list[DoseChange]:
    applied = [e for e in events if isinstance(e, DoseApplied)]
    # the first is the operator's starting dose, not a controller's decision
    return [DoseChange(e.t_s, e.previous_dose_mcg_min, e.dose_mcg_min) for e in applied[1:]]


def wean_physiology_h(params: PatientParams, hours: float) -> float | None:
    """T_phys: hours until the noise-free need to hold the floor along MAP0's recovery trend
    falls to the final wean step, the rebound knob's steady suppression at that need included
    (None: not within ``hours``, the patient is not weanable in the run). The floor's need, not
    the set-point's: weaning is judged against the floor (S7, and "wean to off without rebound
    hypotension"), so a patient whose own MAP holds F off his drug is weanable."""
    final = NOREPINEPHRINE.wean_step
    for minute in range(int(hours * 60) + 1):
        x = min(1.0, minute / 60.0 / params.recovery_h)
        map0 = params.map0_mmhg + params.recovery_mmhg * x * x * (3.0 - 2.0 * x)
        if params.steady_need_mcg_min(map0, params.floor_mmhg) <= final + 1e-9:
            return minute / 60.0
    return None


def _controller_for(name: ControllerName, options: BenchOptions,
                    params: PatientParams) -> Callable[[VirtualPatient], Controller] | None:
    if name in REFERENCES:
        def reference(patient: VirtualPatient) -> Controller:
            return ReferenceMpc(patient, options.conc_mcg_ml, clairvoyant=name == "clairvoyant")
        return reference
    if name == "closed-loop" and options.scenario != "wean":
        def mpc(patient: VirtualPatient) -> Controller:
            return MpcController(LineModel(
                dead_volume_ml=params.dead_volume_ml, carrier_ml_h=options.carrier_ml_h,
                conc_mcg_ml=options.conc_mcg_ml, primed=options.primed_line))
        return mpc
    return None


def _run_one(options: BenchOptions, name: ControllerName, index: int,
             params: PatientParams) -> _Run:
    seed = options.seed + index
    mode = "wean" if name == "closed-loop" and options.scenario == "wean" else name
    sim = SimOptions(scenario=options.scenario, hours=options.hours, seed=seed, mode=mode,
                     dt_s=options.dt_s, artefacts_per_h=options.artefacts_per_h,
                     nurse_confirms_soft_max=True, spare_syringe=True,
                     carrier_ml_h=options.carrier_ml_h, primed_line=options.primed_line)
    result = run_sim(bench_config(options.conc_mcg_ml), sim, params=params,
                     controller_for=_controller_for(name, options, params))
    t = np.array([x for x, _ in result.true_map])
    true = np.array([y for _, y in result.true_map])
    monitor = params.calibration_gain * true + params.transducer_offset_mmhg
    events = (scenario_events(params, options.scenario, seed)
              if options.scenario == "disturbance" else [])
    changes = _dose_changes(result.events)
    artefact_spans = [(a.start_t_s, a.end_t_s) for a in result.artefacts]
    need = params.steady_need_mcg_min()
    step = max(1, round(TRACE_EVERY_S / (t[1] - t[0]))) if t.size > 1 else 1
    outcome = PatientOutcome(
        controller=name, index=index, stratum=params.stratum, weight_kg=params.weight_kg,
        need_mcg_min=None if math.isinf(need) else need,
        out_of_reach=need > NOREPINEPHRINE.hard_max,
        out_of_reach_without_rebound=out_of_reach_without_rebound(params),
        monitor=map_metrics(t, monitor, params.floor_mmhg, events=events),
        true=map_metrics(t, true, params.floor_mmhg, events=events),
        total_drug_mcg_per_kg=result.summary.total_drug_mcg / params.weight_kg,
        dose_changes_per_h=dose_changes_per_h(changes, options.hours),
        artefact_increases=artefact_increases(changes, artefact_spans),
        trace_mmhg=[float(x) for x in monitor[::step]],
    )
    outcome = outcome.model_copy(update=_reach_figures(
        changes, result.events, artefact_spans, t_s=t, monitor_mmhg=monitor,
        setpoint_mmhg=params.setpoint_mmhg))
    return outcome, t, monitor, changes


def out_of_reach_without_rebound(params: PatientParams) -> bool:
    """Out of reach with the patient's own tone intact: the need at the starting MAP0 and
    set-point without the rebound knob's suppression is above the hard maximum."""
    return params.need_mcg_min() > NOREPINEPHRINE.hard_max


def climb_blocked_s(events: Sequence[Event], artefacts: Sequence[tuple[float, float]],
                    until_s: float) -> float:
    """Seconds before ``until_s`` when no increase could be made: an injected artefact present
    (S5, and the issue's rule: never raise around an artefact) or a volume check open while the
    next step would pass the soft maximum (GR1 refuses such a step until the check is
    answered). The union of the spans."""
    soft_max, step = NOREPINEPHRINE.soft_max, NOREPINEPHRINE.max_up_step
    spans = list(artefacts)
    opened: float | None = None
    dose, check_open = 0.0, False
    for e in events:
        if isinstance(e, DoseApplied):
            dose = e.dose_mcg_min
        elif isinstance(e, AlarmRaised | AlarmCleared) and e.code is AlarmCode.VOLUME_CHECK:
            check_open = isinstance(e, AlarmRaised)
        blocking = check_open and dose + step > soft_max + 1e-9
        if blocking and opened is None:
            opened = e.t_s
        elif not blocking and opened is not None:
            spans.append((opened, e.t_s))
            opened = None
    if opened is not None:
        spans.append((opened, until_s))
    total, reached = 0.0, 0.0
    for span_start, span_end in sorted(spans):
        start, end = max(span_start, reached), min(span_end, until_s)
        if end > start:
            total += end - start
            reached = end
    return total


def _reach_figures(changes: Sequence[DoseChange], events: Sequence[Event],
                   artefacts: Sequence[tuple[float, float]], *, t_s: np.ndarray,
                   monitor_mmhg: np.ndarray, setpoint_mmhg: float) -> dict[str, float]:
    """Minutes to the hard maximum beyond S3's pace (the time no increase could be made not
    counted, :func:`climb_blocked_s`): from the starting dose at the start (the contract's), and
    from the dose running when the monitor MAP last stood at the set-point before it (the climb
    a controller could know it owed); minutes to the first TARGET_UNREACHABLE alarm."""
    hard_max = NOREPINEPHRINE.hard_max
    interval_s = NOREPINEPHRINE.min_up_interval_s
    figures: dict[str, float] = {}
    at_max = next((c.t_s for c in changes if c.dose_mcg_min >= hard_max - 1e-6), None)
    if at_max is not None:
        start = changes[0].previous_mcg_min if changes else 0.0
        pace_s = max(0, s3_steps(start, hard_max) - 1) * interval_s
        figures["hard_max_lag_min"] = (at_max - pace_s - climb_blocked_s(events, artefacts,
                                                                          at_max)) / 60.0
        at_target = np.flatnonzero((monitor_mmhg >= setpoint_mmhg) & (t_s <= at_max))
        fall_s = float(t_s[at_target[-1]]) if at_target.size else 0.0
        dose = next((c.previous_mcg_min for c in changes if c.t_s > fall_s), start)
        # one slew step may follow the fall at once (S3's interval has long passed, or not:
        # then the step waits, which counts against the controller as anywhere else)
        pace_s = max(0, s3_steps(dose, hard_max) - 1) * interval_s
        blocked_s = (climb_blocked_s(events, artefacts, at_max)
                     - climb_blocked_s(events, artefacts, fall_s))
        figures["hard_max_fall_lag_min"] = (at_max - fall_s - pace_s - blocked_s) / 60.0
    alarm = next((e.t_s for e in events if isinstance(e, AlarmRaised)
                  and e.code is AlarmCode.TARGET_UNREACHABLE), None)
    if alarm is not None:
        figures["unreachable_min"] = alarm / 60.0
    return figures


def s3_steps(from_mcg_min: float, to_mcg_min: float) -> int:
    """Up-steps S3 needs from one dose to another: +max(2 mcg/min, 20 %) each."""
    limits = DoseLimits.from_entry(NOREPINEPHRINE, None)
    dose, steps = from_mcg_min, 0
    while dose < to_mcg_min - 1e-9:
        dose = min(to_mcg_min, dose + limits.up_step_at(dose))
        steps += 1
    return steps


def run_patient(job: tuple[BenchOptions, int, PatientParams]) -> list[PatientOutcome]:
    """One patient under every controller (a process-pool task: plain, picklable input)."""
    options, index, params = job
    runs = {name: _run_one(options, name, index, params) for name in options.controllers}
    outcomes = {name: run[0] for name, run in runs.items()}
    seed = options.seed + index
    full, clair = outcomes.get("full-state"), outcomes.get("clairvoyant")
    alarmed = {name: o.unreachable_min for name, o in outcomes.items()
               if o.unreachable_min is not None}
    floor_proof: tuple[np.ndarray, np.ndarray] | None = None
    if alarmed or full is not None:  # worked out once for both of its uses
        floor_proof = hard_max_bound(params, options.scenario, seed, hours=options.hours,
                                     hard_max_mcg_min=NOREPINEPHRINE.hard_max,
                                     conc_mcg_ml=options.conc_mcg_ml)
    if alarmed:
        assert floor_proof is not None
        t, best_true = floor_proof
        best = params.calibration_gain * best_true + params.transducer_offset_mmhg
        for name, at_min in alarmed.items():
            i = min(int(np.searchsorted(t, at_min * 60.0)), t.size - 1)
            outcomes[name] = outcomes[name].model_copy(
                update={"unreachable_proven": bool(best[i] < params.setpoint_mmhg)})
    if params.steady_need_mcg_min() > NOREPINEPHRINE.hard_max and options.scenario != "wean":
        start = next(iter(runs.values()))[3]
        pace, s6_pace = s3_pace_climb(
            params, options.scenario, seed, hours=options.hours, conc_mcg_ml=options.conc_mcg_ml,
            start_mcg_min=start[0].previous_mcg_min if start else params.initial_dose_mcg_min)
        delay = None if pace is None or s6_pace is None else s6_pace - pace
        outcomes = {name: o.model_copy(update={"s6_pace_delay_min": delay})
                    for name, o in outcomes.items()}
    if full is not None:
        assert floor_proof is not None
        t, floor_true = floor_proof
        outcomes["full-state"] = full.model_copy(update={"floor": map_metrics(
            t, params.calibration_gain * floor_true + params.transducer_offset_mmhg,
            params.floor_mmhg)})
    for name, o in outcomes.items():
        update: dict[str, float | None] = {}
        if full is not None and o.monitor.time_to_floor_min is not None \
                and full.monitor.time_to_floor_min:
            update["time_to_floor_ratio"] = (o.monitor.time_to_floor_min
                                             / full.monitor.time_to_floor_min)
        if clair is not None and clair.monitor.tib_pct > 0:
            update["tib_ratio_to_clairvoyant"] = o.monitor.tib_pct / clair.monitor.tib_pct
        if clair is not None and options.scenario == "disturbance":
            update["avoidable_deficit_mmhg_min"] = (
                sum(e.deficit_mmhg_min for e in o.monitor.events)
                - sum(e.deficit_mmhg_min for e in clair.monitor.events))
        outcomes[name] = o.model_copy(update=update)
    if options.scenario == "wean":
        _score_weans(options, params, seed, runs, outcomes)
    return list(outcomes.values())


def _score_weans(options: BenchOptions, params: PatientParams, seed: int,
                 runs: dict[ControllerName, _Run],
                 outcomes: dict[ControllerName, PatientOutcome]) -> None:
    held_t, held_true = held_arm(params, seed, hours=options.hours,
                                 conc_mcg_ml=options.conc_mcg_ml)
    held_monitor = params.calibration_gain * held_true + params.transducer_offset_mmhg
    t_phys = wean_physiology_h(params, options.hours)
    t_s7 = s7_wean_hours(params.initial_dose_mcg_min)
    for name, (_, t, monitor, changes) in runs.items():
        held = np.interp(t, held_t, held_monitor)
        wean = wean_metrics(t, monitor, held, changes, floor_mmhg=params.floor_mmhg,
                            start_t_s=0.0, final_dose_mcg_min=NOREPINEPHRINE.wean_step)
        off_h = options.hours if wean.off_h is None else wean.off_h
        outcomes[name] = outcomes[name].model_copy(update={
            "wean": wean, "weanable": t_phys is not None,
            "wean_excess_h": None if t_phys is None else off_h - max(t_phys, t_s7)})
    # the ratio of wean time to the protocol's is a wean time's, so only a weanable patient
    # has one: an unweanable patient has no wean time to compare (either arm is right to keep
    # him on his drug, and where the protocol weans him anyway a ratio would score the arm
    # that does not as the slower one), as wean_excess_h and not_weaned_pct are over the
    # weanable patients too
    protocol = outcomes.get("protocol")
    if t_phys is not None and protocol is not None and protocol.wean is not None:
        protocol_h = options.hours if protocol.wean.off_h is None else protocol.wean.off_h
        for name, o in outcomes.items():
            if o.wean is not None and protocol_h > 0:
                off_h = options.hours if o.wean.off_h is None else o.wean.off_h
                outcomes[name] = o.model_copy(update={"wean_ratio_to_protocol": off_h / protocol_h})


def run_cohort(options: BenchOptions) -> list[PatientOutcome]:
    cohort = draw_patients(options.patients, options.seed, options.scenario,
                           calibration_error=options.calibration_error)
    jobs = [(options, i, p) for i, p in enumerate(cohort)]
    if options.workers <= 1:
        return [o for job in jobs for o in run_patient(job)]
    with ProcessPoolExecutor(options.workers) as pool:
        return [o for outcomes in pool.map(run_patient, jobs) for o in outcomes]


# -- summaries ------------------------------------------------------------------------------

def _median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def summarize(outcomes: Sequence[PatientOutcome], controller: ControllerName, scenario: str,
              stratum: StratumName = "all") -> CohortSummary:
    mine = [o for o in outcomes if o.controller == controller and o.in_stratum(stratum)]
    reachable = [o for o in mine if o.reachable]
    disturbance = scenario == "disturbance"
    wean = scenario == "wean"
    weanable = [o for o in mine if o.weanable]
    not_weaned = [o for o in weanable if o.wean is not None and o.wean.off_h is None]
    low5 = [float(o.wean.excess_rebound_low5) for o in mine if o.wean is not None]
    recoveries = [e.recovery_min for o in mine for e in o.monitor.events
                  if e.amplitude_mmhg < 0]
    return CohortSummary(
        controller=controller, scenario=scenario, stratum=stratum, patients=len(mine),
        tib_pct=_median([o.monitor.tib_pct for o in mine]),
        tib_p25_pct=_quantile([o.monitor.tib_pct for o in mine], 0.25),
        below_floor_pct=_median([o.monitor.below_floor_pct for o in mine]),
        below_floor5_pct=_median([o.monitor.below_floor5_pct for o in mine]),
        above_pct=_median([o.monitor.above_pct for o in mine]),
        mdpe_pct=_median([o.monitor.mdpe_pct for o in mine]),
        mdape_pct=_median([o.monitor.mdape_pct for o in mine]),
        wobble_pct=_median([o.monitor.wobble_pct for o in mine]),
        divergence_pct_per_h=_median([o.monitor.divergence_pct_per_h for o in reachable]),
        time_to_floor_min=_median([o.monitor.time_to_floor_min for o in mine]),
        time_to_floor_ratio=_median([o.time_to_floor_ratio for o in mine]),
        dose_changes_per_h=_median([o.dose_changes_per_h for o in mine]),
        total_drug_mcg_per_kg=_median([o.total_drug_mcg_per_kg for o in mine]),
        true_tib_pct=_median([o.true.tib_pct for o in mine]),
        true_below_floor_pct=_median([o.true.below_floor_pct for o in mine]),
        artefact_increases=sum(o.artefact_increases for o in mine),
        diverged=sum(o.monitor.divergence_pct_per_h > 0 for o in reachable),
        tib_ratio_to_clairvoyant=(_median([o.tib_ratio_to_clairvoyant for o in mine])
                                  if disturbance else None),
        avoidable_deficit_mmhg_min=(_median([o.avoidable_deficit_mmhg_min for o in mine])
                                    if disturbance else None),
        event_recovery_min=_median(recoveries) if disturbance else None,
        weanable=len(weanable) if wean else None,
        wean_excess_h=_median([o.wean_excess_h for o in weanable]) if wean else None,
        not_weaned_pct=(100.0 * len(not_weaned) / len(weanable)
                        if wean and weanable else None),
        weaned_unweanable=(sum(1 for o in mine if o.weanable is False and o.wean is not None
                               and o.wean.off_h is not None) if wean else None),
        excess_rebound_low5=_median(low5) if wean else None,
        excess_rebound_low5_p90=_quantile(low5, 0.9) if wean else None,
        excess_rebound_floor=(_median([float(o.wean.excess_rebound_floor) for o in mine
                                       if o.wean is not None]) if wean else None),
        wean_ratio_to_protocol=(_median([o.wean_ratio_to_protocol for o in weanable])
                                if wean else None),
    )


def summaries(outcomes: Sequence[PatientOutcome], options: BenchOptions) -> list[CohortSummary]:
    """Every (controller, stratum) line of the ``--json`` contract (an empty stratum too:
    ``patients`` 0 and null medians)."""
    return [summarize(outcomes, controller, options.scenario, stratum)
            for controller in options.controllers for stratum in STRATA]
