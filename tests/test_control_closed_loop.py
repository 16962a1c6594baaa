"""The PI controller (mode ``pi``), as clinical rules; the wean mode is in test_control_wean."""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_fixtures import RUNNING_VIEW as BASE
from control_fixtures import feed_beats

from drivers.sim.patient import PatientParams, draw_cohort
from safety.view import SupervisorView
from vasopilot.control.closed_loop import ClosedLoopController, Tuning
from vasopilot.core.events import DoseApplied, DoseRequested, Event
from vasopilot.core.types import Beat, DoseRequest, Requester
from vasopilot.metrics import map_metrics
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

SETPOINT_MMHG = 65.0 + Tuning().aim_mmhg


def feed(controller: ClosedLoopController, map_mmhg: float, until_s: float, *,
         view: SupervisorView = BASE, quality: str = "good",
         from_s: float = 0.0) -> list[DoseRequest]:
    """Beats at ``map_mmhg``, the requests proposed at the 5 s control cadence."""
    return feed_beats(controller, map_mmhg, until_s, view=view, quality=quality, from_s=from_s)


def test_increases_dose_when_map_below_target() -> None:
    requests = feed(ClosedLoopController(), 55.0, 600)
    assert requests and all(r.dose_mcg_min > 10.0 for r in requests)
    assert all(r.requester is Requester.CONTROLLER for r in requests)


def test_decreases_dose_when_map_well_above_target() -> None:
    requests = feed(ClosedLoopController(), 78.0, 600)
    assert requests and all(r.dose_mcg_min < 10.0 for r in requests)


def test_proposes_increases_at_most_every_two_minutes_not_every_beat() -> None:
    assert len(feed(ClosedLoopController(), 50.0, 1200)) <= 11


def test_no_up_titration_on_untrusted_map() -> None:
    assert feed(ClosedLoopController(), 45.0, 600, quality="flush") == []
    assert feed(ClosedLoopController(), 45.0, 600, view=replace(BASE, map_trusted=False)) == []


def test_no_increase_within_30_s_of_an_artefact_beat() -> None:
    controller = ClosedLoopController()
    feed(controller, 55.0, 100)
    controller.on_beat(Beat(100.5, 320.0, 300.0, 307.0, 80.0, "flush"))
    assert feed(controller, 55.0, 125, from_s=101.0) == []


def test_no_windup_while_the_supervisor_refuses() -> None:
    # an hour of refusals at MAP 50, then MAP settles at the set-point: a wound-up integrator
    # would keep pushing the dose up; this one has nothing left to give
    controller = ClosedLoopController()
    feed(controller, 50.0, 3600)
    feed(controller, SETPOINT_MMHG, 3840, from_s=3601.0)
    assert feed(controller, SETPOINT_MMHG, 5400, from_s=3841.0) == []


def test_small_corrections_add_up_instead_of_being_dropped() -> None:
    # 2 mmHg short: each look alone is under the smallest change worth making
    requests = feed(ClosedLoopController(), SETPOINT_MMHG - 2.0, 600)
    assert requests and all(r.dose_mcg_min > 10.0 for r in requests)


def test_holds_the_dose_when_map_is_at_the_set_point() -> None:
    assert feed(ClosedLoopController(), SETPOINT_MMHG, 1200) == []


def test_takes_the_whole_slew_step_when_far_below_target() -> None:
    requests = feed(ClosedLoopController(), 45.0, 130)
    assert requests and requests[0].dose_mcg_min >= 12.0


def _run_at_sensitivity(factor: float, hours: float) -> list[float]:
    """A typical patient with EC50 scaled by 1/``factor``; true MAP at 1 Hz."""
    patient = next(p for p in draw_cohort(40, 11, "resuscitate")
                   if p.stratum == "typical" and p.need_mcg_min() < 12)
    patient = replace(patient, ec50_factor=patient.ec50_factor / factor)
    result = run_sim(load_rig(None), SimOptions(hours=hours, mode="closed-loop", dt_s=1.0),
                     params=patient)
    return [m for _, m in result.true_map]


@pytest.mark.timeout(60)
def test_stable_at_ten_times_sensitivity() -> None:
    trace = _run_at_sensitivity(10.0, 2.0)
    metrics = map_metrics(range(len(trace)), trace, 65.0)
    assert metrics.divergence_pct_per_h <= 0.0
    assert metrics.wobble_pct < 6.0
    assert max(trace[3600:]) < 90.0


@pytest.mark.timeout(60)
def test_reaches_target_at_a_tenth_of_the_sensitivity() -> None:
    trace = _run_at_sensitivity(0.1, 2.0)
    metrics = map_metrics(range(len(trace)), trace, 65.0)
    assert metrics.time_to_floor_min is not None and metrics.time_to_floor_min < 60.0


def _rig_run(params: PatientParams, options: SimOptions) -> list[Event]:
    config = load_rig(None)
    config = replace(config, drug=config.drug.model_copy(update={"conc_mcg_ml": 160.0}))
    return run_sim(config, options, params=params).events


@pytest.mark.timeout(60)
def test_sim_nurse_confirms_doses_above_the_soft_max_only_when_asked_to() -> None:
    params = next(p for p in draw_cohort(40, 1, "resuscitate")
                  if 35.0 < p.need_mcg_min() < 50.0)
    options = SimOptions(mode="closed-loop", hours=1.5, dt_s=2.0, spare_syringe=True)
    alone = _rig_run(params, options)
    assert max(e.dose_mcg_min for e in alone if isinstance(e, DoseApplied)) <= 30.0
    nursed = _rig_run(params, replace(options, nurse_confirms_soft_max=True))
    above = [e for e in nursed if isinstance(e, DoseApplied) and e.dose_mcg_min > 30.0
             and e.dose_mcg_min != e.previous_dose_mcg_min]  # a changeover keeps the dose
    assert above and all(e.requester is Requester.OPERATOR for e in above)
    confirmations = [e for e in nursed if isinstance(e, DoseRequested) and e.soft_limit_confirmed
                     and e.t_s > 0]
    assert confirmations and all(e.sender == "bench nurse" for e in confirmations)


def test_lowers_the_dose_no_faster_than_s3_lets_it_climb_back() -> None:
    # MAP far above the set-point: a dose the supervisor applies at once may fall only by
    # the up-step (2 mcg/min) per up-interval (2 min), so a passing high cannot dig a hole
    controller = ClosedLoopController()
    view = replace(BASE, dose_mcg_min=20.0)
    doses = []
    for t in range(0, 601):
        controller.on_beat(Beat(float(t), 110.0, 80.0, 90.0, 80.0, "good"))
        if t % 5 == 0:
            request = controller.propose(replace(view, t_s=float(t)))
            if request is not None:
                view = replace(view, dose_mcg_min=request.dose_mcg_min)
                doses.append((t, request.dose_mcg_min))
    assert doses
    for t, dose in doses:
        assert dose >= 20.0 - 2.0 * (1 + t / 120.0) - 1e-9
    assert view.dose_mcg_min <= 20.0 - 8.0
