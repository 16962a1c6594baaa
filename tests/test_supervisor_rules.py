"""The supervisor's rules (S1–S14) as clinical statements, one rule per test.

Baseline: norepinephrine 80 mcg/mL, 70 kg, target MAP 65, lower limit 60, an ideal pump, an
infusion started at 10 mcg/min and running for a while with a good MAP of 70 mmHg.
"""

from __future__ import annotations

import pytest
from safety_fixtures import ListSink, MockPump, beat, feed, make_supervisor

from safety.alarms import AlarmCode
from safety.resume import ResumeState
from safety.supervisor import StopReason, Supervisor
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.events import (
    DoseApplied,
    DoseRefused,
    OperatorAction,
    PumpContract,
    RefusalCode,
)
from vasopilot.core.types import (
    DoseRequest,
    HostLossBehaviour,
    LineSignals,
    Priority,
    PumpAlarm,
    Requester,
)
from vasopilot.core.units import DoseUnit, rate_ml_h_from_dose

START_S = 1000.0


def running(
    dose: float = 10.0, standby: MockPump | None = None
) -> tuple[Supervisor, MockPump, ListSink]:
    supervisor, pump, sink = make_supervisor(standby=standby)
    feed(supervisor, START_S - 20, START_S, pump=pump)
    assert supervisor.start(dose, START_S).applied
    return supervisor, pump, sink


def ctl(dose: float) -> DoseRequest:
    return DoseRequest(dose, Requester.CONTROLLER, "test")


# -- S1–S4: drug library --------------------------------------------------------------------

def test_refuses_dose_above_hard_max_with_reason_even_confirmed() -> None:
    supervisor, _, sink = running(10.0)
    decision = supervisor.request(
        DoseRequest(61.0, Requester.OPERATOR, "test", soft_limit_confirmed=True), START_S + 5)
    assert not decision.applied and decision.code is RefusalCode.HARD_MAX
    refusal = [e for e in sink.events if isinstance(e, DoseRefused)][-1]
    assert "hard maximum of 60.00 mcg/min" in refusal.reason


def test_refuses_dose_above_soft_max_without_confirmation() -> None:
    supervisor, _, _ = make_supervisor()
    feed(supervisor, 0, 5)
    assert supervisor.start(31.0, 5).code is RefusalCode.SOFT_MAX
    assert supervisor.start(31.0, 6, soft_limit_confirmed=True).applied


def test_limits_in_mcg_kg_min_scale_with_weight() -> None:
    drug = NOREPINEPHRINE.model_copy(update={
        "dose_unit": DoseUnit.MCG_KG_MIN, "soft_max": 0.4, "hard_max": 1.0, "start_min": 0.1,
        "start_max": 0.2, "max_up_step": 0.03, "max_down_step": 0.03, "wean_step": 0.01})
    supervisor, _, _ = make_supervisor(drug=drug, patient=PatientSettings(weight_kg=70.0))
    assert supervisor.limits.hard_max == pytest.approx(70.0)
    assert supervisor.limits.soft_max == pytest.approx(28.0)


def test_up_titration_limited_to_two_mcg_min_per_step_and_every_two_minutes() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 130, pump=pump)
    assert supervisor.request(ctl(15.0), t).dose_mcg_min == pytest.approx(12.0)
    t = feed(supervisor, t, t + 60, pump=pump)
    assert supervisor.request(ctl(14.0), t).code is RefusalCode.UP_INTERVAL


def test_down_titration_limited_to_two_mcg_min_per_step() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 10, pump=pump)
    assert supervisor.request(ctl(2.0), t).dose_mcg_min == pytest.approx(8.0)


def test_refuses_dose_the_pump_cannot_deliver_within_one_percent() -> None:
    supervisor, pump, _ = make_supervisor()
    feed(supervisor, 0, 5)
    # 0.005 mcg/min is 0.00375 mL/h: under this pump's minimum rate.
    decision = supervisor.start(0.005, 5)
    assert decision.code is RefusalCode.RATE_RANGE and pump.commands() == []


