"""Issue 11 case 4: the journal's filesystem fills up in the middle of a run.

A real tmpfs of 2 MiB holds the journal; at t = 5 min a file takes all of its free space, at
t = 15 min the file goes. The run (``vasopilot run``'s runtime on a virtual clock) must go on
with the pump infusing at its rate, say on its console that the journal is faulty, and when the
space is back write every event it kept, in order: none lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vasopilot.control.manual import ManualMode
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import JournalUnavailable
from vasopilot.core.events import Event, JournalGap, OperatorAction
from vasopilot.core.types import CommandRefusal, PumpState
from vasopilot.journal import Journal
from vasopilot.serve import ServeOptions, open_rig, serve
from vasopilot.service import SystemdNotifier
from vasopilot.settings import load_rig

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (needs root, as on the project's machines and CI)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem with one file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)
    return filler


class ScheduledClock(VirtualClock):
    """A virtual clock on which the world changes at given times (after a sleep)."""

    def __init__(self) -> None:
        super().__init__()
        self.due: list[tuple[float, Callable[[], None]]] = []

    async def sleep_async(self, seconds: float) -> None:
        await super().sleep_async(seconds)
        while self.due and self.due[0][0] <= self.now_s():
            self.due.pop(0)[1]()


class CountingJournal(Journal):
    """Keeps every event handed to it, whether it could write it then or not."""

    handed: list[Event]

    def append(self, event: Event) -> Event:
        self.__dict__.setdefault("handed", []).append(event)
        return super().append(event)


def test_a_full_disk_mid_run_holds_the_infusion_and_the_journal_catches_up_losing_nothing(
    small_fs: Path,
) -> None:
    clock = ScheduledClock()
    config = load_rig(SIM)
    options = ServeOptions(mode="manual", start_dose_mcg_min=10.0, minutes=20.0)
    console: list[str] = []
    seen: dict[str, object] = {}
    with CountingJournal(small_fs / "journal.sqlite", clock) as journal:
        rig = open_rig(config, journal, clock, ManualMode(), options, console=console.append)
        filler: list[Path] = []

        def look(label: str) -> None:
            view = rig.supervisor.view()
            pump = view.pump
            assert pump is not None
            seen[label] = (journal.pending_count, view.dose_mcg_min, pump.state, pump.rate_ml_h)

        clock.due = [
            (290.0, lambda: look("before")),
            (300.0, lambda: filler.append(fill(small_fs))),
            (890.0, lambda: look("full")),
            (900.0, lambda: filler.pop().unlink()),
            (1190.0, lambda: look("after")),
        ]
        try:
            asyncio.run(serve(rig, clock, journal, options, SystemdNotifier({})))
        finally:
            rig.close()
        written = [e for e in journal.iter_events() if not isinstance(e, JournalGap)]

    before, full, after = seen["before"], seen["full"], seen["after"]
    infusing = (10.0, PumpState.INFUSING, pytest.approx(7.5, rel=1e-3))
    assert before == (0, *infusing)
    pending_when_full = full[0]
    assert isinstance(pending_when_full, int) and pending_when_full > 0
    assert full[1:] == infusing  # the pump kept its rate through the fault
    assert after == (0, *infusing)
    assert any("JOURNAL FAULT" in line for line in console)
    assert any("journal caught up" in line for line in console)
    key = [(e.kind, e.t_s) for e in journal.handed]
    assert [(e.kind, e.t_s) for e in written] == key  # all of them, in order: none lost


def test_closing_a_journal_that_still_cannot_write_says_how_many_events_are_lost(
    small_fs: Path,
) -> None:
    clock = VirtualClock()
    journal = Journal(small_fs / "journal.sqlite", clock)
    fill(small_fs)
    lost = 0
    for i in range(2000):
        try:
            journal.append(OperatorAction(t_s=float(i), action="note", detail="x" * 200))
        except JournalUnavailable:
            lost = journal.pending_count
            break
    assert lost > 0
    with pytest.raises(JournalUnavailable, match=f"{lost} event.s. could not be written"):
        journal.close()


def test_a_journal_folder_that_cannot_be_made_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from vasopilot.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    profile = tmp_path / "rig.toml"
    profile.write_text(SIM.read_text().replace('journal = "../out/sim-journal.sqlite"',
                                               f'journal = "{blocker}/journal/j.sqlite"')
                       .replace('drug_library = "drug-library.toml"',
                                f'drug_library = "{SIM.parent / "drug-library.toml"}"')
                       .replace('syringe_catalogue = "syringes.toml"',
                                f'syringe_catalogue = "{SIM.parent / "syringes.toml"}"'))
    for argv in (["run", "--rig", str(profile), "--minutes", "1"],
                 ["sim", "--hours", "0.01", "--no-plot", "--out", str(blocker / "out")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "cannot make" in err and str(blocker) in err


def test_a_remote_command_on_a_full_disk_is_answered_not_done_and_the_loop_goes_on(
    small_fs: Path,
) -> None:
    from vasopilot.core.config import MqttSettings
    from vasopilot.rig import build_rig
    from vasopilot.telemetry import Telemetry
    from vasopilot.telemetry.commands import Checked, utc_now
    from vasopilot.telemetry.payloads import COMMAND_ADAPTER

    clock = VirtualClock()
    console: list[str] = []
    with Journal(small_fs / "journal.sqlite", clock) as journal:
        rig = build_rig(load_rig(SIM), clock=clock, sink=journal, controller=ManualMode(),
                        console=console.append)
        # never connected: the command goes the way a received one goes, onto the loop
        telemetry = Telemetry(MqttSettings(enabled=True, insecure=True), "rig", journal.path,
                              clock=clock, sink=journal.append)
        try:
            rig.supervisor.start(10.0, 0.0, soft_limit_confirmed=True)
            for t_s in range(1, 60):
                rig.loop.step(clock.advance_to(float(t_s)))
            filler = fill(small_fs)
            command = COMMAND_ADAPTER.validate_python(
                {"command": "set_dose", "request_id": "r1", "issued_at": utc_now(),
                 "dose_mcg_min": 12.0})
            checked = Checked(command=command, sender="nurse", deadline_s=clock.now_s() + 10.0,
                              correlation=None)
            rig.loop.submit(functools.partial(telemetry._act, checked, rig.supervisor))
            view = rig.loop.step(clock.advance_to(60.0))
            _sender, reply, _correlation = telemetry._replies.get_nowait()
            assert (reply.accepted, reply.code) == (False, CommandRefusal.JOURNAL)
            assert view.dose_mcg_min == 10.0 and view.running
            assert journal.pending_count > 0
            filler.unlink()
            rig.loop.step(clock.advance_to(61.0))
            assert journal.pending_count == 0
        finally:
            telemetry.close()
            rig.close()
    assert [line.split(",")[0] for line in console] == [
        "JOURNAL FAULT", "journal caught up: every pending event is written"]
