"""Issue #11, case 4 on the supervisor's side: a journal that cannot make events durable.

The sink is the recording ``ListSink`` told to refuse writes, as a full disk does: it keeps each
event pending, in order, and raises ``JournalUnavailable``. The supervisor must change no dose
on an event it could not journal, keep the infusion and the pump's heartbeat going, show a HIGH
``JOURNAL_FAULT`` to people although the journal cannot hold it yet, still stop for S8-S10, and
clear the cause once ``flush_pending`` has written the backlog.
"""

from __future__ import annotations

import pytest
from safety_fixtures import ListSink, MockPump, feed, make_supervisor

from safety.alarms import AlarmCode
from safety.resume import ResumeState
from safety.supervisor import Supervisor
from vasopilot.core.events import AlarmCleared, DoseApplied, DoseChange, RefusalCode, StopReason
from vasopilot.core.types import DoseRequest, Priority, Requester

START_S = 100.0


def running(dose: float = 10.0) -> tuple[Supervisor, MockPump, ListSink, float]:
    supervisor, pump, sink = make_supervisor()
    t = feed(supervisor, START_S - 20, START_S, pump=pump)
    assert supervisor.start(dose, t).applied
    t = feed(supervisor, t, t + 150, pump=pump)
    return supervisor, pump, sink, t


def up(dose: float) -> DoseRequest:
    return DoseRequest(dose, Requester.CONTROLLER, "MAP low")


def test_titration_that_cannot_be_journaled_is_not_applied_and_a_high_alarm_shows() -> None:
    supervisor, pump, sink, t = running(10.0)
    commands = len(pump.commands())
    sink.refusing = True
    decision = supervisor.request(up(12.0), t)
    assert not decision.applied and decision.code is RefusalCode.JOURNAL_FAULT
    assert pump.commands()[commands:] == []
    assert pump.rate_ml_h == pytest.approx(7.5)
    view = supervisor.view(t)
    assert view.dose_mcg_min == 10.0 and not view.journal_ok
    fault = next(a for a in view.alarms if a.code is AlarmCode.JOURNAL_FAULT)
    assert fault.priority is Priority.HIGH
    # Later requests are refused before anything is written as applied.
    applied_before = sum(isinstance(e, DoseApplied) for e in sink.events)
    assert supervisor.request(up(12.0), t + 1).code is RefusalCode.JOURNAL_FAULT
    assert sum(isinstance(e, DoseApplied) for e in sink.events) == applied_before


def test_a_change_whose_own_record_failed_is_taken_back_in_the_journal() -> None:
    supervisor, pump, sink, t = running(10.0)
    commands = len(pump.commands())
    sink.fill_on = "dose.applied"
    assert supervisor.request(up(12.0), t).code is RefusalCode.JOURNAL_FAULT
    assert pump.commands()[commands:] == []
    sink.refusing = False
    supervisor.tick(t + 1)
    # Replayed, the journal ends at the dose the pump really runs.
    assert ResumeState.from_events(sink.events).dose_mcg_min == pytest.approx(10.0)
    assert any(isinstance(e, DoseApplied) and e.change is DoseChange.NOT_APPLIED
               for e in sink.events)


def test_infusion_and_heartbeat_go_on_for_an_hour_with_the_journal_down() -> None:
    supervisor, pump, sink, t = running(10.0)
    sink.refusing = True
    heartbeats = pump.calls.count(("heartbeat", None))
    t = feed(supervisor, t, t + 3600, pump=pump)
    assert pump.calls.count(("heartbeat", None)) - heartbeats >= 3600
    view = supervisor.view(t)
    assert view.running and view.dose_mcg_min == 10.0
    assert pump.rate_ml_h == pytest.approx(7.5)
    assert [c for c in pump.commands() if c[0] == "stop"] == []


def test_catching_up_clears_the_cause_and_writes_the_backlog_in_order() -> None:
    supervisor, pump, sink, t = running(10.0)
    sink.refusing = True
    supervisor.request(up(12.0), t)
    t = feed(supervisor, t, t + 30, pump=pump)
    assert sink.pending > 0
    sink.refusing = False
    t = feed(supervisor, t, t + 1, pump=pump)
    assert sink.pending == 0 and supervisor.view(t).journal_ok
    # HIGH latches until acknowledged, then clears.
    assert any(a.code is AlarmCode.JOURNAL_FAULT for a in supervisor.alarms)
    supervisor.acknowledge(AlarmCode.JOURNAL_FAULT, t, by="nurse")
    assert not any(a.code is AlarmCode.JOURNAL_FAULT for a in supervisor.alarms)
    assert any(isinstance(e, AlarmCleared) and e.code is AlarmCode.JOURNAL_FAULT
               for e in sink.events)
    assert [e.t_s for e in sink.events] == sorted(e.t_s for e in sink.events)
    t = feed(supervisor, t, t + 1, pump=pump)
    assert supervisor.request(up(12.0), t).applied


def test_occlusion_still_stops_with_the_journal_down() -> None:
    supervisor, pump, sink, t = running(10.0)
    sink.refusing = True
    pump.stalled = True
    supervisor.tick(t + 1)
    view = supervisor.view(t + 1)
    assert not view.running and view.stop_reason is StopReason.OCCLUSION
    assert ("stop", None) in pump.commands()
    sink.refusing = False
    supervisor.tick(t + 2)
    stop = [e for e in sink.events if isinstance(e, DoseApplied) and e.stop_reason]
    assert stop and stop[-1].stop_reason is StopReason.OCCLUSION and sink.pending == 0


def test_weaning_holds_its_step_while_the_journal_is_down() -> None:
    supervisor, pump, sink, t = running(10.0)
    assert supervisor.start_weaning(t, by="nurse").applied
    sink.refusing = True
    t = feed(supervisor, t, t + supervisor.limits.wean_interval_s + 60, pump=pump)
    assert supervisor.view(t).dose_mcg_min == 10.0
    sink.refusing = False
    t = feed(supervisor, t, t + 2, pump=pump)
    assert supervisor.view(t).dose_mcg_min == pytest.approx(9.0)