# -- S5–S6: blood-pressure data -------------------------------------------------------------

def test_holds_dose_when_map_stale() -> None:
    supervisor, pump, _ = running(10.0)
    t = START_S + 200
    pump.t_s = t
    supervisor.tick(t)
    decision = supervisor.request(ctl(9.0), t)
    assert decision.code is RefusalCode.MAP_UNTRUSTED and decision.dose_mcg_min == 10.0


def test_map_stale_alarm_is_medium_after_10_s_and_high_after_60_s() -> None:
    supervisor, _, _ = running(10.0)
    supervisor.tick(START_S + 15)
    assert supervisor.alarms[0].code == AlarmCode.MAP_STALE
    priorities = [supervisor.alarms[0].priority]
    supervisor.tick(START_S + 61)
    priorities.append(supervisor.alarms[0].priority)
    assert priorities == [Priority.MEDIUM, Priority.HIGH]


def test_artefact_beats_are_not_trusted_and_are_named_in_the_alarm() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 30, quality="flush", pump=pump)
    assert not supervisor.view(t).map_trusted
    assert "flush" in supervisor.alarms[0].message
    assert supervisor.request(ctl(11.0), t).code is RefusalCode.MAP_UNTRUSTED


def test_operator_may_change_dose_on_untrusted_map() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 30, quality="zeroing", pump=pump)
    assert supervisor.request(DoseRequest(9.0, Requester.OPERATOR, "nurse"), t).applied


def test_never_increases_dose_while_map_at_or_above_floor_plus_15() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 130, map_mmhg=80.0, pump=pump)
    assert supervisor.request(ctl(11.0), t).code is RefusalCode.MAP_HIGH


def test_an_increase_just_under_floor_plus_15_is_allowed() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 130, map_mmhg=79.0, pump=pump)
    assert supervisor.request(ctl(11.0), t).applied


def test_never_decreases_dose_while_map_below_lower_limit() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 30, map_mmhg=58.0, pump=pump)
    assert supervisor.request(ctl(9.0), t).code is RefusalCode.MAP_LOW
    assert any(a.code == AlarmCode.MAP_LOW for a in supervisor.alarms)


def test_map_low_alarm_does_not_chatter_on_beats_around_the_limit() -> None:
    supervisor, pump, sink = running(10.0)
    t = feed(supervisor, START_S, START_S + 60, map_mmhg=56.0, pump=pump)
    for i in range(600):
        t += 1.0
        pump.t_s = t
        supervisor.on_beat(beat(t, 59.0 if i % 2 else 62.5), t)
        supervisor.tick(t)
    raised = [e for e in sink.events if getattr(e, "code", None) == AlarmCode.MAP_LOW
              and e.kind == "alarm.raised"]
    assert len(raised) == 1


def test_map_low_alarm_clears_once_the_trend_is_back_above_the_floor() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 60, map_mmhg=63.0, pump=pump)
    low = [a for a in supervisor.alarms if a.code == AlarmCode.MAP_LOW]
    assert low and "below the floor of 65" in low[0].message
    feed(supervisor, t, t + 60, map_mmhg=68.0, pump=pump)
    assert not any(a.code == AlarmCode.MAP_LOW for a in supervisor.alarms)


def test_no_map_low_alarm_on_the_set_point_or_just_above_the_floor() -> None:
    supervisor, pump, _ = running(10.0)
    feed(supervisor, START_S, START_S + 120, map_mmhg=65.5, pump=pump)
    assert not any(a.code == AlarmCode.MAP_LOW for a in supervisor.alarms)


# -- S7: weaning ----------------------------------------------------------------------------

