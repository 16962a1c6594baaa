from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.cli.journal import follow
from vasopilot.core.clock import VirtualClock
from vasopilot.core.events import (
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    Event,
    OperatorAction,
    parse_event,
)
from vasopilot.core.types import Priority, Requester
from vasopilot.journal import Journal, JournalReader


def fill(path: Path, clock: VirtualClock) -> None:
    with Journal(path, clock) as journal:
        for i in range(30):
            clock.advance(15.0)
            journal.append(BeatSummary(t_s=clock.now_s(), map_mmhg=60.0 + i, sbp_mmhg=90.0,
                                       dbp_mmhg=45.0, hr_bpm=80.0, quality="good", beats=18))
            if i % 10 == 0:
                journal.append(DoseApplied(t_s=clock.now_s(), requester=Requester.CONTROLLER,
                                           dose_mcg_min=8.0 + i / 5, previous_dose_mcg_min=8.0,
                                           rate_ml_h=6.0, reason="MAP under target"))
        journal.append(AlarmRaised(t_s=clock.now_s(), code="MAP_STALE",
                                   priority=Priority.MEDIUM, message="no trusted MAP for 10 s"))


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "j.sqlite"
    fill(path, VirtualClock())
    return path


def test_tail_prints_a_header_and_the_last_n_events_as_a_table(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "tail", str(journal_path), "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["seq", "wall", "(UTC)", "kind", "summary"]
    assert [line.split()[0] for line in lines[1:]] == ["32", "33", "34"]
    assert lines[-1].split()[1:4] == ["2026-01-01", "00:07:30.000", "alarm.raised"]
    assert lines[-1].endswith("MEDIUM MAP_STALE: no trusted MAP for 10 s")


def test_tail_json_prints_one_parseable_event_per_line_of_the_asked_kinds(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "tail", str(journal_path), "--json",
                 "--kind", "dose.applied", "--kind", "alarm.raised"]) == 0
    events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
    assert [e.kind for e in events] == ["dose.applied"] * 3 + ["alarm.raised"]
    with JournalReader(journal_path) as reader:
        assert events == reader.tail(4, {"dose.applied", "alarm.raised"})


def test_tail_without_a_journal_outside_the_repository_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["journal", "tail"]) == 2
    assert "name the journal file" in capsys.readouterr().err


def test_tail_defaults_to_the_journal_of_the_sim_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sim.toml").write_text('journal = "../out/here.sqlite"\n')
    fill(tmp_path / "out" / "here.sqlite", VirtualClock())
    monkeypatch.chdir(tmp_path)
    assert main(["journal", "tail", "-n", "1"]) == 0
    assert "MAP_STALE" in capsys.readouterr().out


def test_follow_emits_each_new_event_once_in_order(tmp_path: Path) -> None:
    clock = VirtualClock()
    path = tmp_path / "j.sqlite"
    seen: list[Event] = []
    with Journal(path, clock) as journal, JournalReader(path) as reader:
        journal.append(OperatorAction(t_s=0.0, action="start"))
        polls = iter(range(4))

        def keep_going() -> bool:
            poll = next(polls, None)
            if poll in (1, 2):
                for _ in range(poll):
                    journal.append(OperatorAction(t_s=clock.now_s(), action=f"poll {poll}"))
            return poll is not None

        last = follow(reader.since, seen.append, clock, after_seq=1, interval_s=0.5,
                      keep_going=keep_going)
    assert [e.seq for e in seen] == [2, 3, 4]
    assert last == 4
    assert clock.now_s() == 2.0
