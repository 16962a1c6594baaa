"""Issue 19's guard rails across a restart (S13): the line's infusion time, the time at high
doses and an unanswered volume check come back from the journal, the source of truth."""

from __future__ import annotations

from safety_fixtures import ListSink, MockPump, feed, make_supervisor

from safety.resume import ResumeState
from safety.supervisor import Supervisor
from vasopilot.core.config import NOREPINEPHRINE, NOREPINEPHRINE_PERIPHERAL, PatientSettings
from vasopilot.core.events import (
    AlarmCode,
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    Event,
    OperatorAction,
    RefusalCode,
    RunStarted,
)
from vasopilot.core.types import GOOD, DoseRequest, Requester, VolumeAnswer

MIN = 60.0
HOUR = 3600.0
SOFT_MAX = NOREPINEPHRINE.soft_max


def _run_started(t_s: float, *, restarted: bool) -> RunStarted:
    return RunStarted(t_s=t_s, rig_id="r", mode="manual", target_map_mmhg=65.0,
                      lower_limit_mmhg=60.0, conc_mcg_ml=80.0, restarted=restarted)


def _dose(t_s: float, dose: float, previous: float) -> DoseApplied:
    return DoseApplied(t_s=t_s, requester=Requester.OPERATOR, dose_mcg_min=dose,
                       previous_dose_mcg_min=previous, rate_ml_h=dose * 60 / 80, reason="")


def test_the_dose_history_is_one_axis_across_restarts_with_new_clocks() -> None:
    """Process 1: 10 mcg/min from 1000 s to 1600 s; process 2's clock starts at 0: 35 from
    100 s until its last event at 400 s. Ages count back from that last event."""
    events: list[Event] = [
        _run_started(1000.0, restarted=False), _dose(1000.0, 10.0, 0.0),
        OperatorAction(t_s=1300.0, action="volume_assessed",
                       volume_answer=VolumeAnswer.ASSESSED),
        OperatorAction(t_s=1600.0, action="note"),
        _run_started(0.0, restarted=True), _dose(100.0, 35.0, 10.0),
        OperatorAction(t_s=400.0, action="note"),
    ]
    state = ResumeState.from_events(events)
    assert state.dose_history == ((1000.0, 10.0), (300.0, 35.0))
    assert state.volume_answer_age_s == 700.0


def raised(events: list[Event], code: AlarmCode) -> list[float]:
    return [e.t_s for e in events if isinstance(e, AlarmRaised) and e.code is code]


def run(supervisor: Supervisor, pump: MockPump, sink: ListSink, t0_s: float, t1_s: float, *,
        map_mmhg: float = 70.0) -> float:
    """``feed`` with the rig loop's beat summary journaled every 15 s, as ``RigLoop`` does:
    the journal's last event is then within 15 s of the process's end."""
    t = t0_s
    while t < t1_s:
        t = feed(supervisor, t, min(t + 15.0, t1_s), map_mmhg=map_mmhg, pump=pump)
        sink.append(BeatSummary(t_s=t, map_mmhg=map_mmhg, sbp_mmhg=None, dbp_mmhg=None,
                                hr_bpm=None, quality=GOOD))
    return t


def test_the_peripheral_line_time_survives_a_restart() -> None:
    """50 min of infusion, a restart, 15 min more: the hourly cannula prompt comes at the
    line's hour (10 min after the restart), not an hour after the restart."""
    patient = PatientSettings(line="peripheral")
    supervisor, pump, sink = make_supervisor(drug=NOREPINEPHRINE_PERIPHERAL, patient=patient)
    feed(supervisor, 0.0, 10.0, pump=pump)
    assert supervisor.start(10.0, 10.0).applied
    run(supervisor, pump, sink, 10.0, 10.0 + 50 * MIN)
    assert not raised(sink.events, AlarmCode.CANNULA_CHECK)
    resumed, pump2, sink2 = make_supervisor(pump, drug=NOREPINEPHRINE_PERIPHERAL,
                                            patient=patient)
    resumed.resume(ResumeState.from_events(sink.events), 0.0)  # a new clock from 0
    run(resumed, pump2, sink2, 0.0, 15 * MIN)
    prompts = raised(sink2.events, AlarmCode.CANNULA_CHECK)
    assert len(prompts) == 1 and 10 * MIN - 5 <= prompts[0] <= 10 * MIN + 5


