"""The command gate, the refusal log and broker URLs, without a broker (S15)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mqtt_rig import TestRig

from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MqttSettings
from vasopilot.core.errors import ConfigError
from vasopilot.core.events import RemoteCommand
from vasopilot.core.types import CommandRefusal
from vasopilot.telemetry.commands import (
    Checked,
    CommandGate,
    Incoming,
    RefusalLog,
    Refused,
    act,
    sender_of,
)
from vasopilot.telemetry.url import PASSWORD_ENV, settings_from_url, with_password

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RIG = "rig-01"


def gate(clock: VirtualClock, rate_per_s: float = 5.0) -> CommandGate:
    return CommandGate(RIG, own_username=RIG, clock=clock, wall=lambda: WALL,
                       rate_per_s=rate_per_s)


def message(user: str = "alice", *, issued_at: datetime = WALL, request_id: str = "r1",
            **extra: object) -> Incoming:
    body = {"command": "stop", "request_id": request_id,
            "issued_at": issued_at.isoformat(), **extra}
    return Incoming(f"vasopilot/v1/{RIG}/cmd/{user}", json.dumps(body).encode())


def test_the_sender_is_the_topics_last_level_and_nothing_else() -> None:
    assert sender_of(f"vasopilot/v1/{RIG}/cmd/alice", RIG) == "alice"
    assert sender_of(f"vasopilot/v1/{RIG}/cmd/a/b", RIG) is None
    assert sender_of("vasopilot/v1/rig-02/cmd/alice", RIG) is None
    assert sender_of(f"vasopilot/v1/{RIG}/cmd/", RIG) is None


def test_the_rigs_own_account_cannot_command_it() -> None:
    checked = gate(VirtualClock()).check(message(RIG))
    assert isinstance(checked, Refused) and checked.code == CommandRefusal.SELF


def test_a_message_whose_expiry_ran_out_is_refused_and_expiry_shortens_the_deadline() -> None:
    clock = VirtualClock(100.0)
    g = gate(clock)
    body = message().payload
    dead = g.check(Incoming(f"vasopilot/v1/{RIG}/cmd/alice", body, expiry_s=0))
    assert isinstance(dead, Refused) and dead.code == CommandRefusal.EXPIRED
    short = g.check(Incoming(f"vasopilot/v1/{RIG}/cmd/alice", body, expiry_s=3))
    assert isinstance(short, Checked) and short.deadline_s == pytest.approx(103.0)
    aged = g.check(message(request_id="r2", issued_at=WALL - timedelta(seconds=4)))
    assert isinstance(aged, Checked) and aged.deadline_s == pytest.approx(106.0)


@given(st.floats(min_value=-30, max_value=30, allow_nan=False))
def test_only_commands_issued_within_10_s_ago_to_2_s_ahead_pass(offset_s: float) -> None:
    checked = gate(VirtualClock()).check(message(issued_at=WALL + timedelta(seconds=offset_s)))
    if -10.0 <= offset_s <= 2.0:
        assert isinstance(checked, Checked)
    else:
        assert isinstance(checked, Refused)
        assert checked.code == (CommandRefusal.STALE if offset_s < 0 else CommandRefusal.FUTURE)


def test_the_rate_limit_is_per_sender_and_refills() -> None:
    clock = VirtualClock()
    g = gate(clock, rate_per_s=5.0)
    first = [g.check(message("alice", request_id=f"a{i}")) for i in range(7)]
    assert [isinstance(c, Checked) for c in first] == [True] * 5 + [False] * 2
    assert isinstance(g.check(message("bob", request_id="b1")), Checked)
    clock.advance(0.2)
    assert isinstance(g.check(message("alice", request_id="a8")), Checked)


def test_a_command_that_waited_past_its_deadline_does_not_act(tmp_path: Path) -> None:
    rig = TestRig(tmp_path / "journal.sqlite")
    try:
        clock = VirtualClock()
        checked = gate(clock).check(message())
        assert isinstance(checked, Checked)
        clock.advance(10.5)
        reply = act(checked, rig.supervisor, 0.0, rig_id=RIG, gate_clock=clock,
                    seen=lambda _id: False, sink=rig.journal.append)
        assert reply.code == CommandRefusal.EXPIRED and rig.supervisor.view().running
        assert not [e for e in rig.journal.tail(50) if isinstance(e, RemoteCommand)]
    finally:
        rig.close()


def test_the_refusal_log_makes_one_row_per_burst_with_its_count() -> None:
    log = RefusalLog(quiet_s=1.0, window_s=10.0)
    refused = gate(VirtualClock()).check(message(RIG))
    assert isinstance(refused, Refused)
    for i in range(3000):
        log.add(refused, i * 0.001)
    assert log.due(2.5) == []
    rows = log.due(4.0)
    assert [(r.sender, r.code, r.count) for r in rows] == [(RIG, CommandRefusal.SELF, 3000)]
    assert log.due(100.0) == []
    flood = []
    for i in range(2000):  # a flood that never pauses for 20 s costs one row per window
        log.add(refused, 200.0 + i * 0.01)
        flood += log.due(200.0 + i * 0.01)
    flood += log.due(230.0)
    assert len(flood) == 2 and sum(r.count for r in flood) == 2000


def test_a_password_in_a_broker_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="password") as info:
        settings_from_url("mqtts://op:hunter2@broker.example:8883")
    assert "hunter2" not in str(info.value)


def test_an_override_never_weakens_the_profiles_tls() -> None:
    base = MqttSettings(tls=True, ca_file="/etc/ca.pem", remote_commands=True)
    for url in ("mqtt://localhost", "mqtt://broker.example?insecure=true"):
        with pytest.raises(ConfigError, match="TLS"):
            settings_from_url(url, base)
    kept = settings_from_url("mqtts://rig-01@other.example:8884", base)
    assert (kept.tls, kept.ca_file, kept.remote_commands) == (True, "/etc/ca.pem", True)


def test_the_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    settings = MqttSettings(password_file="pw")
    assert with_password(settings, base_dir=tmp_path, environ={}).password == "from-file"
    env = with_password(MqttSettings(), environ={PASSWORD_ENV: "from-env"})
    assert env.password == "from-env"
    with pytest.raises(ConfigError, match="password file"):
        with_password(MqttSettings(password_file=str(tmp_path / "missing")), environ={})


def test_rig_and_client_ids_are_topic_safe() -> None:
    for bad in ("rig/1", "rig+", "#", "Rig-01", "r" * 33):
        with pytest.raises(ValueError):
            MqttSettings(rig_id=bad)
    assert MqttSettings(rig_id="rig-01", client_id="vasopilot-rig-01").rig_id == "rig-01"
