"""`vasopilot alarm ack|silence CODE --rig FILE`: a person at the bench reaches the running rig
through its local control socket; every action is journaled as an operator's, by local:<user>."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.control.manual import ManualMode
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import VasopilotError
from vasopilot.core.events import AlarmAcknowledged, AlarmSilenced, Event, OperatorAction
from vasopilot.journal import Journal
from vasopilot.local_control import clear_stale, control_socket, socket_path
from vasopilot.rig import Rig
from vasopilot.serve import ServeOptions, open_rig
from vasopilot.settings import load_rig

CONFIG = Path(__file__).resolve().parents[1] / "config"
USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    for name in ("drug-library.toml", "syringes.toml"):
        shutil.copy(CONFIG / name, tmp_path / name)
    path = tmp_path / "sim.toml"
    path.write_text((CONFIG / "sim.toml").read_text().replace(
        'journal = "../out/sim-journal.sqlite"', 'journal = "journal.sqlite"'))
    return path


@contextmanager
def _rig(profile: Path) -> Iterator[tuple[Rig, Journal, VirtualClock, Path]]:
    """A sim rig on a virtual clock, its journal, and where its control socket goes."""
    config = load_rig(profile)
    clock = VirtualClock()
    with Journal(config.journal_path, clock) as journal:
        rig = open_rig(config, journal, clock, ManualMode(), ServeOptions(mode="manual"))
        try:
            yield rig, journal, clock, socket_path(config.journal_path)
        finally:
            rig.close()


def _bench(profile: Path, *argvs: list[str]) -> tuple[list[int], list[Event]]:
    """A sim rig with an active MAP_LOW alarm serving its socket while each ``argv`` runs as
    a client; returns their exit codes and the journal."""
    codes: list[int] = []
    with _rig(profile) as (rig, journal, clock, path):
        rig.supervisor.start(5.0, clock.now_s())
        while not any(a.code == "MAP_LOW" for a in rig.supervisor.view().alarms):
            assert clock.now_s() < 900.0, "the hypotensive patient raises MAP_LOW"
            rig.loop.step(clock.advance(0.2))

        async def scenario() -> None:
            async with control_socket(path, rig.loop, journal.append):
                for argv in argvs:
                    client = asyncio.ensure_future(asyncio.to_thread(main, argv))
                    while not client.done():
                        rig.loop.step(clock.advance(0.2))
                        await asyncio.sleep(0)
                    codes.append(client.result())

        asyncio.run(scenario())
        return codes, list(journal.iter_events())


def test_ack_and_silence_are_journaled_as_the_local_users_operator_actions(
    profile: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    codes, events = _bench(profile, ["alarm", "silence", "MAP_LOW", "--rig", str(profile)],
                           ["alarm", "ack", "MAP_LOW", "--rig", str(profile)])
    assert codes == [0, 0]
    out = capsys.readouterr().out
    assert "done: alarm MAP_LOW silenced" in out and "done: alarm MAP_LOW acknowledged" in out
    by = f"local:{USER}"
    actions = [e for e in events if isinstance(e, OperatorAction) and e.by == by]
    assert [(a.action, a.detail) for a in actions] == [("silence", "alarm MAP_LOW"),
                                                      ("acknowledge", "alarm MAP_LOW")]
    [silenced] = [e for e in events if isinstance(e, AlarmSilenced)]
    [acked] = [e for e in events if isinstance(e, AlarmAcknowledged)]
    assert silenced.by == by and acked.by == by
    # journaled before it was done
    assert (actions[0].seq or 0) < (silenced.seq or 0) and (actions[1].seq or 0) < (acked.seq or 0)


def test_an_alarm_that_is_not_active_is_refused_and_nothing_is_journaled(
    profile: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    codes, events = _bench(profile, ["alarm", "ack", "OCCLUSION", "--rig", str(profile)])
    assert codes == [1]
    assert "refused: no active alarm 'OCCLUSION'" in capsys.readouterr().out
    assert not [e for e in events if isinstance(e, (OperatorAction, AlarmAcknowledged))
                and e.by.startswith("local:")]


def test_no_rig_running_is_one_line_and_exit_2(profile: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alarm", "ack", "MAP_LOW", "--rig", str(profile)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"vasopilot: no rig running for {profile}: nothing listens on ")


def test_the_socket_is_for_the_rigs_user_and_group_and_goes_with_the_rig(profile: Path) -> None:
    with _rig(profile) as (rig, journal, _clock, path):
        async def scenario() -> None:
            async with control_socket(path, rig.loop, journal.append):
                assert stat.S_IMODE(path.stat().st_mode) == 0o660
                assert path.stat().st_uid == os.getuid()
                with pytest.raises(VasopilotError, match="another vasopilot run"):
                    clear_stale(path)  # a second rig on this journal is refused

        asyncio.run(scenario())
    assert not path.exists()


def test_a_dead_rigs_socket_is_cleared_not_taken_for_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite.control"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    clear_stale(path)  # no false refusal after a crash
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(VasopilotError, match="not a control socket"):
        clear_stale(path)


def test_a_request_that_is_not_one_is_answered_and_changes_nothing(profile: Path) -> None:
    with _rig(profile) as (rig, journal, _clock, path):
        async def scenario() -> bytes:
            async with control_socket(path, rig.loop, journal.append):
                reader, writer = await asyncio.open_unix_connection(str(path))
                writer.write(b'{"command": "stop", "code": "MAP_LOW"}\n')
                line = await reader.readline()
                writer.close()
                await writer.wait_closed()
                return line

        line = asyncio.run(scenario())
        assert b'"accepted":false' in line and b"not a request" in line
        assert not [e for e in journal.iter_events() if isinstance(e, OperatorAction)]
