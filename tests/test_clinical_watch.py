"""The dose's guard rails as pure watches: volume before escalation, the peripheral line's
time, prolonged high doses (issue 19). Each raises when it should and stays quiet otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from safety.clinical import (
    VOLUME_REARM_S,
    HighDoseWatch,
    LineTimeWatch,
    VolumeRule,
    VolumeWatch,
)
from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Priority, VolumeAnswer

RULE = VolumeRule(ratio=2.0, rise_mcg_min=10.0, window_s=1800.0, soft_max_mcg_min=30.0,
                  start_min_mcg_min=8.0)
FLOOR = 65.0
MIN = 60.0
HOUR = 3600.0


def climb(watch: VolumeWatch, doses: Sequence[tuple[float, float]], *, map_mmhg: float = 58.0,
          step_s: float = 10.0, held_until_s: float | None = None,
          held_from_s: float = 0.0) -> float | None:
    """Feed (t_s, dose) steps, assessing every ``step_s``; when the check opened (s), or None.
    The MAP is ``map_mmhg``, or 70 mmHg (at the floor) from ``held_from_s`` until
    ``held_until_s``."""
    schedule = sorted(doses)
    end_s = schedule[-1][0] + step_s
    t, i, dose = schedule[0][0], 0, 0.0
    while t <= end_s:
        while i < len(schedule) and schedule[i][0] <= t:
            dose = schedule[i][1]
            i += 1
        held = held_until_s is not None and held_from_s <= t < held_until_s
        map_now = 70.0 if held else map_mmhg
        watch.on_dose(t, dose)
        watch.on_map(t, map_now, FLOOR)
        order = watch.assess(t, map_now, FLOOR)
        if order is not None and order.priority is not None:
            return t
        t += step_s
    return None


def ramp(start_s: float, from_mcg_min: float, to_mcg_min: float, step: float = 2.0,
         every_s: float = 120.0) -> list[tuple[float, float]]:
    doses, dose, t = [], from_mcg_min, start_s
    while dose < to_mcg_min + 1e-9:
        doses.append((t, dose))
        dose, t = dose + step, t + every_s
    return doses


def established_climb(to_mcg_min: float) -> list[tuple[float, float]]:
    """10 mcg/min for 20 min (the MAP held the floor on it), then +2 every 2 min."""
    return [(0.0, 10.0), *ramp(20 * MIN, 12.0, to_mcg_min)]


def test_a_doubling_within_30_min_from_an_established_dose_opens_the_check() -> None:
    watch = VolumeWatch(RULE)
    opened = climb(watch, established_climb(24.0), held_until_s=20 * MIN)
    assert opened == 28 * MIN  # 10 -> 20 mcg/min at +2 per 2 min from 12 at 20 min
    assert watch.open
    order = watch.assess(opened, 58.0, FLOOR)
    assert order is not None and "from 10.0 to 20.0 mcg/min (x2.0)" in order.message


def test_the_induction_ramp_to_the_first_dose_that_holds_the_floor_is_not_an_escalation() -> None:
    """Started at 10 under the floor and climbing to 24: no dose has held the floor yet, so
    there is nothing to escalate from (the soft maximum's trigger still stands guard)."""
    assert climb(VolumeWatch(RULE), ramp(0.0, 10.0, 24.0)) is None


def test_the_climb_goes_on_from_the_first_dose_that_held_the_floor() -> None:
    """The MAP reached the floor on 16 (at 6 min) during the induction ramp: 16 -> 26 is no
    escalation, 16 -> 28 (+12) is."""
    doses = [*ramp(0.0, 10.0, 16.0), *ramp(16 * MIN, 18.0, 26.0)]
    held = {"held_from_s": 6 * MIN, "held_until_s": 16 * MIN}
    assert climb(VolumeWatch(RULE), doses, **held) is None
    doses = [*ramp(0.0, 10.0, 16.0), *ramp(16 * MIN, 18.0, 28.0)]
    assert climb(VolumeWatch(RULE), doses, **held) == 16 * MIN + 10 * MIN


def test_a_doubling_from_under_the_start_range_is_not_an_escalation() -> None:
    """4 -> 9 mcg/min doubles a dose below the start range's 8: not substantial; 4 -> 15 rises
    by 11 and is."""
    doses = [(0.0, 4.0), (20 * MIN, 6.0), (22 * MIN, 9.0)]
    assert climb(VolumeWatch(RULE), doses, held_until_s=20 * MIN) is None
    doses = [(0.0, 4.0), *ramp(20 * MIN, 6.0, 15.0, step=3.0)]
    assert climb(VolumeWatch(RULE), doses, held_until_s=20 * MIN) == 26 * MIN


def test_a_rise_of_more_than_10_within_30_min_opens_the_check() -> None:
    watch = VolumeWatch(RULE)
    opened = climb(watch, [(0.0, 25.0), *ramp(40 * MIN, 27.0, 40.0)], map_mmhg=70.0)
    assert opened == 50 * MIN  # 25 -> 37: the ratio is 1.5
    order = watch.assess(opened, 70.0, FLOOR)
    assert order is not None and "rose by 12.0 mcg/min (from 25.0 to 37.0)" in order.message


def test_a_slow_climb_is_not_an_escalation() -> None:
    assert climb(VolumeWatch(RULE), ramp(0.0, 10.0, 26.0, step=1.0, every_s=8 * MIN),
                 map_mmhg=70.0) is None


def test_a_doubling_within_the_start_range_is_not_an_escalation() -> None:
    assert climb(VolumeWatch(RULE), ramp(0.0, 5.0, 12.0, step=1.0), held_until_s=MIN) is None


def test_reaching_the_soft_maximum_under_the_floor_opens_the_check() -> None:
    doses = [(0.0, 28.0), (40 * MIN, 30.0)]
    watch = VolumeWatch(RULE)
    assert climb(watch, doses, map_mmhg=60.0) == 40 * MIN
    order = watch.assess(40 * MIN, 60.0, FLOOR)
    assert order is not None and order.priority is Priority.MEDIUM
    assert "reached the soft maximum" in order.message
    assert order.message.startswith("check volume status before escalating further")


def test_the_soft_maximum_with_map_at_the_floor_is_quiet() -> None:
    assert climb(VolumeWatch(RULE), [(0.0, 28.0), (40 * MIN, 30.0)], map_mmhg=66.0) is None


def test_the_check_stays_open_until_an_operator_answers() -> None:
    watch = VolumeWatch(RULE)
    opened = climb(watch, established_climb(24.0), held_until_s=20 * MIN)
    assert opened is not None
    for t in range(int(opened), int(opened + 2 * HOUR), 60):
        order = watch.assess(float(t), 58.0, FLOOR)
        assert order is not None and order.priority is Priority.MEDIUM
    done = watch.answer(opened + 2 * HOUR, VolumeAnswer.FLUID_GIVEN)
    assert done.code is AlarmCode.VOLUME_CHECK and done.priority is None
    assert not watch.open and watch.last_answer is VolumeAnswer.FLUID_GIVEN
    assert watch.answered_within_window(opened + 2 * HOUR + 60.0)


def test_after_an_answer_escalation_counts_from_the_answered_dose() -> None:
    watch = VolumeWatch(RULE)
    opened = climb(watch, established_climb(20.0), held_until_s=20 * MIN)
    assert opened is not None
    watch.answer(opened, VolumeAnswer.ASSESSED)
    # +2 every 2 min from 20: +10 is reached 10 min after the answer, but the check waits
    # VOLUME_REARM_S, then measures from the answered dose, 20
    again = climb(watch, ramp(opened + 120.0, 22.0, 40.0))
    assert again is not None and again >= opened + VOLUME_REARM_S
    order = watch.assess(again, 58.0, FLOOR)
    assert order is not None and "to 3" in order.message


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 4 * HOUR), st.floats(1.0, 60.0)), min_size=1,
                max_size=40),
       st.floats(20.0, 120.0))
