import sqlite3
import threading
from pathlib import Path

import pytest

from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import JournalError, JournalUnavailable
from vasopilot.core.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    Event,
    JournalGap,
    ModeChanged,
    OperatorAction,
    PumpStatusEvent,
    RunStarted,
)
from vasopilot.core.types import Priority, PumpState, Requester
from vasopilot.journal import Journal, JournalReader, summary_line


def beat(t_s: float, map_mmhg: float = 66.0, quality: str = "good") -> BeatSummary:
    return BeatSummary(t_s=t_s, map_mmhg=map_mmhg, sbp_mmhg=100.0, dbp_mmhg=50.0, hr_bpm=80.0,
                       quality=quality, beats=18)


def dose(t_s: float, dose_mcg_min: float, previous: float = 0.0) -> DoseApplied:
    return DoseApplied(t_s=t_s, requester=Requester.CONTROLLER, dose_mcg_min=dose_mcg_min,
                       previous_dose_mcg_min=previous, rate_ml_h=dose_mcg_min * 60 / 80,
                       reason="test")


def run(t_s: float, *, restarted: bool = False, mode: str = "closed-loop") -> RunStarted:
    return RunStarted(t_s=t_s, rig_id="sim-rig", mode=mode, target_map_mmhg=65.0,
                      lower_limit_mmhg=60.0, conc_mcg_ml=80.0, restarted=restarted)


def pump(t_s: float, rate_ml_h: float) -> PumpStatusEvent:
    return PumpStatusEvent(t_s=t_s, state=PumpState.INFUSING, rate_ml_h=rate_ml_h,
                           delivered_ml=1.0, syringe_remaining_ml=40.0)


def raised(t_s: float, code: str, priority: Priority) -> AlarmRaised:
    return AlarmRaised(t_s=t_s, code=code, priority=priority, message=f"{code} message")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def seqs(events: list[Event]) -> list[int | None]:
    return [e.seq for e in events]


def test_append_stamps_seq_and_wall_label_from_the_clock(path: Path, clock: VirtualClock) -> None:
    clock.advance(90.0)
    with Journal(path, clock) as journal:
        first = journal.append(run(90.0))
        second = journal.append(OperatorAction(t_s=90.0, action="start", wall="given label"))
    assert (first.seq, second.seq) == (1, 2)
    assert first.wall == "2026-01-01T00:01:30.000+00:00"
    assert second.wall == "given label"
    with JournalReader(path) as reader:
        assert reader.tail() == [first, second]


