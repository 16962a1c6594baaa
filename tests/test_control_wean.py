"""The wean mode (vasopilot/control/wean.py) as clinical rules, and on a simulated rig.

RUNNING_VIEW: floor 60 (set-point 65), 10 mcg/min, trusted MAP; the wean step 1 mcg/min.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_fixtures import RUNNING_VIEW as BASE
from control_fixtures import feed_beats

from drivers.sim.patient import draw_cohort
from vasopilot.control.mpc import LookAction, MpcController
from vasopilot.control.wean import Phase, WeanController
from vasopilot.core.events import DoseApplied, OperatorAction
from vasopilot.core.types import Requester
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

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


def test_probes_one_wean_step_once_the_median_held_the_margin_for_an_interval() -> None:
    view = replace(BASE, dose_mcg_min=8.0)
    wean = WeanController()
    # 6 over the floor (1 over the set-point) on the running dose: nothing for 15 min (from
    # the first minute's median, 20 beats in), then one step of 1 mcg/min
    early = feed_beats(wean, 66.0, 910, view=view)
    assert early == []
    # (asked again on every look while the played supervisor refuses it)
    probes = feed_beats(wean, 66.0, 930, view=view, from_s=911.0)
    assert probes and all(r.dose_mcg_min == 7.0 and "probe" in r.reason for r in probes)
    assert wean.phase is Phase.TITRATE


def test_no_probe_under_the_margin_nor_on_untrusted_map() -> None:
    view = replace(BASE, dose_mcg_min=8.0)
    # 2 over the floor: S7 would step; the wean does not come down (the titration climbs
    # towards the set-point, nothing probed yet to go back to)
    assert all(r.dose_mcg_min > 8.0 for r in feed_beats(WeanController(), 62.0, 3600, view=view))
    untrusted = replace(view, map_trusted=False)
    assert feed_beats(WeanController(), 66.0, 3600, view=untrusted) == []
    # artefact beats do not make the median: no probe on a flush at 300 mmHg either
    flushed = WeanController()
    feed_beats(flushed, 300.0, 3600, view=view, quality="artefact")
    assert feed_beats(flushed, 300.0, 3700, view=view, quality="artefact", from_s=3601.0) == []


def test_a_dip_under_the_margin_restarts_the_probe_interval() -> None:
    view = replace(BASE, dose_mcg_min=8.0)
    wean = WeanController()
    feed_beats(wean, 66.0, 600, view=view)
    feed_beats(wean, 61.0, 700, view=view, from_s=601.0)
    assert all(r.dose_mcg_min > 8.0 for r in feed_beats(wean, 66.0, 1500, view=view,
                                                        from_s=701.0))
    assert {r.dose_mcg_min for r in feed_beats(wean, 66.0, 1700, view=view, from_s=1501.0)} \
        == {7.0}


def _probed(to_mcg_min: float = 7.0) -> WeanController:
    """A wean that probed from 8 to ``to_mcg_min`` mcg/min by t = 930 s."""
    wean = WeanController()
    view = replace(BASE, dose_mcg_min=8.0)
    feed_beats(wean, 66.0, 910, view=view)
    assert {r.dose_mcg_min for r in feed_beats(wean, 66.0, 930, view=view, from_s=911.0)} \
        == {to_mcg_min}
    return wean


def test_over_the_margin_the_titration_does_not_raise() -> None:
    wean = _probed()
    view = replace(BASE, dose_mcg_min=7.0)
    # on the set-point (65) after a step down the titration expects MAP to fall and would
    # climb back; the wean holds while the median stands at the set-point
    assert all(r.dose_mcg_min < 7.0 for r in feed_beats(wean, 65.5, 2400, view=view,
                                                        from_s=931.0))
    assert any(look.action is LookAction.RAISE for look in wean.mpc.looks if look.t_s > 931.0)


def test_between_the_floor_and_the_margin_back_to_the_dose_before_the_probe_at_most() -> None:
    wean = _probed()
    view = replace(BASE, dose_mcg_min=7.0)
    raised = feed_beats(wean, 61.0, 2400, view=view, from_s=931.0)
    assert raised and all(r.dose_mcg_min == 8.0 for r in raised)
    # under the floor the titration's own raise (S3's step) goes through
    under = feed_beats(wean, 57.0, 3000, view=view, from_s=2401.0)
    assert under and max(r.dose_mcg_min for r in under) > 8.0


def test_under_the_floor_one_raise_per_settling_time_until_the_lower_limit() -> None:
    wean = _probed()
    feed_beats(wean, 57.0, 1000, view=replace(BASE, dose_mcg_min=7.0), from_s=931.0)
    # the supervisor applied a raise to 9 at 1001 s: the next waits for its effect (600 s)
    raised = replace(BASE, dose_mcg_min=9.0)
    assert feed_beats(wean, 57.0, 1590, view=raised, from_s=1001.0) == []
    assert any(r.dose_mcg_min > 9.0 for r in feed_beats(wean, 57.0, 1700, view=raised,
                                                        from_s=1591.0))
    # under the lower limit (55) the titration's own pace, S3's
    fast = _probed()
    feed_beats(fast, 52.0, 1000, view=replace(BASE, dose_mcg_min=7.0), from_s=931.0)
    assert any(r.dose_mcg_min > 9.0 for r in feed_beats(fast, 52.0, 1200, view=raised,
                                                        from_s=1001.0))


def _second_probe(map_on_7: float) -> WeanController:
    """A wean that probed 8 -> 7 at 66 mmHg, then sat on 7 at ``map_on_7`` until the
    supervisor applied another dose (6) at 1900 s, which judges the first step."""
    wean = _probed()
    feed_beats(wean, map_on_7, 1899, view=replace(BASE, dose_mcg_min=7.0), from_s=931.0)
    feed_beats(wean, map_on_7, 1900, view=replace(BASE, dose_mcg_min=6.0), from_s=1900.0)
    return wean


def test_the_probe_margin_is_learnt_from_the_drop_the_last_steps_caused() -> None:
    # before any step the prior drop (3) + 2: the set-point's 5
    assert WeanController().probe_margin_mmhg() == pytest.approx(5.0)
    # the step from 8 to 7 cost nothing (66 before and after): mean drop (3 + 0) / 2
    wean = _second_probe(66.0)
    assert wean.step_drop_mmhg() == pytest.approx(1.5)
    # so 4 over the floor is margin enough for the next step, where 5 was asked before
    view = replace(BASE, dose_mcg_min=6.0)
    assert feed_beats(wean, 64.0, 2795, view=view, from_s=1901.0) == []
    assert {r.dose_mcg_min for r in feed_beats(wean, 64.0, 2830, view=view, from_s=2796.0)} \
        == {5.0}
    # a step that cost 4 mmHg asks for more: (3 + 4) / 2 + 2
    assert _second_probe(62.0).probe_margin_mmhg() == pytest.approx(5.5)


def test_the_titration_comes_down_one_step_at_a_time() -> None:
    view = replace(BASE, dose_mcg_min=3.0)
    early = feed_beats(WeanController(), 80.0, 599, view=view)
    assert early == []  # the dose's effect had not shown yet (taken over at 0 s)
    wean = WeanController()
    requests = feed_beats(wean, 80.0, 900, view=view)
    # S3 would allow 3 -> 1; the wean one wean step (1 mcg/min; 20 % is less)
    assert requests and all(r.dose_mcg_min == 2.0 for r in requests)


def test_an_unweanable_patient_is_held_at_the_dose_that_holds_the_floor() -> None:
    view = replace(BASE, dose_mcg_min=5.0)
    # MAP 62 on 5 mcg/min for 4 h: the need does not fall, no step down, nothing handed over
    wean = WeanController()
    requests = feed_beats(wean, 62.0, 4 * 3600, view=view)
    assert all(r.dose_mcg_min >= 5.0 for r in requests)
    assert not wean.hands_over(replace(view, t_s=4 * 3600.0))


def _on_last(map_mmhg: float = 66.0, until_s: float = 3700.0) -> WeanController:
    wean = WeanController()
    feed_beats(wean, map_mmhg, until_s, view=LAST)
    return wean


def test_the_final_step_waits_until_map_has_held_the_last_dose_for_an_hour() -> None:
    wean = WeanController()
    feed_beats(wean, 66.0, 3500, view=LAST)
    assert wean.phase is Phase.LAST
    assert not wean.hands_over(replace(LAST, t_s=3500.0))
    # the last dose is held: nothing proposed
    assert feed_beats(wean, 66.0, 3650, view=LAST, from_s=3501.0) == []
    assert wean.hands_over(replace(LAST, t_s=3650.0))
    assert wean.phase is Phase.S7
    # while S7 holds the dose the mode sends nothing
    weaning = replace(LAST, weaning=True)
    assert feed_beats(wean, 80.0, 4200, view=weaning, from_s=3651.0) == []


def test_never_hands_over_on_untrusted_map() -> None:
    wean = _on_last(until_s=3650.0)
    assert not wean.hands_over(replace(LAST, t_s=3650.0, map_trusted=False))
    assert wean.hands_over(replace(LAST, t_s=3650.0))


def _under_s7(map_mmhg: float = 66.0) -> WeanController:
    wean = _on_last(map_mmhg, 3650.0)
    assert wean.hands_over(replace(LAST, t_s=3650.0))
    return wean


def test_takes_back_when_the_median_stays_under_the_floor() -> None:
    wean = _under_s7()
    weaning = replace(LAST, weaning=True)
    feed_beats(wean, 55.0, 3800, view=weaning, from_s=3651.0)
    # the rig asks on every step; a minute after the median went under the floor it is back
    polled = [(t, wean.takes_back(replace(weaning, t_s=float(t)))) for t in range(3690, 3820, 2)]
    first = next(t for t, back in polled if back)
    assert 3740 <= first <= 3810
    assert wean.phase is Phase.TITRATE
    requests = feed_beats(wean, 55.0, 4400, view=LAST, from_s=3821.0)
    assert requests and all(r.dose_mcg_min > 1.0 for r in requests)


def test_a_dip_of_a_few_beats_does_not_take_the_wean_back() -> None:
    wean = _under_s7()
    weaning = replace(LAST, weaning=True)
    feed_beats(wean, 50.0, 3661, view=weaning, from_s=3651.0)
    feed_beats(wean, 66.0, 3900, view=weaning, from_s=3662.0)
    assert not any(wean.takes_back(replace(weaning, t_s=float(t))) for t in range(3651, 3901, 5))


def test_a_last_dose_that_does_not_hold_the_floor_with_a_margin_is_never_stopped() -> None:
    wean = WeanController()
    # on the set-point for 10 min, then 2 over the floor for two hours on the last dose: S7
    # would take the final step, the wean does not
    feed_beats(wean, 66.0, 600, view=LAST)
    assert wean.phase is Phase.LAST
    feed_beats(wean, 62.0, 7200, view=LAST, from_s=601.0)
    assert not wean.hands_over(replace(LAST, t_s=7200.0))
    # 4 over the floor is not enough either: the last dose is expected to be worth one
    # step's drop (the prior 3), leaving 1 of the 3 asked off the drug
    held = WeanController()
    feed_beats(held, 66.0, 600, view=LAST)
    feed_beats(held, 64.0, 7200, view=LAST, from_s=601.0)
    assert not held.hands_over(replace(LAST, t_s=7200.0))
    # and when MAP falls under the floor the titration takes the dose up again
    requests = feed_beats(wean, 55.0, 7800, view=LAST, from_s=7201.0)
    assert wean.phase is Phase.TITRATE
    assert requests and all(r.dose_mcg_min > 1.0 for r in requests)


def test_a_last_dose_left_under_the_floor_goes_back_to_the_titration() -> None:
    wean = _on_last(until_s=600.0)
    assert wean.phase is Phase.LAST
    requests = feed_beats(wean, 55.0, 1200, view=LAST, from_s=601.0)
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