def test_the_check_never_asks_more_often_than_it_rearms(
    doses: list[tuple[float, float]], answer_after_s: float
) -> None:
    """Whatever the doses, an operator who answers each check within ``answer_after_s`` sees
    one at most every VOLUME_REARM_S."""
    watch = VolumeWatch(RULE)
    raises: list[float] = []
    answers: list[float] = []
    schedule = sorted(doses)
    t, i, dose = 0.0, 0, 0.0
    while t <= 5 * HOUR:
        while i < len(schedule) and schedule[i][0] <= t:
            dose = schedule[i][1]
            i += 1
        watch.on_dose(t, dose)
        order = watch.assess(t, 58.0, FLOOR)
        if order is not None and order.priority is not None:
            if len(raises) == len(answers):
                raises.append(t)
            elif t - raises[-1] >= answer_after_s:
                watch.answer(t, VolumeAnswer.ASSESSED)
                answers.append(t)
        t += 10.0
    for answered, next_raise in zip(answers, raises[1:], strict=False):
        assert next_raise - answered >= VOLUME_REARM_S


def test_a_stopped_infusion_starts_a_new_history() -> None:
    watch = VolumeWatch(RULE)
    doses = [(0.0, 10.0), (10 * MIN, 0.0), (15 * MIN, 12.0), (20 * MIN, 22.0)]
    assert climb(watch, doses, held_until_s=10 * MIN) is None


