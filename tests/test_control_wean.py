"""The wean mode (vasopilot/control/wean.py) as clinical rules, and on a simulated rig.

RUNNING_VIEW: floor 60 (set-point 65), 10 mcg/min, trusted MAP; the wean step 1 mcg/min.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_fixtures import RUNNING_VIEW as BASE
from control_fixtures import feed_beats

from drivers.sim.patient import draw_cohort
from vasopilot.control.mpc import MpcController
from vasopilot.control.wean import Phase, WeanController
from vasopilot.core.events import DoseApplied, OperatorAction
from vasopilot.core.types import Requester
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

TAIL = replace(BASE, dose_mcg_min=3.0)
LAST = replace(BASE, dose_mcg_min=1.0)


def test_the_mode_takes_over_an_infusion_in_steady_state() -> None:
    mpc = MpcController()
    mpc.assume_steady(10.0)
    assert all(c.x1 == c.x2 == pytest.approx(10.0) for c in mpc.candidates)
    # on the set-point at that dose nothing moves: the drug's effect is not expected to grow
    requests = feed_beats(WeanController(), 65.0, 600)
    assert all(r.dose_mcg_min >= 9.0 for r in requests)


def test_titrates_down_a_patient_who_recovers_past_the_band() -> None:
    requests = feed_beats(WeanController(), 80.0, 900)
    assert requests and all(r.dose_mcg_min < 10.0 for r in requests)
    assert all(r.requester is Requester.CONTROLLER for r in requests)


def test_hands_the_tail_to_s7_once_map_holds_the_floor_with_a_margin() -> None:
    low = WeanController()
    feed_beats(low, 62.0, 90, view=TAIL)  # 2 over the floor: S7 would pause at once
    assert not low.hands_over(replace(TAIL, t_s=90.0))
    wean = WeanController()
    feed_beats(wean, 64.0, 90, view=TAIL)
    assert wean.hands_over(replace(TAIL, t_s=90.0))
    assert wean.phase is Phase.S7
    # while S7 holds the dose the mode sends nothing
    weaning = replace(TAIL, weaning=True)
    assert feed_beats(wean, 80.0, 400, view=weaning, from_s=91.0) == []


def test_above_the_tail_s7_takes_over_only_from_a_held_dose() -> None:
    view = replace(BASE, dose_mcg_min=8.0)
    wean = WeanController()
    feed_beats(wean, 64.0, 890, view=view)
    assert not wean.hands_over(replace(view, t_s=890.0))
    feed_beats(wean, 64.0, 910, view=view, from_s=891.0)
    assert wean.hands_over(replace(view, t_s=910.0))


def test_never_hands_over_on_untrusted_map() -> None:
    wean = WeanController()
    feed_beats(wean, 64.0, 90, view=TAIL)
    assert not wean.hands_over(replace(TAIL, t_s=90.0, map_trusted=False))


def _under_s7(map_mmhg: float = 64.0) -> WeanController:
    wean = WeanController()
    feed_beats(wean, map_mmhg, 90, view=TAIL)
    assert wean.hands_over(replace(TAIL, t_s=90.0))
    return wean


def test_takes_back_when_the_median_stays_under_the_floor() -> None:
    wean = _under_s7()
    weaning = replace(TAIL, weaning=True)
    feed_beats(wean, 55.0, 200, view=weaning, from_s=91.0)
    # the rig asks on every step; a minute after the median went under the floor it is back
    polled = [(t, wean.takes_back(replace(weaning, t_s=float(t)))) for t in range(130, 260, 2)]
    first = next(t for t, back in polled if back)
    assert 180 <= first <= 250
    assert wean.phase is Phase.TITRATE
    requests = feed_beats(wean, 55.0, 600, view=TAIL, from_s=261.0)
    assert requests and all(r.dose_mcg_min > 3.0 for r in requests)


def test_a_dip_of_a_few_beats_does_not_take_the_wean_back() -> None:
    wean = _under_s7()
    weaning = replace(TAIL, weaning=True)
    feed_beats(wean, 50.0, 101, view=weaning, from_s=91.0)
    feed_beats(wean, 64.0, 300, view=weaning, from_s=102.0)
    assert not any(wean.takes_back(replace(weaning, t_s=float(t))) for t in range(91, 301, 5))


def test_the_final_step_waits_until_map_has_held_the_last_dose_for_an_hour() -> None:
    wean = _under_s7()
    # S7 stepped to 1 mcg/min: its next step is the final one
    at_last = replace(LAST, weaning=True)
    feed_beats(wean, 64.0, 120, view=at_last, from_s=91.0)
    assert wean.takes_back(replace(at_last, t_s=120.0))
    assert wean.phase is Phase.LAST
    # the last dose is held: nothing proposed, not handed over before an hour on it
    assert feed_beats(wean, 64.0, 3500, view=LAST, from_s=121.0) == []
    assert not wean.hands_over(replace(LAST, t_s=3500.0))
    feed_beats(wean, 64.0, 3800, view=LAST, from_s=3501.0)
    assert wean.hands_over(replace(LAST, t_s=3800.0))
    assert wean.phase is Phase.S7


def test_a_last_dose_that_does_not_hold_the_floor_with_a_margin_is_never_stopped() -> None:
    wean = _under_s7()
    at_last = replace(LAST, weaning=True)
    feed_beats(wean, 62.0, 120, view=at_last, from_s=91.0)
    assert wean.takes_back(replace(at_last, t_s=120.0))
    feed_beats(wean, 62.0, 7200, view=LAST, from_s=121.0)
    assert not wean.hands_over(replace(LAST, t_s=7200.0))
    # and when MAP falls under the floor the titration takes the dose up again
    requests = feed_beats(wean, 55.0, 7800, view=LAST, from_s=7201.0)
    assert wean.phase is Phase.TITRATE
    assert requests and all(r.dose_mcg_min > 1.0 for r in requests)


@pytest.mark.timeout(120)
def test_rig_weans_a_recovering_patient_through_s7_and_only_s7_steps_while_it_weans() -> None:
    params = replace(draw_cohort(1, 5, "wean")[0], recovery_mmhg=30.0, recovery_h=2.0)
    config = load_rig(None)
    config = replace(config, drug=config.drug.model_copy(update={"conc_mcg_ml": 160.0}))
    events = run_sim(config, SimOptions(scenario="wean", mode="wean", hours=5.0, dt_s=2.0),
                     params=params).events
    actions = [e for e in events if isinstance(e, OperatorAction)
               and e.action in ("wean", "stop_weaning")]
    assert actions and actions[0].action == "wean"
    assert all(e.by == "wean mode" for e in actions)
    spans = []
    for e in actions:
        if e.action == "wean":
            spans.append([e.t_s, float("inf")])
        else:
            spans[-1][1] = e.t_s
    applied = [e for e in events if isinstance(e, DoseApplied)][1:]
    for e in applied:
        weaning = any(a < e.t_s < b for a, b in spans)
        assert e.requester is (Requester.SUPERVISOR if weaning else Requester.CONTROLLER) \
            or e.t_s in {b for _, b in spans}
    # the wean steps are S7's: down by at most the wean step each
    s7 = [e for e in applied if e.requester is Requester.SUPERVISOR]
    assert s7 and all(e.previous_dose_mcg_min - e.dose_mcg_min <= 1.0 + 1e-6 for e in s7)
    assert applied[-1].dose_mcg_min <= 1.0
