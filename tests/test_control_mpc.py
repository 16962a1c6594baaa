"""The model-predictive closed loop and its planner, as clinical rules."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from control_fixtures import RUNNING_VIEW, feed_beats
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim.patient import draw_cohort
from safety.view import SupervisorView
from vasopilot.cohort import bench_config, s3_steps
from vasopilot.control.mpc import (
    LineModel,
    LookAction,
    LookReason,
    MpcController,
    _Candidate,
    _mixture,
    fresh_limit_s,
)
from vasopilot.control.planner import PlanLimits, PlanTuning, best_plan, candidate_plans
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import AlarmCode, AlarmRaised, DoseApplied
from vasopilot.core.types import Beat, DoseRequest
from vasopilot.simulate import SimOptions, SoftMaxNurse, run_sim

# the supervisor holds the set-point F + 5 = 70 with the lower limit F - 5 = 60
BASE = replace(RUNNING_VIEW, target_map_mmhg=70.0, lower_limit_mmhg=60.0)
LIMITS = PlanLimits.from_view(BASE.limits)  # S3: +-max(2 mcg/min, 20 %) a step


def feed(controller: MpcController, map_mmhg: float, until_s: float, *,
         view: SupervisorView = BASE, quality: str = "good",
         from_s: float = 0.0) -> list[DoseRequest]:
    """Beats at ``map_mmhg``, a look at every 2 s loop step."""
    return feed_beats(controller, map_mmhg, until_s, view=view, quality=quality, from_s=from_s,
                      look_every_s=2)


@settings(max_examples=300, deadline=None)
@given(current=st.floats(0.0, 60.0), since_up=st.one_of(st.none(), st.floats(0.0, 600.0)))
def test_every_plan_is_one_the_supervisor_would_take(current: float,
                                                     since_up: float | None) -> None:
    tuning = PlanTuning()
    plans = candidate_plans(current, since_up, LIMITS, tuning)
    assert np.all(plans >= 0.0) and np.all(plans <= LIMITS.hard_max_mcg_min + 1e-9)
    t = np.arange(plans.shape[1]) * tuning.step_s
    first_up_s = 0.0 if since_up is None else max(0.0, 120.0 - since_up)
    for plan in plans:
        moves = [(t[j], plan[j] - prev) for j, prev in enumerate((current, *plan[:-1]))
                 if abs(plan[j] - prev) > 1e-9]
        ups = [at for at, by in moves if by > 0]
        steps = [(by, max(2.0, 0.2 * prev)) for j, prev in enumerate((current, *plan[:-1]))
                 if abs(by := plan[j] - prev) > 1e-9]
        assert all(abs(by) <= step + 1e-9 for by, step in steps)
        assert all(at >= first_up_s - 1e-9 for at in ups)
        assert all(b - a >= 120.0 - 1e-9 for a, b in pairwise(ups))


def test_it_never_raises_around_an_artefact_and_says_why_it_held() -> None:
    controller = MpcController()
    assert feed(controller, 50.0, 120.0) != []  # far under the floor: it climbs
    held = feed(controller, 50.0, 600.0, from_s=121.0, quality="flush")
    assert held == []
    reasons = {look.reason for look in controller.looks if look.t_s > 121.0}
    assert reasons <= {LookReason.NO_TRUSTED_MAP, LookReason.ARTEFACT}
    assert all(look.action is LookAction.HOLD for look in controller.looks if look.t_s > 121.0)


def test_within_30_s_of_an_untrusted_beat_it_holds_then_climbs_again() -> None:
    controller = MpcController()
    feed(controller, 50.0, 300.0)
    controller.on_beat(Beat(301.0, 300.0, 290.0, 295.0, 80.0, "flush"))
    assert feed(controller, 50.0, 330.0, from_s=302.0) == []
    assert {look.reason for look in controller.looks if look.t_s > 301.0} <= {
        LookReason.ARTEFACT, LookReason.UP_INTERVAL}
    assert [r for r in feed(controller, 50.0, 700.0, from_s=331.0)
            if r.dose_mcg_min > BASE.dose_mcg_min]


def test_without_trusted_data_it_holds_and_journals_the_hold() -> None:
    controller = MpcController()
    assert feed(controller, 50.0, 300.0, view=replace(BASE, map_trusted=False)) == []
    assert controller.looks
    assert {look.reason for look in controller.looks} == {LookReason.NO_TRUSTED_MAP}


def test_at_the_top_of_the_band_it_never_raises_and_under_the_floor_never_lowers() -> None:
    steady = replace(BASE, dose_mcg_min=10.0)
    high = feed(MpcController(), 75.0, 3600.0, view=steady)
    assert high and all(r.dose_mcg_min < 10.0 for r in high)
    low = feed(MpcController(), 63.0, 3600.0, view=steady)
    assert low and all(r.dose_mcg_min > 10.0 for r in low)


def test_it_never_lowers_under_the_lower_limit() -> None:
    # a MAP that the filter cannot explain (high potency, but 58 mmHg): no decrease
    controller = MpcController()
    requests = feed(controller, 58.0, 1200.0, view=replace(BASE, dose_mcg_min=30.0))
    assert all(r.dose_mcg_min >= 30.0 for r in requests)


@pytest.mark.timeout(300)
def test_an_out_of_reach_patient_climbs_to_the_hard_max_at_the_s3_pace_and_is_flagged() -> None:
    params = replace(draw_cohort(1, 1, "resuscitate")[0], emax_mmhg=8.0, calibration_gain=1.0)
    built: list[MpcController] = []

    def make(_patient: object) -> MpcController:
        built.append(MpcController(LineModel(dead_volume_ml=params.dead_volume_ml,
                                             conc_mcg_ml=160.0)))
        return built[0]

    result = run_sim(bench_config(160.0), SimOptions(hours=1.5, seed=1, dt_s=2.0,
                                                     nurse_confirms_soft_max=True,
                                                     spare_syringe=True),
                     params=params, controller_for=make)
    applied = [e for e in result.events if isinstance(e, DoseApplied)][1:]
    at_max = next(e.t_s for e in applied if e.dose_mcg_min >= NOREPINEPHRINE.hard_max)
    # every volume check (issue 19's guard rail) holds the climb until the nurse answers it
    volume_checks = [e for e in result.events if isinstance(e, AlarmRaised)
                     and e.code is AlarmCode.VOLUME_CHECK and e.t_s < at_max]
    # from 10 mcg/min, S3's +max(2, 20 %) steps (10 of them) every 2 min: 18 min at its pace.
    # Above the soft maximum each step waits one loop step for the nurse's confirmation, each
    # increase waits for a fresh beat (up to a few seconds), the first for trusted beats
    pace_s = (s3_steps(10.0, NOREPINEPHRINE.hard_max) - 1) * NOREPINEPHRINE.min_up_interval_s
    assert at_max <= pace_s + 240.0 + len(volume_checks) * (
        SoftMaxNurse.VOLUME_ANSWER_DELAY_S + NOREPINEPHRINE.min_up_interval_s)
    # the evidence is the supervisor's typed alarm, raised by the runtime
    alarms = [e for e in result.events if isinstance(e, AlarmRaised)
              and e.code is AlarmCode.TARGET_UNREACHABLE]
    assert alarms and "target unreachable" in alarms[0].message
    flagged_s = alarms[0].t_s
    assert built[0].unreachable_since_s is not None
    assert abs(built[0].unreachable_since_s - flagged_s) <= 5.0  # one control period
    waited_s = SoftMaxNurse.VOLUME_ANSWER_DELAY_S * sum(e.t_s < flagged_s for e in volume_checks)
    assert flagged_s <= 30 * 60.0 + waited_s


def test_a_plan_may_come_down_one_slew_step_per_look_after_an_overshoot() -> None:
    # the supervisor bounds a decrease's size, not its pace (S3): from 10 mcg/min on a
    # responsive patient the planner may leave the overshoot at -2 every 30 s
    tuning = PlanTuning(step_s=30.0)
    plans = candidate_plans(10.0, None, LIMITS, tuning)
    assert any(plan[0] == 8.0 and plan[1] == 6.0 and plan[2] == 4.0 for plan in plans)
    assert len({plan.tobytes() for plan in plans}) == len(plans)


def test_a_ramp_climbs_and_comes_down_by_s3s_relative_step_at_a_high_dose() -> None:
    plans = candidate_plans(30.0, None, LIMITS, PlanTuning(step_s=30.0))
    firsts = {round(float(plan[0]), 6) for plan in plans}
    assert {36.0, 24.0} <= firsts  # 20 % of 30, not the 2 mcg/min absolute part
    # each step is S3's at the dose it starts from, one per 2 min (4 plan steps of 30 s)
    ladder = [36.0, 43.2, 51.84, 60.0]
    assert any(np.allclose(plan[[0, 4, 8, 12]], ladder) for plan in plans)


def test_at_a_low_dose_a_move_may_be_finer_than_a_quarter_slew_step() -> None:
    firsts = {round(float(plan[0]), 6) for plan in
              candidate_plans(1.5, None, LIMITS, PlanTuning(step_s=30.0))}
    assert {1.35, 1.65, 1.2, 1.8} <= firsts
    assert 1.0 in firsts and 2.0 in firsts  # a quarter slew step still there
    # where a share of the dose is no finer than a quarter step, it adds no plan
    tuning = PlanTuning(step_s=30.0)
    assert np.array_equal(candidate_plans(10.0, None, LIMITS, tuning),
                          candidate_plans(10.0, None, LIMITS, replace(tuning, dose_moves=())))


def test_inside_the_band_the_plan_prefers_the_set_point() -> None:
    # MAP = 60 + 2 x dose, known exactly: holding 6.5 mcg/min keeps 73 mmHg, inside the band
    # [65, 75] with no chance of leaving it; coming down to the set-point 70 still wins
    def predict(doses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 60.0 + 2.0 * doses, np.full(doses.shape, 0.3)

    plan = best_plan(6.5, None, LIMITS, predict=predict, floor_mmhg=65.0,
                     tuning=PlanTuning(step_s=30.0))
    assert plan.first_move_mcg_min < 6.5
    flat = best_plan(6.5, None, LIMITS, predict=predict, floor_mmhg=65.0,
                     tuning=PlanTuning(step_s=30.0, centre_weight=0.0))
    assert flat.first_move_mcg_min == 6.5


def test_a_plan_still_coming_down_is_looked_at_again_at_the_filter_pace() -> None:
    # 90 mmHg on 10 mcg/min: far over the band, the plan comes down a step at every look, and
    # the next look comes 10 s later, not a period (30 s) later
    controller = MpcController()
    controller.assume_steady(10.0)
    feed(controller, 90.0, 120.0)
    lowers = [look.t_s for look in controller.looks if look.reason is LookReason.PLAN_LOWERS]
    assert len(lowers) >= 3
    assert all(b - a == pytest.approx(10.0) for a, b in pairwise(lowers))


def test_the_bank_forecasts_as_a_mixture_of_its_models() -> None:
    one = (np.array([[70.0, 72.0]]), np.array([[1.0, 2.0]]))
    mean, sd = _mixture(np.array([1.0]), *one)
    assert np.allclose(mean, one[0][0]) and np.allclose(sd, one[1][0])
    # two models 4 mmHg apart, equally likely: the spread between them is uncertainty too
    mean, sd = _mixture(np.array([0.5, 0.5]), np.array([[68.0], [72.0]]),
                        np.array([[1.0], [1.0]]))
    assert mean[0] == pytest.approx(70.0) and sd[0] == pytest.approx(np.sqrt(1.0 + 4.0))


def _looks_on_aged_beats(controller: MpcController, map_mmhg: float, until_s: float, *,
                         age_s: float, view: SupervisorView = BASE) -> list[tuple[float, float]]:
    """A beat every second, each ``age_s`` old at the look that follows it (a look every 2 s);
    the (time, dose) of every increase asked for."""
    raises = []
    for t in range(0, int(until_s) + 1):
        controller.on_beat(Beat(t - age_s, map_mmhg + 20, map_mmhg - 10, map_mmhg, 80.0, "good"))
        if t % 2 == 0:
            request = controller.propose(replace(view, t_s=float(t)))
            if request is not None and request.dose_mcg_min > view.dose_mcg_min:
                raises.append((float(t), request.dose_mcg_min))
    return raises


def test_a_trim_and_a_climb_under_the_floor_both_wait_for_a_recent_beat() -> None:
    tuning = MpcController().tuning
    # in the band under the set-point (a trim) and under the floor (a climb), on a steady
    # 10 mcg/min: the plan raises
    for map_mmhg in (66.0, 55.0):
        recent = MpcController()
        recent.assume_steady(10.0)
        on_recent = _looks_on_aged_beats(recent, map_mmhg, 300.0, age_s=0.05)
        assert on_recent
        aged = MpcController()
        aged.assume_steady(10.0)
        on_aged = _looks_on_aged_beats(aged, map_mmhg, 300.0, age_s=0.2)
        # beats 0.2 s old at every look (in step with the looks): never recent enough, so the
        # increase waits, journalled, until the growing limit covers 0.2 s
        assert on_aged
        first_s = on_aged[0][0]
        held = [look for look in aged.looks if look.reason is LookReason.NO_FRESH_BEAT]
        assert held and held[0].t_s < first_s
        assert first_s - held[0].t_s >= tuning.fresh_wait_s + (0.2 - tuning.fresh_beat_s) / (
            tuning.fresh_growth) - 1e-6
        assert not [look for look in aged.looks if look.action is LookAction.RAISE
                    and look.t_s < first_s]


def test_an_urgent_climb_holds_on_a_stale_beat_and_raises_on_the_next_recent_one() -> None:
    controller = MpcController()
    controller.assume_steady(10.0)
    view = BASE
    held_at: list[float] = []
    for t in range(0, 200):
        # under the floor; every beat 0.26 s old at its look until the climb has been held
        # 10 s (well inside the wait before the limit grows), then 0.05 s old
        age_s = 0.26 if not held_at or t - held_at[0] <= 10 else 0.05
        controller.on_beat(Beat(t - age_s, 75.0, 45.0, 55.0, 80.0, "good"))
        request = controller.propose(replace(view, t_s=float(t)))
        look = controller.looks[-1] if controller.looks else None
        if look is not None and look.t_s == t and look.reason is LookReason.NO_FRESH_BEAT:
            held_at.append(float(t))
            # asked again when the next beat is due (one a second), not a cadence later
            assert controller.look_again_s == pytest.approx(1.0 - age_s)
        elif request is not None:
            break
    assert request is not None and request.dose_mcg_min > view.dose_mcg_min
    assert held_at and held_at[-1] == t - 1 and t == held_at[0] + 11
    assert controller.looks[-1].reason is LookReason.PLAN_RAISES
    assert controller.look_again_s is None


@settings(max_examples=200, deadline=None)
@given(waited_s=st.floats(0.0, 1e4), more_s=st.floats(0.0, 1e4), age_s=st.floats(0.0, 3.0))
def test_the_fresh_beat_limit_only_grows_and_holds_a_climb_a_bounded_time(
        waited_s: float, more_s: float, age_s: float) -> None:
    tuning = MpcController().tuning
    limit = fresh_limit_s(waited_s, tuning)
    assert limit >= tuning.fresh_beat_s
    assert fresh_limit_s(waited_s + more_s, tuning) >= limit
    if waited_s <= tuning.fresh_wait_s:
        assert limit == tuning.fresh_beat_s
    # any beat the estimator does not call a gap (3 s) is recent enough after a bounded wait
    bound_s = tuning.fresh_wait_s + max(0.0, age_s - tuning.fresh_beat_s) / tuning.fresh_growth
    assert fresh_limit_s(bound_s + 1e-6, tuning) >= age_s


def test_the_bank_tells_a_saturating_response_from_a_straight_one_as_the_dose_moves() -> None:
    tuning = MpcController().tuning
    models = [_Candidate(4.5, 3.0, kappa, tuning) for kappa in tuning.curvature]
    truth = _Candidate(4.5, 3.0, 1.0, tuning)  # the same lags, run on the true effect
    for dose in (5.0, 10.0, 20.0, 40.0):
        for _ in range(60):  # 10 min per dose, a filter update every 10 s
            truth.advance(dose, 10.0 / 60.0)
            # a Hill curve (EC50 10 mcg/min): much flatter at 40 than its chord through MAP0
            map_mmhg = 50.0 + 40.0 * truth.x2 / (truth.x2 + 10.0)
            for model in models:
                model.advance(dose, 10.0 / 60.0)
                model.update(map_mmhg, 10.0, tuning)
    straight = next(m for m in models if m.kappa == 1.0)
    assert max(models, key=lambda m: m.loglik).kappa < 1.0
    assert straight.loglik < max(m.loglik for m in models) - 1.0
