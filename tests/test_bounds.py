"""The benchmark's references: the patient's forecasts, the floor proof, the reference MPCs."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim.patient import VirtualPatient, draw_cohort
from vasopilot.bounds import ReferenceMpc, hard_max_bound, held_arm, s3_pace_climb, s7_wean_hours
from vasopilot.cohort import bench_config, s3_steps
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import DoseApplied
from vasopilot.metrics import map_metrics
from vasopilot.simulate import SimOptions, run_sim

CONC = 160.0
PATIENTS = draw_cohort(12, 3, "disturbance")


def _ml_h(mcg_min: float) -> float:
    return mcg_min / CONC * 60.0


def test_forecast_follows_the_noise_free_patient_through_a_dose_change() -> None:
    params = replace(PATIENTS[1], ou_sigma_mmhg=1e-9)
    patient = VirtualPatient(params, "resuscitate", 5, conc_mcg_ml=CONC)
    for k in range(1, 601):  # 20 min on 4 mcg/min
        patient.step(k * 2.0, _ml_h(4.0), CONC)
    forecast = patient.forecast_map(_ml_h(9.0), CONC, 900.0, 10.0)
    actual = []
    for k in range(601, 601 + 450):
        patient.step(k * 2.0, _ml_h(9.0), CONC)
        if (k - 600) % 5 == 0:
            actual.append(patient.true_map_mmhg)
    assert max(actual) - actual[0] > 3.0  # the change does act within the horizon
    assert np.max(np.abs(np.array(forecast) - np.array(actual))) < 0.1


def test_a_schedule_of_one_rate_is_that_rate() -> None:
    patient = VirtualPatient(PATIENTS[2], "disturbance", 3, conc_mcg_ml=CONC)
    for k in range(1, 301):
        patient.step(k * 2.0, _ml_h(6.0), CONC)
    assert patient.forecast_map([_ml_h(8.0)] * 60, CONC, 600.0) == \
        patient.forecast_map(_ml_h(8.0), CONC, 600.0)


@pytest.mark.parametrize("clairvoyant", [False, True])
def test_plans_forecast_together_are_each_plan_forecast_alone(clairvoyant: bool) -> None:
    """The references forecast every candidate plan in one call: nothing of one plan may leak
    into the next, and the shared parts are the ones a single forecast works out."""
    patient = VirtualPatient(PATIENTS[5], "disturbance", 4, conc_mcg_ml=CONC)
    for k in range(1, 901):
        patient.step(k * 2.0, _ml_h(3.0 + (k // 60) % 4), CONC)
    plans = [[_ml_h(4.0)] * 90, [_ml_h(4.0 + 0.5 * j) for j in range(90)],
             [_ml_h(0.0)] * 30 + [_ml_h(12.0)] * 60]
    together = patient.forecast_maps(plans, CONC, 900.0, 10.0, clairvoyant=clairvoyant)
    alone = [patient.forecast_map(plan, CONC, 900.0, 10.0, clairvoyant=clairvoyant)
             for plan in plans]
    assert together == alone
    assert together[0] != together[2]


def test_the_clairvoyant_forecast_is_the_future_and_the_state_forecast_is_not() -> None:
    # with its wander and events on, only the clairvoyant forecast follows the patient exactly
    params = PATIENTS[4]
    patient = VirtualPatient(params, "disturbance", 8, conc_mcg_ml=CONC)
    start = round(patient.events[0].start_t_s / 2.0) - 150  # 5 min before the first event
    for k in range(1, start + 1):
        patient.step(k * 2.0, _ml_h(5.0), CONC)
    clairvoyant = patient.forecast_map(_ml_h(5.0), CONC, 1800.0, clairvoyant=True)
    state = patient.forecast_map(_ml_h(5.0), CONC, 1800.0)
    actual = []
    for k in range(start + 1, start + 901):
        patient.step(k * 2.0, _ml_h(5.0), CONC)
        if (k - start) % 5 == 0:
            actual.append(patient.true_map_mmhg)
    assert np.max(np.abs(np.array(clairvoyant) - np.array(actual))) < 0.1
    assert np.max(np.abs(np.array(state) - np.array(actual))) > 5.0  # the event comes


@settings(max_examples=15, deadline=None)
@given(index=st.integers(0, len(PATIENTS) - 1),
       doses=st.lists(st.floats(0.0, NOREPINEPHRINE.hard_max), min_size=1, max_size=12))
def test_no_permitted_dosing_raises_map_above_the_hard_max_bound(
        index: int, doses: list[float]) -> None:
    # the same patient (rebound knob on, line starting drug-free) on any piecewise-constant
    # dosing up to the hard maximum, against the bound's patient: never a higher MAP
    params, seed, hours = PATIENTS[index], 11 + index, 1.0
    bound = VirtualPatient(replace(params, rebound_mmhg=0.0), "disturbance", seed,
                           conc_mcg_ml=CONC)
    bound.prime_line(CONC)
    anyone = VirtualPatient(params, "disturbance", seed, conc_mcg_ml=CONC)
    steps = round(hours * 1800)
    for k in range(1, steps + 1):
        dose = doses[min(len(doses) - 1, k * len(doses) // steps)]
        bound.step(k * 2.0, _ml_h(NOREPINEPHRINE.hard_max), CONC)
        anyone.step(k * 2.0, _ml_h(dose), CONC)
        assert anyone.true_map_mmhg <= bound.true_map_mmhg + 1e-9


def test_hard_max_bound_counts_the_climb_every_controller_must_make() -> None:
    params = PATIENTS[0]
    t, floor = hard_max_bound(params, "resuscitate", 7, hours=1.0,
                              hard_max_mcg_min=NOREPINEPHRINE.hard_max, conc_mcg_ml=CONC)
    assert params.map0_mmhg < 60.0
    # the patient starts below 60 and cannot be above the floor at once, however it is dosed
    metrics = map_metrics(t, floor, params.floor_mmhg)
    assert metrics.time_to_floor_min is not None and metrics.time_to_floor_min > 0.0
    assert metrics.induction_deficit_mmhg_min > 0.0


def test_the_held_arm_holds_the_pre_wean_dose_in_steady_state() -> None:
    params = replace(draw_cohort(3, 2, "wean")[1], ou_sigma_mmhg=1e-9)
    _, held = held_arm(params, 5, hours=0.5, conc_mcg_ml=CONC)
    # at the start and after half an hour on the same dose: the set-point, plus the trend
    assert held[0] == pytest.approx(params.setpoint_mmhg, abs=1.0)
    assert abs(held[-1] - held[0]) < 3.0


@pytest.mark.parametrize("clairvoyant", [False, True])
def test_reference_mpcs_dose_only_through_the_supervisor_within_s3(clairvoyant: bool) -> None:
    params = replace(draw_cohort(8, 1, "resuscitate")[7], calibration_gain=1.0)
    result = run_sim(
        bench_config(CONC),
        SimOptions(scenario="resuscitate", hours=2.0, seed=8, dt_s=2.0),
        params=params,
        controller_for=lambda patient: ReferenceMpc(patient, CONC, clairvoyant=clairvoyant))
    applied = [e for e in result.events if isinstance(e, DoseApplied)][1:]
    assert applied
    ups = [e for e in applied if e.dose_mcg_min > e.previous_dose_mcg_min]
    # S3: +max(2 mcg/min, 20 % of the running dose) a step
    assert all(e.dose_mcg_min - e.previous_dose_mcg_min
               <= max(2.0, 0.2 * e.previous_dose_mcg_min) + 1e-9 for e in ups)
    assert any(e.dose_mcg_min - e.previous_dose_mcg_min > 2.0 + 1e-9 for e in ups)
    assert all(b.t_s - a.t_s >= 120.0 - 1e-9 for a, b in pairwise(ups))
    t = [x for x, _ in result.true_map]
    m = [params.monitor_map_mmhg(y) for _, y in result.true_map]
    assert map_metrics(t, m, params.floor_mmhg).tib_pct > 70.0


def test_s7_pace_counts_whole_steps_down_to_the_final_one() -> None:
    # the wean ends at the final step (1 mcg/min), one step per 15 min
    assert s7_wean_hours(14.5) == 14 * 0.25
    assert s7_wean_hours(2.0) == 0.25
    assert s7_wean_hours(1.0) == 0.0
    assert s7_wean_hours(0.5) == 0.0


def test_the_s3_pace_reaches_the_hard_max_in_its_steps_and_s6_holds_it_over_the_band() -> None:
    base = draw_cohort(1, 1, "resuscitate")[0]
    pace_min = (s3_steps(10.0, NOREPINEPHRINE.hard_max) - 1) * NOREPINEPHRINE.min_up_interval_s / 60
    # out of reach (Emax 8 mmHg): MAP never nears S6's set-point + 10, so S6 costs nothing
    weak = replace(base, emax_mmhg=8.0, calibration_gain=1.0)
    pace, with_s6 = s3_pace_climb(weak, "resuscitate", 1, start_mcg_min=10.0,
                                  conc_mcg_ml=160.0, hours=1.0)
    assert pace is not None and abs(pace - pace_min) <= 0.1
    assert with_s6 == pace
    # a potent patient on the same climb stands 10 mmHg over the set-point long before it ends:
    # S6 holds the steps, and no controller under the supervisor can follow S3's pace
    potent = replace(base, emax_mmhg=100.0, ec50_factor=0.1, map0_mmhg=60.0, calibration_gain=1.0)
    pace, with_s6 = s3_pace_climb(potent, "resuscitate", 1, start_mcg_min=10.0,
                                  conc_mcg_ml=160.0, hours=1.0)
    assert pace is not None and abs(pace - pace_min) <= 0.1
    assert with_s6 is None or with_s6 > pace + 10.0