def test_weaning_steps_one_mcg_min_every_15_min_while_map_holds_target() -> None:
    supervisor, pump, _ = running(3.0)
    supervisor.start_weaning(START_S, by="nurse")
    t = feed(supervisor, START_S, START_S + 899, pump=pump)
    assert supervisor.view(t).dose_mcg_min == 3.0
    t = feed(supervisor, t, START_S + 900, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(2.0)


def _dip_while_weaning(dip_s: float, map_mmhg: float) -> tuple[Supervisor, MockPump, float]:
    """Weaning from 3 mcg/min, 10 min of 70 mmHg, then ``dip_s`` at ``map_mmhg``."""
    supervisor, pump, _ = running(3.0)
    supervisor.start_weaning(START_S)
    t = feed(supervisor, START_S, START_S + 600, pump=pump)
    return supervisor, pump, feed(supervisor, t, t + dip_s, map_mmhg=map_mmhg, pump=pump)


def test_weaning_pauses_while_the_minute_median_is_below_the_floor() -> None:
    # 40 s under the floor: most of the last minute's beats, so its median too
    supervisor, pump, t = _dip_while_weaning(40.0, 63.0)
    t = feed(supervisor, t, START_S + 1200, pump=pump)
    assert supervisor.view(t).dose_mcg_min == 3.0
    # the median is back over the floor within a minute of the beats
    t = feed(supervisor, t, START_S + 640 + 60 + 900, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(2.0)


def test_a_dip_of_a_few_beats_does_not_pause_weaning() -> None:
    # a respiratory dip is not hypotension (S7): 10 s under the floor leave the median at 70
    supervisor, pump, t = _dip_while_weaning(10.0, 58.0)
    t = feed(supervisor, t, START_S + 900, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(2.0)


def test_weaning_judges_the_floor_not_the_set_point() -> None:
    # 66 mmHg: under the set-point of 70, over the floor of 65
    supervisor, pump, _ = running(3.0)
    supervisor.start_weaning(START_S)
    t = feed(supervisor, START_S, START_S + 900, map_mmhg=66.0, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(2.0)


def test_weaning_returns_to_last_dose_that_held_target_when_map_below_lower_limit() -> None:
    supervisor, pump, _ = running(3.0)
    supervisor.start_weaning(START_S)
    t = feed(supervisor, START_S, START_S + 900, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(2.0)
    t = feed(supervisor, t, t + 40, map_mmhg=57.0, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(3.0)


def test_weaning_ends_with_a_final_step_to_zero_never_a_jump() -> None:
    supervisor, pump, sink = running(2.0)
    supervisor.start_weaning(START_S)
    t = feed(supervisor, START_S, START_S + 2 * 900 + 5, pump=pump)
    view = supervisor.view(t)
    assert not view.running and view.stop_reason == StopReason.WEANED
    doses = [e.dose_mcg_min for e in sink.events if isinstance(e, DoseApplied)]
    assert doses[-3:] == [2.0, pytest.approx(1.0), 0.0]


def test_controller_cannot_change_dose_during_weaning() -> None:
    supervisor, pump, _ = running(3.0)
    supervisor.start_weaning(START_S)
    t = feed(supervisor, START_S, START_S + 10, pump=pump)
    assert supervisor.request(ctl(2.0), t).code is RefusalCode.WEANING


# -- S8–S10: stops --------------------------------------------------------------------------

def test_backs_off_after_occlusion_and_needs_an_operator() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 30, pump=pump)
    for _ in range(5):
        t += 1.0
        pump.t_s = t
        pump.line_pressure_mmhg = 400.0
        supervisor.on_beat(beat(t), t)
        supervisor.tick(t)
    assert [name for name, _ in pump.commands()[-2:]] == ["stop", "back_off"]
    assert pump.commands()[-1][1] == pytest.approx(390.0)
    assert supervisor.request(ctl(10.0), t + 1).code is RefusalCode.STOPPED
    alarm = supervisor.alarms[0]
    assert alarm.code == AlarmCode.OCCLUSION and alarm.priority is Priority.HIGH


def test_stall_signal_stops_as_an_occlusion() -> None:
    supervisor, _, _ = running(10.0)
    supervisor.on_line_signals(LineSignals(t_s=START_S + 1, stall=True), START_S + 1)
    assert supervisor.view().stop_reason == StopReason.OCCLUSION


def test_extravasation_sensor_stops_without_back_off() -> None:
    supervisor, pump, _ = running(10.0)
    supervisor.on_line_signals(LineSignals(t_s=START_S + 1, extravasation_sensor=True),
                               START_S + 1)
    assert pump.commands()[-1] == ("stop", None)
    assert supervisor.view().stop_reason == StopReason.EXTRAVASATION


def test_operator_report_of_extravasation_stops_and_latches() -> None:
    supervisor, _, sink = running(10.0)
    supervisor.report_extravasation(START_S + 1, by="nurse")
    assert supervisor.view().needs_operator
    assert any(isinstance(e, OperatorAction) and e.action == "extravasation"
               for e in sink.events)


def test_operator_stop_is_immediate() -> None:
    supervisor, pump, _ = running(10.0)
    supervisor.operator_stop(START_S + 1, by="nurse", reason="line change")
    assert pump.commands()[-1] == ("stop", None)


def test_near_empty_alarm_at_15_min_left_then_empty_stops_with_high_alarm() -> None:
    supervisor, pump, _ = running(10.0)  # 7.5 mL/h
    pump.remaining_ml = 7.5 * 14 / 60
    supervisor.tick(START_S + 1)
    assert supervisor.alarms[0].code == AlarmCode.SYRINGE_NEAR_EMPTY
    pump.remaining_ml = 0.0
    supervisor.tick(START_S + 2)
    assert supervisor.view().stop_reason == StopReason.EMPTY
    assert supervisor.alarms[0].code == AlarmCode.SYRINGE_EMPTY


def test_changeover_hands_the_dose_to_the_second_pump_in_one_step() -> None:
    standby = MockPump()
    supervisor, pump, _ = running(10.0, standby=standby)
    pump.remaining_ml = 7.5 * 0.9 / 60
    feed(supervisor, START_S, START_S + 1, pump=pump)
    rate = rate_ml_h_from_dose(10.0, 80.0)
    assert [name for name, _ in standby.commands()] == ["set_rate"]
    assert standby.commands()[0][1] == pytest.approx(rate)
    assert pump.commands()[-1] == ("stop", None)
    assert supervisor.view().running and supervisor.view().dose_mcg_min == 10.0


# -- S12–S14: watchdog, restart, durability -------------------------------------------------

def test_tick_heartbeats_the_pump_and_start_journals_its_host_loss_behaviour() -> None:
    supervisor, pump, sink = running(10.0)
    supervisor.tick(START_S + 1)
    assert ("heartbeat", None) in pump.calls
    contract = next(e for e in sink.events if isinstance(e, PumpContract))
    assert (contract.role, contract.host_loss) == ("active", HostLossBehaviour.KEEPS_RATE)
    spare = MockPump()
    spare.host_loss = HostLossBehaviour.STOPS_AND_ALARMS
    supervisor.set_standby(spare, START_S + 2, by="nurse")
    contracts = [e for e in sink.events if isinstance(e, PumpContract)]
    assert (contracts[-1].role, contracts[-1].host_loss) == \
        ("standby", HostLossBehaviour.STOPS_AND_ALARMS)


def test_pump_that_stops_by_itself_on_host_timeout_raises_high_alarm() -> None:
    supervisor, pump, _ = running(10.0)
    pump.state, pump.rate_ml_h, pump.alarm = pump.state.ALARM, 0.0, PumpAlarm.HOST_TIMEOUT
    supervisor.tick(START_S + 1)
    assert supervisor.alarms[0].code == AlarmCode.HOST_TIMEOUT


def test_dose_is_journaled_before_the_pump_is_commanded() -> None:
    supervisor, pump, sink = make_supervisor()
    supervisor.start(10.0, 0.0)
    applied = next(e for e in sink.events if isinstance(e, DoseApplied))
    # The sink saw the dose while the pump had not yet been told anything.
    assert applied.rate_ml_h == pytest.approx(7.5)
    assert sink.calls_when_appended[sink.events.index(applied)] == 0
    assert [name for name, _ in pump.commands()] == ["set_rate"]


def test_resume_adopts_a_running_pump_without_any_command() -> None:
    _, _, sink = running(10.0)
    pump = MockPump(rate_ml_h=7.5, state=MockPump().state.INFUSING)
    resumed, _, _ = make_supervisor(pump)
    resumed.resume(ResumeState.from_events(sink.events), 5.0)
    assert pump.commands() == []
    assert resumed.view().running and resumed.view().dose_mcg_min == pytest.approx(10.0)
    assert any(a.code == AlarmCode.RESTARTED for a in resumed.alarms)


def test_resume_keeps_an_occlusion_stop_latched() -> None:
    supervisor, _, sink = running(10.0)
    supervisor.on_line_signals(LineSignals(t_s=START_S + 1, stall=True), START_S + 1)
    resumed, new_pump, _ = make_supervisor()
    resumed.resume(ResumeState.from_events(sink.events), 5.0)
    assert resumed.view().needs_operator and new_pump.commands() == []
    assert any(a.code == AlarmCode.OCCLUSION for a in resumed.alarms)
    assert resumed.request(ctl(10.0), 6.0).code is RefusalCode.STOPPED


def test_lost_acknowledgement_is_reconciled_from_the_pump_read_back() -> None:
    supervisor, pump, _ = running(10.0)
    t = feed(supervisor, START_S, START_S + 10, pump=pump)
    pump.drop_ack_next = True
    decision = supervisor.request(ctl(9.0), t)
    assert decision.code is RefusalCode.PUMP_ERROR
    assert supervisor.view().dose_mcg_min == pytest.approx(9.0)
    assert not any(a.code == AlarmCode.DELIVERY_UNCERTAIN for a in supervisor.alarms)


def test_floor_can_be_raised_for_a_hypertensive_patient_within_60_to_85() -> None:
    supervisor, _, sink = running(10.0)
    assert supervisor.set_floor(75.0, START_S, by="nurse").applied
    view = supervisor.view(START_S)
    assert (view.floor_mmhg, view.target_map_mmhg, view.lower_limit_mmhg) == (75.0, 80.0, 70.0)
    refused = supervisor.set_floor(86.0, START_S + 1, by="nurse")
    assert not refused.applied and refused.code is RefusalCode.TARGET_RANGE
    assert supervisor.view(START_S + 1).floor_mmhg == 75.0
    actions = [e for e in sink.events if isinstance(e, OperatorAction)]
    assert [e.action for e in actions[-2:]] == ["set_target", "set_target_refused"]
    # journaled with the set-point, which a restart restores
    assert actions[-2].target_map_mmhg == 80.0


def test_the_older_set_target_command_is_read_as_the_set_point() -> None:
    supervisor, _, _ = running(10.0)
    assert supervisor.set_target(75.0, START_S, by="nurse").applied
    assert supervisor.view(START_S).floor_mmhg == 70.0
    assert supervisor.set_target(90.0, START_S + 1).applied  # floor 85
    assert supervisor.set_target(91.0, START_S + 2).code is RefusalCode.TARGET_RANGE


def test_weaning_holds_the_floor_an_operator_raised() -> None:
    supervisor, pump, _ = running(10.0)
    assert supervisor.set_floor(75.0, START_S, by="nurse").applied
    t = feed(supervisor, START_S, START_S + 60, pump=pump)
    assert supervisor.start_weaning(t, by="nurse").applied
    # 70 mmHg held the old floor of 65, not the new one of 75: no step.
    t = feed(supervisor, t, t + supervisor.limits.wean_interval_s + 60, map_mmhg=70.0, pump=pump)
    assert supervisor.view(t).dose_mcg_min == 10.0
