"""The request rules one at a time, the oref0 way: a baseline context, one or two fields changed.

Baseline: norepinephrine 80 mcg/mL, 70 kg, running at 10 mcg/min, a good MAP of 70 mmHg,
floor 65 (set-point 70, no increase at 80 or more), lower limit 60, last increase long ago, an
ideal pump.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from safety.limits import DoseLimits
from safety.rules import RULES, RequestContext, evaluate
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import RefusalCode, StopReason
from vasopilot.core.types import (
    BeatQuality,
    DoseRequest,
    HostLossBehaviour,
    PumpCapabilities,
    Requester,
)

LIMITS = DoseLimits.from_entry(NOREPINEPHRINE, 70.0)
BASELINE = RequestContext(
    request=DoseRequest(11.0, Requester.CONTROLLER, "MAP a little low"),
    now_s=1000.0,
    starting=False,
    running=True,
    dose_mcg_min=10.0,
    limits=LIMITS,
    capabilities=PumpCapabilities(min_rate_ml_h=0.01, max_rate_ml_h=150.0,
                                  resolution_ml_h=0.001, syringe_volume_ml=50.0,
                                  host_loss=HostLossBehaviour.KEEPS_RATE),
    trusted_map_mmhg=70.0,
    last_quality=BeatQuality.GOOD,
    stale_after_s=10.0,
    floor_mmhg=65.0,
    lower_limit_mmhg=60.0,
    map_high_margin_mmhg=10.0,
    since_last_up_s=600.0,
)


def asking(dose: float, **changes: object) -> RequestContext:
    """The baseline asking for ``dose``; ``requester``/``confirmed`` change the request."""
    requester = changes.pop("requester", Requester.CONTROLLER)
    confirmed = changes.pop("confirmed", False)
    assert isinstance(requester, Requester) and isinstance(confirmed, bool)
    request = DoseRequest(dose, requester, "test", confirmed)
    return replace(BASELINE, request=request, **changes)  # type: ignore[arg-type]


def test_baseline_request_passes_every_rule() -> None:
    ruling = evaluate(BASELINE)
    assert not ruling.refused and ruling.dose_mcg_min == 11.0


def test_every_rule_names_its_requirement() -> None:
    assert all(r.requirement.startswith(("S", "invariant", "GR")) for r in RULES)
    assert len({r.name for r in RULES}) == len(RULES)


@pytest.mark.parametrize(("context", "code"), [
    (asking(11.0, uncertain=True), RefusalCode.UNCERTAIN),
    (asking(11.0, journal_ok=False), RefusalCode.JOURNAL_FAULT),
    (asking(11.0, needs_operator=True, stop_reason=StopReason.OCCLUSION), RefusalCode.STOPPED),
    (asking(11.0, running=False), RefusalCode.NOT_RUNNING),
    (asking(-1.0, requester=Requester.OPERATOR), RefusalCode.NEGATIVE),
    (asking(61.0, requester=Requester.OPERATOR, confirmed=True), RefusalCode.HARD_MAX),
    (asking(31.0, requester=Requester.OPERATOR), RefusalCode.SOFT_MAX),
    (asking(0.0), RefusalCode.STOP_NOT_ALLOWED),
    (asking(11.0, weaning=True), RefusalCode.WEANING),
    (asking(11.0, trusted_map_mmhg=None), RefusalCode.MAP_UNTRUSTED),
    (asking(11.0, trusted_map_mmhg=80.0), RefusalCode.MAP_HIGH),
    (asking(9.0, trusted_map_mmhg=59.0), RefusalCode.MAP_LOW),
    (asking(13.0, starting=True, running=False, requester=Requester.OPERATOR),
     RefusalCode.START_ABOVE_RANGE),
    (asking(11.0, since_last_up_s=60.0), RefusalCode.UP_INTERVAL),
    (asking(0.005, starting=True, running=False, requester=Requester.OPERATOR),
     RefusalCode.RATE_RANGE),
])
def test_one_changed_input_is_refused_by_its_rule(context: RequestContext,
                                                  code: RefusalCode) -> None:
    ruling = evaluate(context)
    assert ruling.code is code
    assert ruling.rule is not None and ruling.reason.startswith(ruling.rule.requirement)
    assert ruling.dose_mcg_min == (0.0 if code in (RefusalCode.NOT_RUNNING, RefusalCode.NEGATIVE,
                                                   RefusalCode.HARD_MAX, RefusalCode.SOFT_MAX)
                                   else context.dose_mcg_min)


def test_operator_may_start_after_a_latched_stop_but_a_controller_may_not() -> None:
    latched = {"needs_operator": True, "stop_reason": StopReason.OCCLUSION, "running": False,
               "starting": True}
    assert not evaluate(asking(10.0, requester=Requester.OPERATOR, **latched)).refused
    assert evaluate(asking(10.0, **latched)).code is RefusalCode.STOPPED


def test_operator_changes_the_dose_on_untrusted_map_and_during_weaning() -> None:
    assert not evaluate(asking(9.0, requester=Requester.OPERATOR, trusted_map_mmhg=None,
                               weaning=True)).refused


def test_soft_maximum_passes_with_a_confirmation() -> None:
    ruling = evaluate(asking(31.0, requester=Requester.OPERATOR, confirmed=True,
                             dose_mcg_min=30.0))
    assert not ruling.refused and ruling.dose_mcg_min == 31.0


def test_an_up_step_is_limited_not_refused() -> None:
    ruling = evaluate(asking(15.0))
    assert not ruling.refused and ruling.dose_mcg_min == pytest.approx(12.0)
    assert ruling.rule is None and "increase limited" in ruling.reason


def test_s6_reads_the_floor_high_and_low() -> None:
    # F = 65: an increase is still allowed just under F + 15, a decrease just at F - 5
    assert not evaluate(asking(11.0, trusted_map_mmhg=79.9)).refused
    assert not evaluate(asking(9.0, trusted_map_mmhg=60.0)).refused
    higher = asking(11.0, trusted_map_mmhg=84.0, floor_mmhg=70.0, lower_limit_mmhg=65.0)
    assert not evaluate(higher).refused


def test_s3_relative_part_lets_a_high_dose_climb_by_a_fifth() -> None:
    # 30 mcg/min: +max(2, 20 % = 6); asked for 40, given 36
    ruling = evaluate(asking(40.0, dose_mcg_min=30.0, requester=Requester.OPERATOR,
                             confirmed=True))
    assert not ruling.refused and ruling.dose_mcg_min == pytest.approx(36.0)
    assert "share of the running dose" in ruling.reason
    # at 10 mcg/min 20 % is 2: the absolute part and the relative part agree
    assert evaluate(asking(15.0)).dose_mcg_min == pytest.approx(12.0)
    # at 5 mcg/min the absolute +2 is the larger part
    assert evaluate(asking(9.0, dose_mcg_min=5.0)).dose_mcg_min == pytest.approx(7.0)


def test_s3_relative_part_bounds_a_decrease_too() -> None:
    ruling = evaluate(asking(20.0, dose_mcg_min=30.0, requester=Requester.OPERATOR))
    assert ruling.dose_mcg_min == pytest.approx(24.0)


def test_an_entry_may_set_the_relative_part_to_zero() -> None:
    absolute = replace(LIMITS, up_step_ratio=0.0, down_step_ratio=0.0)
    up = evaluate(asking(40.0, dose_mcg_min=30.0, requester=Requester.OPERATOR,
                         confirmed=True, limits=absolute))
    assert up.dose_mcg_min == pytest.approx(32.0)
    down = evaluate(asking(20.0, dose_mcg_min=30.0, requester=Requester.OPERATOR,
                           limits=absolute))
    assert down.dose_mcg_min == pytest.approx(28.0)


def test_the_drug_library_names_both_parts_of_s3() -> None:
    assert (LIMITS.max_up_step, LIMITS.up_step_ratio) == (2.0, 0.2)
    assert (LIMITS.max_down_step, LIMITS.down_step_ratio) == (2.0, 0.2)
    assert LIMITS.up_step_at(30.0) == pytest.approx(6.0)
    assert LIMITS.down_step_at(5.0) == pytest.approx(2.0)


def test_a_down_step_is_limited_and_a_start_is_not_slew_limited() -> None:
    assert evaluate(asking(5.0, requester=Requester.OPERATOR)).dose_mcg_min == 8.0
    start = asking(12.0, starting=True, running=False, dose_mcg_min=0.0,
                   requester=Requester.OPERATOR, since_last_up_s=1.0)
    assert evaluate(start).dose_mcg_min == 12.0


def test_map_rules_leave_a_move_the_right_way_alone() -> None:
    assert not evaluate(asking(9.0, trusted_map_mmhg=80.0)).refused
    assert not evaluate(asking(11.0, trusted_map_mmhg=55.0)).refused


# -- issue 19's guard rails (GR1 volume, GR2 tachycardia) ---------------------------------------


def test_an_open_volume_check_holds_an_increase_above_the_soft_max() -> None:
    ruling = evaluate(asking(32.0, dose_mcg_min=30.0, confirmed=True, volume_check_open=True))
    assert ruling.code is RefusalCode.VOLUME_CHECK
    assert "answer the volume check" in ruling.reason


def test_passing_the_soft_max_without_a_recent_volume_check_is_held() -> None:
    ruling = evaluate(asking(31.0, dose_mcg_min=29.0, confirmed=True,
                             volume_checked_recently=False))
    assert ruling.code is RefusalCode.VOLUME_CHECK


def test_the_volume_rule_leaves_other_requests_alone() -> None:
    open_check = {"volume_check_open": True, "volume_checked_recently": False}
    # an increase up to the soft max, a decrease, a start above it, once answered
    assert not evaluate(asking(30.0, dose_mcg_min=28.0, **open_check)).refused
    assert not evaluate(asking(31.0, dose_mcg_min=32.0, confirmed=True, **open_check)).refused
    assert not evaluate(asking(31.0, dose_mcg_min=29.0, confirmed=True)).refused
    starting = asking(35.0, starting=True, running=False, dose_mcg_min=0.0, confirmed=True,
                      **open_check)
    assert not evaluate(starting).refused


def test_unacknowledged_tachycardia_holds_an_increase_above_the_soft_max() -> None:
    held = evaluate(asking(32.0, dose_mcg_min=30.0, confirmed=True,
                           tachycardia_unacknowledged=True))
    assert held.code is RefusalCode.TACHYCARDIA
    assert not evaluate(asking(12.0, tachycardia_unacknowledged=True)).refused
    assert not evaluate(asking(32.0, dose_mcg_min=30.0, confirmed=True)).refused
