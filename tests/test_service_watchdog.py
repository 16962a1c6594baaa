"""sd_notify against a fake systemd socket: the watchdog is pinged only while the loop steps."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_rig import TestRig

from vasopilot.service import LoopWatchdog, SystemdNotifier


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(256))
        except BlockingIOError:
            return out


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[TestRig]:
    r = TestRig(tmp_path / "journal.sqlite")
    yield r
    r.close()


def test_notifier_sends_ready_and_reads_the_watchdog_period(systemd: tuple[socket.socket, str]
                                                            ) -> None:
    sock, path = systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    assert notifier.notify("READY=1")
    assert notifier.watchdog_s == 10.0
    assert received(sock) == [b"READY=1"]


def test_notifier_is_silent_outside_systemd() -> None:
    assert not SystemdNotifier({}).notify("READY=1")


def test_pings_the_watchdog_only_while_the_loop_steps(systemd: tuple[socket.socket, str],
                                                      rig: TestRig) -> None:
    sock, path = systemd
    watchdog = LoopWatchdog(rig.loop, SystemdNotifier({"NOTIFY_SOCKET": path}), rig.clock,
                            max_age_s=2.0)
    assert not watchdog.tick()  # nothing has proved the loop alive yet
    for _ in range(4):
        rig.step()
        assert watchdog.tick()
    assert received(sock) == [b"WATCHDOG=1"] * 4
    # The loop hangs: time goes on, no step runs the marks, the pings stop.
    rig.clock.advance(1.0)
    assert watchdog.tick()
    rig.clock.advance(1.5)
    assert not watchdog.tick()
    assert not watchdog.tick()
    assert received(sock) == [b"WATCHDOG=1"]
    rig.step()
    assert watchdog.tick()
    assert watchdog.pings == 6
