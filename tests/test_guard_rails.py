"""Issue 19's guard rails through the supervisor: what they hold, what they let through, what
they journal, and that the volume check comes before the soft maximum is passed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from safety_fixtures import ListSink, MockPump, feed, make_supervisor

from safety.guard_rails import INDUCTION_MAX_S
from safety.supervisor import Supervisor
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.events import (
    AlarmCleared,
    AlarmCode,
    AlarmRaised,
    DoseApplied,
    OperatorAction,
    RefusalCode,
)
from vasopilot.core.types import Beat, DoseRequest, Requester, VolumeAnswer

T0_S = 100.0
SOFT_MAX = NOREPINEPHRINE.soft_max


def running_at(dose: float, map_mmhg: float = 70.0,
               patient: PatientSettings | None = None) -> tuple[Supervisor, MockPump, ListSink]:
    supervisor, pump, sink = make_supervisor(patient=patient)
    feed(supervisor, T0_S - 20, T0_S, map_mmhg=map_mmhg, pump=pump)
    assert supervisor.start(dose, T0_S, soft_limit_confirmed=dose > 12).applied
    feed(supervisor, T0_S, T0_S + 130, map_mmhg=map_mmhg, pump=pump)
    return supervisor, pump, sink


def confirmed(dose: float) -> DoseRequest:
    return DoseRequest(dose, Requester.OPERATOR, "nurse confirms", soft_limit_confirmed=True,
                       sender="nurse")


def open_codes(supervisor: Supervisor) -> set[AlarmCode]:
    return {a.code for a in supervisor.alarms}


def test_the_soft_maximum_under_the_floor_asks_for_volume_and_holds_until_answered() -> None:
    supervisor, _pump, sink = running_at(30.0, map_mmhg=60.0)
    assert AlarmCode.VOLUME_CHECK in open_codes(supervisor)
    assert supervisor.view().volume_check_open
    t = T0_S + 131
    held = supervisor.request(confirmed(32.0), t)
    assert held.code is RefusalCode.VOLUME_CHECK and held.dose_mcg_min == 30.0
    supervisor.answer_volume_check(VolumeAnswer.FLUID_GIVEN, t + 1, by="nurse")
    answer = [e for e in sink.events if isinstance(e, OperatorAction)][-1]
    assert (answer.action, answer.by, answer.volume_answer) == (
        "volume_assessed", "nurse", VolumeAnswer.FLUID_GIVEN)
    assert any(isinstance(e, AlarmCleared) and e.code is AlarmCode.VOLUME_CHECK
               for e in sink.events)
    assert supervisor.request(confirmed(32.0), t + 2).applied


def test_passing_the_soft_maximum_asks_for_volume_first() -> None:
    supervisor, _pump, sink = running_at(29.0)  # MAP at the floor: no check yet
    assert AlarmCode.VOLUME_CHECK not in open_codes(supervisor)
    held = supervisor.request(confirmed(31.0), T0_S + 131)
    assert held.code is RefusalCode.VOLUME_CHECK
    prompt = [e for e in sink.events if isinstance(e, AlarmRaised)
              and e.code is AlarmCode.VOLUME_CHECK]
    assert len(prompt) == 1 and "31.0 mcg/min was asked for" in prompt[0].message
    supervisor.answer_volume_check(VolumeAnswer.NOT_INDICATED, T0_S + 140)
    assert supervisor.request(confirmed(31.0), T0_S + 141).applied


def test_an_assessment_before_the_prompt_lets_the_dose_pass_the_soft_maximum() -> None:
    supervisor, _pump, sink = running_at(29.0)
    supervisor.answer_volume_check(VolumeAnswer.ASSESSED, T0_S + 131)
    assert supervisor.request(confirmed(31.0), T0_S + 132).applied
    assert not any(isinstance(e, AlarmRaised) and e.code is AlarmCode.VOLUME_CHECK
                   for e in sink.events)


def test_the_volume_check_never_holds_a_decrease_or_a_dose_within_the_soft_maximum() -> None:
    supervisor, pump, _sink = running_at(30.0, map_mmhg=60.0)
    assert supervisor.view().volume_check_open
    t = feed(supervisor, T0_S + 130, T0_S + 200, map_mmhg=70.0, pump=pump)
    assert supervisor.request(DoseRequest(28.0, Requester.CONTROLLER, "MAP fine"), t).applied
    t = feed(supervisor, t, t + 130, map_mmhg=60.0, pump=pump)
    assert supervisor.request(DoseRequest(30.0, Requester.CONTROLLER, "MAP low"), t).applied


def test_unacknowledged_tachycardia_holds_an_increase_above_the_soft_maximum() -> None:
    supervisor, pump, _sink = running_at(30.0)
    supervisor.answer_volume_check(VolumeAnswer.ASSESSED, T0_S + 130)
    t = T0_S + 130
    for k in range(170):  # 140/min for 73 s
        t_s = t + k * 60.0 / 140.0
        pump.t_s = t_s
        supervisor.on_beat(Beat(t_s, 110.0, 65.0, 70.0, 140.0), t_s)
        supervisor.tick(t_s)
    t = t + 75.0
    assert AlarmCode.TACHYCARDIA in open_codes(supervisor)
    assert supervisor.request(confirmed(32.0), t).code is RefusalCode.TACHYCARDIA
    supervisor.acknowledge(AlarmCode.TACHYCARDIA, t + 1, by="nurse")
    assert supervisor.request(confirmed(32.0), t + 2).applied


def test_a_floor_far_below_the_usual_sbp_needs_a_confirmation() -> None:
    patient = PatientSettings(floor_mmhg=80.0, usual_sbp_mmhg=150.0)
    supervisor, _pump, _sink = running_at(10.0, patient=patient)
    refused = supervisor.set_floor(70.0, T0_S + 131, by="nurse")
    assert refused.code is RefusalCode.TARGET_BELOW_USUAL
    assert "more than 40 mmHg below the usual SBP of 150" in refused.reason
    assert supervisor.set_floor(82.0, T0_S + 132).applied
    assert supervisor.set_floor(70.0, T0_S + 133, confirmed=True).applied
    assert supervisor.view().floor_mmhg == 70.0


def _sbp(supervisor: Supervisor, pump: MockPump, sbp_mmhg: float, t0_s: float, *,
         map_mmhg: float = 75.0, seconds: int = 90) -> None:
    for t_s in range(int(t0_s), int(t0_s) + seconds):
        pump.t_s = float(t_s)
        supervisor.on_beat(Beat(float(t_s), sbp_mmhg, 55.0, map_mmhg, 60.0), float(t_s))
        supervisor.tick(float(t_s))


def test_the_usual_sbp_raises_the_sbp_alarm_threshold() -> None:
    patient = PatientSettings(floor_mmhg=80.0, usual_sbp_mmhg=150.0)
    supervisor, pump, _ = running_at(10.0, map_mmhg=80.0, patient=patient)
    _sbp(supervisor, pump, 105.0, T0_S + 131)
    assert AlarmCode.SBP_LOW in open_codes(supervisor)
    alarm = next(a for a in supervisor.alarms if a.code is AlarmCode.SBP_LOW)
    assert "below 110" in alarm.message


def test_without_a_usual_sbp_the_alarm_waits_for_sbp_under_90_with_map_under_the_floor() -> None:
    supervisor, pump, _ = running_at(10.0)
    _sbp(supervisor, pump, 115.0, T0_S + 131, map_mmhg=62.0)
    assert AlarmCode.SBP_LOW not in open_codes(supervisor)
    _sbp(supervisor, pump, 86.0, T0_S + 221, map_mmhg=62.0)
    assert AlarmCode.SBP_LOW in open_codes(supervisor)
    alarm = next(a for a in supervisor.alarms if a.code is AlarmCode.SBP_LOW)
    assert "with MAP 62 under the floor of 65" in alarm.message
    # S6 on the floor: MAP_LOW speaks under F too, so SBP_LOW beside it names the older rule
    assert AlarmCode.MAP_LOW in open_codes(supervisor)


def test_sbp_under_90_at_a_map_on_its_floor_is_not_an_alarm() -> None:
    """SBP 86 at MAP 70: a pulse pressure of about 24 mmHg at a MAP on target; the floor the
    rig titrates to is met, so no false alarm. It clears once the MAP is back, too."""
    supervisor, pump, _ = running_at(10.0)
    _sbp(supervisor, pump, 86.0, T0_S + 131, map_mmhg=70.0, seconds=600)
    assert AlarmCode.SBP_LOW not in open_codes(supervisor)
    _sbp(supervisor, pump, 86.0, T0_S + 731, map_mmhg=62.0)
    assert AlarmCode.SBP_LOW in open_codes(supervisor)
    _sbp(supervisor, pump, 86.0, T0_S + 821, map_mmhg=70.0, seconds=60)
    assert AlarmCode.SBP_LOW not in open_codes(supervisor)


def test_sbp_waits_out_the_induction_but_not_hypotension_that_persists_beyond_it() -> None:
    """Started at MAP 52 (SBP 80): MAP_LOW says so at once; SBP_LOW would only repeat it while
    the drug is climbing, and comes once INDUCTION_MAX_S has passed with SBP still low."""
    supervisor, pump, _ = make_supervisor()
    feed(supervisor, 0.0, 20.0, map_mmhg=52.0, pump=pump)
    assert supervisor.start(10.0, 20.0).applied
    _sbp(supervisor, pump, 80.0, 21.0, map_mmhg=52.0, seconds=int(INDUCTION_MAX_S) - 60)
    assert AlarmCode.MAP_LOW in open_codes(supervisor)
    assert AlarmCode.SBP_LOW not in open_codes(supervisor)
    _sbp(supervisor, pump, 80.0, INDUCTION_MAX_S - 39, map_mmhg=52.0, seconds=130)
    assert AlarmCode.SBP_LOW in open_codes(supervisor)


actions = st.lists(st.one_of(
    st.tuples(st.just("request"), st.floats(0.5, 59.0), st.sampled_from(list(Requester)),
              st.booleans()),
    st.tuples(st.just("answer"), st.sampled_from(list(VolumeAnswer))),
    st.tuples(st.just("beats"), st.floats(45.0, 80.0), st.integers(1, 400)),
), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(actions)
def test_no_increase_passes_the_soft_maximum_while_a_volume_check_is_open(
    plan: list[tuple[object, ...]],
) -> None:
    """Whatever is asked, answered or measured: every increase to above the soft maximum is
    applied with no volume check open, and after an answer or an open check's raise."""
    supervisor, pump, sink = running_at(10.0)
    t = T0_S + 130
    for step in plan:
        match step:
            case ("request", float() as dose, Requester() as who, bool() as sure):
                supervisor.request(DoseRequest(dose, who, "plan", sure), t)
            case ("answer", VolumeAnswer() as answer):
                supervisor.answer_volume_check(answer, t)
            case ("beats", float() as map_mmhg, int() as seconds):
                t = feed(supervisor, t, t + seconds, map_mmhg=map_mmhg, pump=pump)
        t += 1.0
    open_check = False
    answered = False
    for event in sink.events:
        if isinstance(event, AlarmRaised) and event.code is AlarmCode.VOLUME_CHECK:
            open_check = True
        elif isinstance(event, AlarmCleared) and event.code is AlarmCode.VOLUME_CHECK:
            open_check = False
        elif isinstance(event, OperatorAction) and event.volume_answer is not None:
            answered = True
        elif isinstance(event, DoseApplied) and event.dose_mcg_min > SOFT_MAX \
                and event.dose_mcg_min > event.previous_dose_mcg_min \
                and event.previous_dose_mcg_min > 0:
            assert not open_check
            assert answered
