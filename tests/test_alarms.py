"""S11 for every alarm code: raised through the supervisor, silenced ≤ 2 min, acknowledged, cleared.

Each scenario drives a running supervisor (10 mcg/min, good MAP) into the condition and returns
a function that removes the cause the way a bedside would (new data, new syringe, restart).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from safety_fixtures import ListSink, MockPump, feed, make_supervisor

from safety.alarms import ALARM_PRIORITY, AlarmCode, AlarmManager
from safety.resume import ResumeState
from safety.supervisor import Supervisor
from vasopilot.core.config import (
    NOREPINEPHRINE,
    NOREPINEPHRINE_PERIPHERAL,
    PatientSettings,
    SafetySettings,
)
from vasopilot.core.events import AlarmAcknowledged, AlarmCleared, AlarmRaised, AlarmSilenced
from vasopilot.core.types import Beat, DoseRequest, PumpAlarm, PumpState, Requester, VolumeAnswer

T0_S = 100.0
Fix = Callable[[float], None]
Scenario = Callable[[Supervisor, MockPump, ListSink], Fix]


def _restart(supervisor: Supervisor, pump: MockPump) -> Fix:
    def fix(t_s: float) -> None:
        pump.remaining_ml, pump.stalled, pump.alarm = 50.0, False, None
        feed(supervisor, t_s - 5, t_s, pump=pump)
        assert supervisor.start(10.0, t_s).applied

    return fix


def _good_beats(supervisor: Supervisor, pump: MockPump) -> Fix:
    def fix(t_s: float) -> None:
        feed(supervisor, t_s - 1, t_s, pump=pump)

    return fix


def map_stale(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    supervisor.tick(T0_S + 15)
    return _good_beats(supervisor, pump)


def map_low(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    feed(supervisor, T0_S, T0_S + 30, map_mmhg=55.0, pump=pump)  # a sustained drop
    return _good_beats(supervisor, pump)


def occlusion(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.stalled = True
    supervisor.tick(T0_S + 1)
    return _restart(supervisor, pump)


def extravasation(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    supervisor.report_extravasation(T0_S + 1, by="nurse")
    return _restart(supervisor, pump)


def near_empty(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.remaining_ml = 1.0
    supervisor.tick(T0_S + 1)

    def fix(t_s: float) -> None:
        pump.remaining_ml = 50.0
        feed(supervisor, t_s - 1, t_s, pump=pump)

    return fix


def empty(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.remaining_ml = 0.0
    supervisor.tick(T0_S + 1)
    return _restart(supervisor, pump)


def changeover(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.remaining_ml = 0.05
    supervisor.tick(T0_S + 1)
    return lambda t_s: None


def pump_fault(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.state, pump.rate_ml_h, pump.alarm = PumpState.ALARM, 0.0, PumpAlarm.PROGRAM_ERROR
    supervisor.tick(T0_S + 1)
    return _restart(supervisor, pump)


def disconnected(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.disconnected = True
    supervisor.tick(T0_S + 1)

    def fix(t_s: float) -> None:
        pump.disconnected = False
        feed(supervisor, t_s - 1, t_s, pump=pump)

    return fix


def uncertain(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.drop_ack_next = pump.uncertain = True
    supervisor.request(DoseRequest(9.0, Requester.CONTROLLER, "test"), T0_S + 1)

    def fix(t_s: float) -> None:
        pump.uncertain = False
        feed(supervisor, t_s - 1, t_s, pump=pump)

    return fix


def host_timeout(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.state, pump.rate_ml_h, pump.alarm = PumpState.ALARM, 0.0, PumpAlarm.HOST_TIMEOUT
    supervisor.tick(T0_S + 1)
    return _restart(supervisor, pump)


def restarted(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    supervisor.resume(ResumeState(10.0, None, False, ()), T0_S + 1)
    return lambda t_s: None


def hard_limit(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    supervisor.request(DoseRequest(70.0, Requester.OPERATOR, "typo"), T0_S + 1)
    return lambda t_s: None


def uncommanded(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    pump.keypad(3.0)  # someone at the pump's keypad
    supervisor.tick(T0_S + 1)
    return lambda t_s: None


def journal_fault(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    sink.refusing = True  # the journal's disk is full
    supervisor.request(DoseRequest(9.0, Requester.CONTROLLER, "test"), T0_S + 1)

    def fix(t_s: float) -> None:
        sink.refusing = False
        feed(supervisor, t_s - 1, t_s, pump=pump)

    return fix


def _vitals(supervisor: Supervisor, pump: MockPump, t0_s: float, seconds: float, *,
            hr_bpm: float = 80.0, sbp_mmhg: float = 110.0, map_mmhg: float = 70.0,
            irregular: bool = False) -> float:
    """Beats at ``hr_bpm`` (fibrillation-like intervals if ``irregular``; a beat's rate is 60
    over the time to the next onset) with one tick per beat; returns the time reached."""
    rng = random.Random(7)
    t_s = t0_s
    while t_s < t0_s + seconds:
        rr_s = 60.0 / hr_bpm * (rng.uniform(0.6, 1.4) if irregular else 1.0)
        pump.t_s = t_s
        supervisor.on_beat(Beat(t_s=t_s, sbp_mmhg=sbp_mmhg, dbp_mmhg=sbp_mmhg - 45.0,
                                map_mmhg=map_mmhg, hr_bpm=60.0 / rr_s), t_s)
        supervisor.tick(t_s)
        t_s += rr_s
    return t_s


def _then_normal_beats(supervisor: Supervisor, pump: MockPump, seconds: float) -> Fix:
    def fix(t_s: float) -> None:
        _vitals(supervisor, pump, t_s, seconds)
    return fix


def tachycardia(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    _vitals(supervisor, pump, T0_S, 70.0, hr_bpm=140.0)
    return _then_normal_beats(supervisor, pump, 40.0)


def bradycardia(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    _vitals(supervisor, pump, T0_S, 70.0, hr_bpm=35.0)
    return _then_normal_beats(supervisor, pump, 40.0)


def rhythm_irregular(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    _vitals(supervisor, pump, T0_S, 100.0, irregular=True)
    return _then_normal_beats(supervisor, pump, 130.0)


def sbp_low(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    # induction ends once MAP 70 has held the floor; then SBP 82 with MAP 62, under the floor
    t_s = _vitals(supervisor, pump, T0_S, 70.0)
    _vitals(supervisor, pump, t_s, 70.0, sbp_mmhg=82.0, map_mmhg=62.0)
    return _then_normal_beats(supervisor, pump, 40.0)


def volume_check(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    t_s = feed(supervisor, T0_S, T0_S + 130, pump=pump)
    assert supervisor.request(DoseRequest(12.0, Requester.CONTROLLER, "MAP low"), t_s).applied
    feed(supervisor, t_s, t_s + 2, pump=pump)

    def fix(t_s: float) -> None:
        supervisor.answer_volume_check(VolumeAnswer.FLUID_GIVEN, t_s, by="nurse")
    return fix


def cannula_check(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    feed(supervisor, T0_S, T0_S + 15 * 60 + 1, pump=pump)
    return lambda t_s: None  # a prompt: acknowledging it is the answer


def peripheral_line_time(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    feed(supervisor, T0_S, T0_S + 900 + 1, pump=pump)

    def fix(t_s: float) -> None:
        supervisor.operator_stop(t_s, reason="moving to a central line")
        supervisor.tick(t_s)
    return fix


def prolonged_high_dose(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    t_s = feed(supervisor, T0_S, T0_S + 130, pump=pump)
    supervisor.answer_volume_check(VolumeAnswer.ASSESSED, t_s)
    for dose in (12.0, 14.0):  # 12 is this entry's soft maximum
        decision = supervisor.request(DoseRequest(dose, Requester.OPERATOR, "refractory", True),
                                      t_s)
        assert decision.applied and decision.dose_mcg_min == dose, decision
        t_s = feed(supervisor, t_s, t_s + 130, pump=pump)
    feed(supervisor, t_s, t_s + 900, pump=pump)

    def fix(t_s: float) -> None:
        supervisor.request(DoseRequest(12.0, Requester.OPERATOR, "lower"), t_s)
        feed(supervisor, t_s, t_s + 3600, pump=pump)
    return fix


PERIPHERAL = {"drug": NOREPINEPHRINE_PERIPHERAL, "patient": PatientSettings(line="peripheral")}
# How the supervisor is set up for a scenario, where the defaults cannot show it quickly.
SETUPS: dict[AlarmCode, dict[str, Any]] = {
    AlarmCode.VOLUME_CHECK: {"drug": NOREPINEPHRINE.model_copy(
        update={"volume_check_rise_mcg_min": 1.0})},
    AlarmCode.CANNULA_CHECK: {**PERIPHERAL, "safety": SafetySettings(cannula_check_min=15.0)},
    AlarmCode.PERIPHERAL_LINE_TIME: {
        "drug": NOREPINEPHRINE_PERIPHERAL.model_copy(update={"peripheral_max_hours": 0.25}),
        "patient": PatientSettings(line="peripheral"),
        "safety": SafetySettings(cannula_check_min=240.0)},
    AlarmCode.PROLONGED_HIGH_DOSE: {
        "drug": NOREPINEPHRINE.model_copy(update={"soft_max": 12.0}),
        "safety": SafetySettings(high_dose_window_h=1.0, high_dose_limit_h=0.25)},
}


def _line(supervisor: Supervisor, pump: MockPump, resistance: Callable[[float], float],
          offset: Callable[[float], float]) -> None:
    """A line at 8 mmHg + Q·R(t) + offset(t) until T0 + 660 s, Q the pump's own rate (0 while a
    probe pauses it), one sample a second: long enough for the reference pause, a rise held
    from T0 + 420 s, and the pause that judges it."""
    t_s = T0_S
    while t_s < T0_S + 660:
        pump.line_pressure_mmhg = 8.0 + pump.rate_ml_h * resistance(t_s) + offset(t_s)
        feed(supervisor, t_s, t_s + 1, pump=pump)
        t_s += 1


def _after(t0_s: float, value: float) -> Callable[[float], float]:
    return lambda t: value if t >= T0_S + t0_s else 0.0


def cannula_site(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    # The resistance grows by 10 mmHg at the running rate: pressure that comes with the flow.
    _line(supervisor, pump, lambda t: 0.5 + _after(420.0, 10.0 / 7.5)(t), lambda t: 0.0)
    restart = _restart(supervisor, pump)

    def fix(t_s: float) -> None:  # a new cannula, and the operator restarts
        supervisor.operator_stop(t_s - 6, by="nurse", reason="resite")
        restart(t_s)

    return fix


def line_pressure_changed(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    # The pump is lowered: 10 mmHg more whatever the flow.
    _line(supervisor, pump, lambda t: 0.5, _after(420.0, 10.0))
    return lambda t_s: None


def target_unreachable(supervisor: Supervisor, pump: MockPump, sink: ListSink) -> Fix:
    # the closed loop's evidence, through the runtime (tests/test_control_reach.py)
    supervisor.report_unreachable("the hard maximum has run 10 min with MAP under the set-point",
                                  T0_S + 1, by="closed-loop mode")
    return supervisor.reachable_again


SCENARIOS: dict[AlarmCode, Scenario] = {
    AlarmCode.MAP_STALE: map_stale,
    AlarmCode.MAP_LOW: map_low,
    AlarmCode.OCCLUSION: occlusion,
    AlarmCode.EXTRAVASATION: extravasation,
    AlarmCode.SYRINGE_NEAR_EMPTY: near_empty,
    AlarmCode.SYRINGE_EMPTY: empty,
    AlarmCode.CHANGEOVER: changeover,
    AlarmCode.PUMP_FAULT: pump_fault,
    AlarmCode.PUMP_DISCONNECTED: disconnected,
    AlarmCode.DELIVERY_UNCERTAIN: uncertain,
    AlarmCode.HOST_TIMEOUT: host_timeout,
    AlarmCode.RESTARTED: restarted,
    AlarmCode.HARD_LIMIT_REFUSED: hard_limit,
    AlarmCode.PUMP_UNCOMMANDED: uncommanded,
    AlarmCode.JOURNAL_FAULT: journal_fault,
    AlarmCode.VOLUME_CHECK: volume_check,
    AlarmCode.TACHYCARDIA: tachycardia,
    AlarmCode.BRADYCARDIA: bradycardia,
    AlarmCode.RHYTHM_IRREGULAR: rhythm_irregular,
    AlarmCode.SBP_LOW: sbp_low,
    AlarmCode.CANNULA_CHECK: cannula_check,
    AlarmCode.PERIPHERAL_LINE_TIME: peripheral_line_time,
    AlarmCode.PROLONGED_HIGH_DOSE: prolonged_high_dose,


    AlarmCode.CANNULA_SITE: cannula_site,
    AlarmCode.LINE_PRESSURE_CHANGED: line_pressure_changed,
    AlarmCode.TARGET_UNREACHABLE: target_unreachable,
}


def test_every_alarm_code_has_a_scenario_and_a_priority() -> None:
    assert set(SCENARIOS) == set(AlarmCode) == set(ALARM_PRIORITY)


@pytest.mark.parametrize("code", list(AlarmCode))
def test_alarm_is_raised_silenced_at_most_two_minutes_acknowledged_and_cleared(
    code: AlarmCode,
) -> None:
    spare = MockPump() if code is AlarmCode.CHANGEOVER else None
    supervisor, pump, sink = make_supervisor(standby=spare, **SETUPS.get(code, {}))
    feed(supervisor, T0_S - 20, T0_S, pump=pump)
    assert supervisor.start(10.0, T0_S).applied
    fix = SCENARIOS[code](supervisor, pump, sink)

    raised = [e for e in sink.events if isinstance(e, AlarmRaised) and e.code == code]
    assert raised and raised[0].priority is ALARM_PRIORITY[code]
    assert len(raised[0].message) > 20

    t = max(T0_S + 10, supervisor.view().t_s)
    supervisor.silence(code, t, by="nurse")
    silenced = [e for e in sink.events if isinstance(e, AlarmSilenced)][-1]
    assert silenced.until_t_s - t <= 120.0
    snapshot = next(a for a in supervisor.view(t + 119).alarms if a.code == code)
    assert snapshot.silenced
    snapshot = next(a for a in supervisor.view(t + 121).alarms if a.code == code)
    assert not snapshot.silenced

    supervisor.acknowledge(code, t + 130, by="nurse")
    assert any(isinstance(e, AlarmAcknowledged) and e.code == code for e in sink.events)
    fix(t + 140)
    assert any(isinstance(e, AlarmCleared) and e.code == code for e in sink.events)
    assert not any(a.code == code for a in supervisor.alarms)


def test_high_alarm_stays_latched_until_acknowledged_even_when_cause_is_gone() -> None:
    manager = AlarmManager()
    manager.raise_alarm(AlarmCode.OCCLUSION, ALARM_PRIORITY[AlarmCode.OCCLUSION], "x", 0.0)
    assert manager.cause_gone(AlarmCode.OCCLUSION, 1.0) == []
    assert manager.is_active(AlarmCode.OCCLUSION)
    assert [e.kind for e in manager.acknowledge(AlarmCode.OCCLUSION, 2.0)] == [
        "alarm.acked", "alarm.cleared"]


def test_acknowledged_high_alarm_stays_while_its_cause_is_active() -> None:
    manager = AlarmManager()
    manager.raise_alarm(AlarmCode.PUMP_DISCONNECTED, ALARM_PRIORITY[AlarmCode.PUMP_DISCONNECTED],
                        "x", 0.0)
    manager.acknowledge(AlarmCode.PUMP_DISCONNECTED, 1.0)
    assert manager.is_active(AlarmCode.PUMP_DISCONNECTED)


def test_silence_longer_than_two_minutes_is_cut_to_two_minutes() -> None:
    manager = AlarmManager(silence_max_s=120.0)
    manager.raise_alarm(AlarmCode.MAP_STALE, ALARM_PRIORITY[AlarmCode.MAP_STALE], "x", 0.0)
    (event,) = manager.silence(AlarmCode.MAP_STALE, 10.0, duration_s=3600.0)
    assert isinstance(event, AlarmSilenced) and event.until_t_s == 130.0


def test_escalation_to_high_priority_cancels_silence_and_acknowledgement() -> None:
    manager = AlarmManager()
    manager.raise_alarm(AlarmCode.MAP_STALE, ALARM_PRIORITY[AlarmCode.MAP_STALE], "x", 0.0)
    manager.silence(AlarmCode.MAP_STALE, 1.0)
    manager.acknowledge(AlarmCode.MAP_STALE, 1.0)
    manager.raise_alarm(AlarmCode.MAP_STALE, ALARM_PRIORITY[AlarmCode.OCCLUSION], "y", 60.0)
    alarm = manager.get(AlarmCode.MAP_STALE)
    assert alarm is not None and alarm.audible(61.0) and not alarm.acknowledged