# -- the peripheral line -----------------------------------------------------------------------


def run_line(watch: LineTimeWatch, until_s: float, *, running: bool = True,
             start_s: float = 0.0) -> dict[AlarmCode, list[float]]:
    seen: dict[AlarmCode, list[float]] = {}
    t = start_s
    while t <= until_s:
        for order in watch.assess(t, running=running):
            if order.priority is not None:
                seen.setdefault(order.code, []).append(t)
        t += 30.0
    return seen


def test_a_peripheral_line_prompts_for_the_cannula_every_hour() -> None:
    watch = LineTimeWatch(peripheral=True, check_s=HOUR, max_s=24 * HOUR)
    seen = run_line(watch, 3.5 * HOUR)
    assert seen == {AlarmCode.CANNULA_CHECK: [HOUR, 2 * HOUR, 3 * HOUR]}
    prompt = watch.assess(4 * HOUR, running=True)[0]
    assert prompt.momentary and prompt.priority is Priority.LOW
    assert prompt.message.startswith("inspect the cannula site")


def test_a_central_line_never_prompts() -> None:
    assert run_line(LineTimeWatch(peripheral=False, check_s=HOUR, max_s=2 * HOUR),
                    30 * HOUR) == {}


def test_time_without_infusion_does_not_count() -> None:
    watch = LineTimeWatch(peripheral=True, check_s=HOUR, max_s=24 * HOUR)
    assert run_line(watch, 5 * HOUR, running=False) == {}
    assert run_line(watch, 5.9 * HOUR, start_s=5 * HOUR + 30.0) == {}


def test_the_peripheral_maximum_raises_a_medium_alarm() -> None:
    watch = LineTimeWatch(peripheral=True, check_s=4 * HOUR, max_s=6 * HOUR)
    seen = run_line(watch, 6.5 * HOUR)
    assert seen[AlarmCode.PERIPHERAL_LINE_TIME][0] == 6 * HOUR
    assert seen[AlarmCode.CANNULA_CHECK] == [4 * HOUR]
    order = next(o for o in watch.assess(7 * HOUR, running=True)
                 if o.code is AlarmCode.PERIPHERAL_LINE_TIME)
    assert order.priority is Priority.MEDIUM and "central line" in order.message


# -- prolonged high doses ----------------------------------------------------------------------


def run_dose(watch: HighDoseWatch, doses: Sequence[tuple[float, float]],
             until_s: float) -> list[tuple[float, bool]]:
    """Transitions of the advisory (t_s, raised) over a dose schedule, a minute apart."""
    transitions: list[tuple[float, bool]] = []
    schedule, i, dose, t = sorted(doses), 0, 0.0, 0.0
    while t <= until_s:
        while i < len(schedule) and schedule[i][0] <= t:
            dose = schedule[i][1]
            i += 1
        active = watch.assess(t, dose, running=True).priority is not None
        if (not transitions and active) or (transitions and transitions[-1][1] != active):
            transitions.append((t, active))
        t += 60.0
    return transitions