def test_durable_event_is_visible_to_another_connection_when_append_returns(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal, JournalReader(path) as reader:
        journal.append(run(0.0))
        assert reader.last_seq() == 1


def test_non_durable_events_wait_for_the_next_durable_event_and_keep_their_order(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal, JournalReader(path) as reader:
        journal.append(run(0.0))
        journal.append(beat(1.0))
        journal.append(pump(2.0, 7.5))
        assert reader.last_seq() == 1
        journal.append(dose(3.0, 10.0))
        kinds = [(e.seq, e.kind) for e in reader.since(0)]
    assert kinds == [(1, "run.started"), (2, "beat.summary"), (3, "pump.status"),
                     (4, "dose.applied")]


def test_non_durable_events_are_committed_once_the_oldest_is_flush_interval_old(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock, flush_interval_s=5.0) as journal, JournalReader(path) as reader:
        journal.append(beat(0.0))
        clock.advance(4.9)
        journal.append(beat(4.9))
        journal.flush_if_due()
        assert reader.last_seq() == 0
        clock.advance(0.1)
        journal.flush_if_due()
        assert reader.last_seq() == 2
        journal.append(beat(5.0))
        clock.advance(5.0)
        journal.append(beat(10.0))
        assert reader.last_seq() == 4


def test_flush_and_close_commit_batched_events(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock) as journal, JournalReader(path) as reader:
        journal.append(beat(0.0))
        journal.flush()
        assert reader.last_seq() == 1
        journal.append(beat(1.0))
    with JournalReader(path) as reader:
        assert reader.last_seq() == 2


def test_events_read_back_equal_to_what_append_returned(path: Path, clock: VirtualClock) -> None:
    appended = []
    with Journal(path, clock) as journal:
        for event in (run(0.0), beat(1.0, quality="flush"), dose(2.0, 8.0),
                      raised(3.0, "MAP_STALE", Priority.MEDIUM), pump(4.0, 6.0),
                      ModeChanged(t_s=5.0, mode="manual")):
            appended.append(journal.append(event))
    with JournalReader(path) as reader:
        assert list(reader.iter_events()) == appended


def test_tail_returns_the_last_events_of_the_asked_kinds_oldest_first(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal:
        for i in range(10):
            journal.append(beat(float(i)))
            journal.append(dose(float(i), float(i)))
        assert seqs(journal.tail(3)) == [18, 19, 20]
        assert seqs(journal.tail(3, {"dose.applied"})) == [16, 18, 20]
        assert seqs(journal.tail(2, {"dose.applied", "beat.summary"})) == [19, 20]
        assert journal.tail(5, {"fault"}) == []


def test_since_returns_events_after_seq_up_to_limit(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock) as journal:
        for i in range(25):
            journal.append(dose(float(i), 1.0))
        assert seqs(journal.since(20)) == [21, 22, 23, 24, 25]
        assert seqs(journal.since(3, limit=2)) == [4, 5]
        assert journal.since(25) == []
        assert seqs(list(journal.iter_events(after_seq=5, page=7))) == list(range(6, 26))


def test_recovery_is_none_for_an_empty_journal(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock) as journal:
        assert journal.recovery() is None


def test_recovery_resumes_last_dose_mode_pump_and_active_alarms(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal:
        journal.append(run(0.0))
        journal.append(dose(10.0, 10.0))
        journal.append(raised(20.0, "OCCLUSION", Priority.HIGH))
        journal.append(raised(25.0, "MAP_STALE", Priority.MEDIUM))
        journal.append(raised(40.0, "MAP_STALE", Priority.HIGH))
        journal.append(raised(30.0, "SYRINGE_NEAR_EMPTY", Priority.MEDIUM))
        journal.append(AlarmCleared(t_s=31.0, code="SYRINGE_NEAR_EMPTY"))
        journal.append(AlarmAcknowledged(t_s=32.0, code="OCCLUSION"))
        journal.append(dose(130.0, 12.0, previous=10.0))
        journal.append(ModeChanged(t_s=140.0, mode="manual"))
        journal.append(pump(150.0, 9.0))
        journal.append(beat(160.0))
    with JournalReader(path) as reader:
        state = reader.recovery()
    assert state is not None
    assert (state.last_seq, state.t_s) == (12, 160.0)
    assert state.dose_mcg_min == 12.0
    assert state.rate_ml_h == pytest.approx(9.0)
    assert state.mode == "manual"
    assert state.run is not None and state.run.seq == 1
    assert state.pump is not None and state.pump.rate_ml_h == 9.0
    alarms = {a.code: a for a in state.alarms}
    assert set(alarms) == {"OCCLUSION", "MAP_STALE"}
    assert alarms["OCCLUSION"].acknowledged
    assert alarms["MAP_STALE"].priority is Priority.HIGH
    assert alarms["MAP_STALE"].raised_t_s == 25.0
    assert [a.code for a in state.latched_alarms] == ["OCCLUSION", "MAP_STALE"]


def test_recovery_keeps_alarms_across_a_restart_but_not_across_a_fresh_run(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal:
        journal.append(run(0.0))
        journal.append(dose(1.0, 10.0))
        journal.append(raised(2.0, "OCCLUSION", Priority.HIGH))
        journal.append(run(3.0, restarted=True))
        after_restart = journal.recovery()
        journal.append(run(4.0, mode="manual"))
        fresh = journal.recovery()
    assert after_restart is not None and fresh is not None
    assert [a.code for a in after_restart.alarms] == ["OCCLUSION"]
    assert after_restart.dose_mcg_min == 10.0
    assert after_restart.run is not None and after_restart.run.restarted
    assert fresh.alarms == ()
    assert fresh.dose_mcg_min == 0.0 and fresh.last_dose is None
    assert fresh.mode == "manual"


def test_recovery_takes_the_mode_of_a_run_start_after_a_mode_change(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal:
        journal.append(run(0.0, mode="closed-loop"))
        journal.append(ModeChanged(t_s=1.0, mode="wean"))
        journal.append(run(2.0, mode="manual", restarted=True))
        state = journal.recovery()
    assert state is not None and state.mode == "manual"


def test_concurrent_reader_sees_only_whole_committed_prefixes(
    path: Path, clock: VirtualClock
) -> None:
    total = 300
    with Journal(path, clock) as journal, JournalReader(path) as reader:
        def write() -> None:
            for i in range(total):
                journal.append(dose(float(i), 1.0) if i % 3 == 0 else beat(float(i)))
            journal.flush()

        writer = threading.Thread(target=write)
        writer.start()
        observed: list[int] = []
        while writer.is_alive() or not observed or observed[-1] < total:
            got = [e.seq or 0 for e in reader.since(0)]
            assert got == list(range(1, len(got) + 1))
            # Only a durable event (every third, seq 1, 4, 7 ...) or the final flush commits.
            assert not got or got[-1] % 3 == 1 or got[-1] == total
            observed.append(len(got))
        writer.join()
    assert observed == sorted(observed)


def test_an_event_that_cannot_be_made_durable_is_kept_pending_and_written_first_later(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock, busy_timeout_s=0.0) as journal:
        journal.append(run(0.0))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(JournalUnavailable, match=r"could not record dose\.applied"):
                journal.append(dose(1.0, 10.0))
            assert journal.pending_count == 1
            assert not journal.flush_pending()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert journal.append(dose(2.0, 10.0)).seq == 3
        assert journal.pending_count == 0
        assert [e.t_s for e in journal.tail()] == [0.0, 1.0, 2.0]


def test_a_full_database_keeps_the_batched_events_it_rolled_back_in_order(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock) as journal:
        journal.append(run(0.0))
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
        # sqlite's own "database or disk is full", at the file's present size
        journal._conn.execute(f"PRAGMA max_page_count={pages}")
        written = 0
        with pytest.raises(JournalUnavailable, match="database or disk is full"):
            for written in range(1, 200):
                journal.append(beat(float(written)))  # batched in the open transaction
        assert journal.pending_count == written
        assert not journal.flush_pending()
        journal._conn.execute("PRAGMA max_page_count=1000000")
        assert journal.flush_pending()
        assert [e.t_s for e in journal.tail(1000)] == [float(i) for i in range(written + 1)]


def test_a_full_buffer_sheds_summaries_then_pump_status_never_doses_and_records_the_gap(
    path: Path, clock: VirtualClock
) -> None:
    with Journal(path, clock, busy_timeout_s=0.0, max_pending=4) as journal:
        journal.append(run(0.0))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            for event in (beat(1.0), pump(2.0, 7.5), dose(3.0, 10.0), beat(4.0), beat(5.0),
                          raised(6.0, "MAP_LOW", Priority.HIGH), pump(7.0, 7.5)):
                with pytest.raises(JournalUnavailable):
                    journal.append(event)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # 7 events for 4 places: the three beat summaries go first
        assert journal.pending_count == 4
        assert journal.shed_count == 3
        assert journal.flush_pending()
        events = journal.tail()
    assert [e.kind for e in events] == ["run.started", "journal.gap", "pump.status",
                                        "dose.applied", "alarm.raised", "pump.status"]
    gap = events[1]
    assert isinstance(gap, JournalGap)
    assert gap.shed == {"beat.summary": 3}
    assert (gap.from_t_s, gap.to_t_s) == (1.0, 5.0)


def test_durable_events_are_never_shed(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock, busy_timeout_s=0.0, max_pending=2) as journal:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            for i in range(5):
                with pytest.raises(JournalUnavailable):
                    journal.append(dose(float(i), float(i)))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert journal.pending_count == 5
        assert journal.flush_pending()
        assert [e.t_s for e in journal.tail()] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_reader_refuses_a_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal there"):
        JournalReader(tmp_path / "absent.sqlite")


def test_refuses_a_journal_with_a_newer_layout(path: Path, clock: VirtualClock) -> None:
    Journal(path, clock).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        JournalReader(path)


def test_journal_runs_in_wal_mode_with_full_sync(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock) as journal:
        journal.append(run(0.0))
        assert journal._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (dose(0.0, 12.0, previous=10.0), "10.00 -> 12.00 mcg/min (9.000 mL/h) by controller"),
        (raised(0.0, "OCCLUSION", Priority.HIGH), "HIGH OCCLUSION: OCCLUSION message"),
        (beat(0.0, 71.4), "MAP 71 mmHg, HR 80/min, good, 18 beats"),
        (run(0.0, restarted=True), "restart of sim-rig in closed-loop, target 65 mmHg"),
    ],
)
def test_summary_line_says_what_the_event_is_about(event: Event, expected: str) -> None:
    assert expected in summary_line(event)