def test_time_above_the_soft_maximum_survives_a_restart() -> None:
    """100 min above the soft maximum, a restart, 25 min more: over the 2 h limit, the
    advisory comes 20 min after the restart."""
    supervisor, pump, sink = make_supervisor()
    feed(supervisor, 0.0, 10.0, map_mmhg=60.0, pump=pump)
    assert supervisor.start(35.0, 10.0, soft_limit_confirmed=True).applied
    supervisor.answer_volume_check(VolumeAnswer.ASSESSED, 11.0)
    run(supervisor, pump, sink, 11.0, 10.0 + 100 * MIN, map_mmhg=60.0)
    assert not raised(sink.events, AlarmCode.PROLONGED_HIGH_DOSE)
    resumed, pump2, sink2 = make_supervisor(pump)
    resumed.resume(ResumeState.from_events(sink.events), 0.0)
    run(resumed, pump2, sink2, 0.0, 25 * MIN, map_mmhg=60.0)
    advisories = raised(sink2.events, AlarmCode.PROLONGED_HIGH_DOSE)
    assert len(advisories) == 1 and 20 * MIN - 5 <= advisories[0] <= 20 * MIN + 5


def test_an_unanswered_volume_check_stays_open_across_a_restart() -> None:
    supervisor, pump, sink = make_supervisor()
    feed(supervisor, 0.0, 10.0, map_mmhg=60.0, pump=pump)
    assert supervisor.start(30.0, 10.0, soft_limit_confirmed=True).applied
    feed(supervisor, 10.0, 200.0, map_mmhg=60.0, pump=pump)
    assert supervisor.view().volume_check_open
    message = next(a.message for a in supervisor.alarms if a.code is AlarmCode.VOLUME_CHECK)
    resumed, pump2, sink2 = make_supervisor(pump)
    resumed.resume(ResumeState.from_events(sink.events), 0.0)
    assert resumed.view(0.0).volume_check_open
    assert [a.message for a in resumed.alarms if a.code is AlarmCode.VOLUME_CHECK] == [message]
    t = feed(resumed, 0.0, 130.0, map_mmhg=60.0, pump=pump2)
    confirmed = DoseRequest(32.0, Requester.OPERATOR, "nurse", soft_limit_confirmed=True)
    assert resumed.request(confirmed, t).code is RefusalCode.VOLUME_CHECK
    resumed.answer_volume_check(VolumeAnswer.FLUID_GIVEN, t + 1)
    assert resumed.request(confirmed, t + 2).applied
    # journaled again by the new process, so a second restart finds it answered
    assert ResumeState.from_events([*sink.events, *sink2.events]).volume_answer_age_s == 1.0


def test_an_answer_before_the_restart_still_counts_after_it() -> None:
    """Answered 5 min before the restart: passing the soft maximum just after it is allowed
    (the answer is within the 30 min window), not asked again."""
    supervisor, pump, sink = make_supervisor()
    feed(supervisor, 0.0, 10.0, pump=pump)
    assert supervisor.start(12.0, 10.0).applied
    run(supervisor, pump, sink, 10.0, 30 * MIN)
    assert supervisor.request(DoseRequest(29.0, Requester.OPERATOR, "to 29",
                                          soft_limit_confirmed=True), 30 * MIN).applied
    supervisor.answer_volume_check(VolumeAnswer.NOT_INDICATED, 30 * MIN + 1)
    run(supervisor, pump, sink, 30 * MIN + 1, 35 * MIN)
    resumed, pump2, sink2 = make_supervisor(pump)
    resumed.resume(ResumeState.from_events(sink.events), 0.0)
    t = feed(resumed, 0.0, 130.0, pump=pump2)
    confirmed = DoseRequest(31.0, Requester.OPERATOR, "nurse", soft_limit_confirmed=True)
    assert resumed.request(confirmed, t).applied
    assert not raised(sink2.events, AlarmCode.VOLUME_CHECK)