def test_two_hours_above_the_soft_maximum_raises_the_advisory() -> None:
    watch = HighDoseWatch(30.0, 6 * HOUR, 2 * HOUR)
    transitions = run_dose(watch, [(0.0, 20.0), (HOUR, 36.0)], 4 * HOUR)
    assert transitions == [(3 * HOUR + 60.0, True)]
    order = watch.assess(4 * HOUR, 36.0, running=True)
    assert order.priority is Priority.LOW
    assert order.message.startswith("prolonged high-dose vasopressor: check perfusion of the "
                                    "extremities")


def test_spells_above_the_soft_maximum_add_up_within_the_window() -> None:
    doses = [(0.0, 32.0), (HOUR, 25.0), (2 * HOUR, 32.0), (3 * HOUR + 10 * MIN, 25.0)]
    assert run_dose(HighDoseWatch(30.0, 6 * HOUR, 2 * HOUR), doses, 5 * HOUR)[0][1]


def test_at_the_soft_maximum_or_under_the_limit_stays_quiet() -> None:
    assert run_dose(HighDoseWatch(30.0, 6 * HOUR, 2 * HOUR), [(0.0, 30.0)], 12 * HOUR) == []
    doses = [(0.0, 40.0), (110 * MIN, 20.0)]
    assert run_dose(HighDoseWatch(30.0, 6 * HOUR, 2 * HOUR), doses, 12 * HOUR) == []


def test_the_advisory_clears_well_under_its_limit_as_the_window_slides() -> None:
    transitions = run_dose(HighDoseWatch(30.0, 6 * HOUR, 2 * HOUR),
                           [(0.0, 40.0), (3 * HOUR, 20.0)], 12 * HOUR)
    assert [active for _, active in transitions] == [True, False]
    cleared_s = transitions[1][0]
    # 3 h above from 0 to 3 h; under 1.5 h in the window once it starts after 1.5 h
    assert 7.5 * HOUR <= cleared_s <= 7.5 * HOUR + 120.0


def test_the_peripheral_maximum_alarm_goes_when_the_infusion_stops() -> None:
    watch = LineTimeWatch(peripheral=True, check_s=4 * HOUR, max_s=HOUR)
    run_line(watch, 1.5 * HOUR)
    stopped = watch.assess(1.5 * HOUR + 30.0, running=False)
    assert [(o.code, o.priority) for o in stopped] == [(AlarmCode.PERIPHERAL_LINE_TIME, None)]


def test_staying_above_the_soft_maximum_under_the_floor_does_not_ask_again() -> None:
    watch = VolumeWatch(RULE)
    opened = climb(watch, [(0.0, 28.0), (40 * MIN, 32.0)], map_mmhg=60.0)
    assert opened is not None
    watch.answer(opened, VolumeAnswer.ASSESSED)
    assert climb(watch, [(opened + 60.0, 32.0), (opened + 3 * HOUR, 33.0)], map_mmhg=60.0) \
        is None
    # back under the soft maximum and up again, once the answer is old: it asks
    assert climb(watch, [(opened + 4 * HOUR, 28.0), (opened + 5 * HOUR, 30.0)],
                 map_mmhg=60.0) == opened + 5 * HOUR


def test_climbing_back_after_a_dip_is_not_an_escalation() -> None:
    """A titrating loop swings around its patient's need: 14 -> 6 -> 14 in half an hour."""
    watch = VolumeWatch(RULE)
    swings = [(0.0, 14.0), (40 * MIN, 6.0), *ramp(50 * MIN, 8.0, 14.0)]
    assert climb(watch, swings, map_mmhg=66.0) is None
    assert climb(watch, [(70 * MIN, 14.0), *ramp(72 * MIN, 16.0, 30.0)], map_mmhg=66.0) \
        == 74 * MIN  # past 14, the rise counts again: 6 -> 18 (+12) within 30 min
