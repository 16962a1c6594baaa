"""Remote commands (S15) through a real Mosquitto with TLS, the shipped password users and ACL.

Each attack of issue 15 has a test here: a sender claimed in the payload, a replay after a
restart or after thousands of other ids, the rig's own account and other operators' accounts
commanding a rig, viewers reading commands, retained commands, a flood, refusals that left no
journal row, lax types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from mqtt_fixtures import MOSQUITTO, NO_BROKER, RIG, Broker, Received, Subscriber, wait_until
from mqtt_rig import TestRig

from vasopilot.core.events import (
    DoseRefused,
    DoseRequested,
    Event,
    OperatorAction,
    RemoteCommand,
    RemoteRefused,
)
from vasopilot.core.types import CommandRefusal, VolumeAnswer
from vasopilot.telemetry import Telemetry
from vasopilot.telemetry.commands import RefusalLog
from vasopilot.telemetry.payloads import CommandReply

pytestmark = pytest.mark.mqtt
WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the rig's wall clock, injected
_ids = count(1)


def cmd_topic(user: str, rig: str = RIG) -> str:
    return f"vasopilot/v1/{rig}/cmd/{user}"


def reply_topic(user: str, rig: str = RIG) -> str:
    return f"vasopilot/v1/{rig}/reply/{user}"


def command(name: str, *, issued_at: datetime = WALL, **fields: object) -> tuple[str, str]:
    request_id = f"req-{next(_ids)}"
    body = {"command": name, "request_id": request_id,
            "issued_at": issued_at.isoformat().replace("+00:00", "Z"), **fields}
    return request_id, json.dumps(body)


@dataclass
class Remote:
    broker: Broker
    rig: TestRig
    telemetry: Telemetry
    alice: Subscriber

    def send(self, payload: bytes | str, *, retain: bool = False, by: Subscriber | None = None,
             user: str = "alice", correlation: bytes | None = None) -> None:
        (by or self.alice).publish(cmd_topic(user), payload, retain=retain,
                                   correlation=correlation)

    def message(self, request_id: str | None = None, timeout_s: float = 5.0) -> Received:
        def mine(msg: Received) -> bool:
            return (request_id is None
                    or CommandReply.model_validate_json(msg.payload).request_id == request_id)
        return self.alice.next(mine, timeout_s=timeout_s, pump=self.rig.step)

    def reply(self, request_id: str | None = None, timeout_s: float = 5.0) -> CommandReply:
        return CommandReply.model_validate_json(self.message(request_id, timeout_s).payload)

    def dose(self) -> float:
        return self.rig.supervisor.view().dose_mcg_min

    def journaled(self, after_seq: int) -> list[Event]:
        return self.rig.journal.since(after_seq)

    def refusal_rows(self, after_seq: int, code: CommandRefusal,
                     at_least: int = 1) -> list[RemoteRefused]:
        """The refusal rows of ``code`` journaled after ``after_seq``, once they are there."""
        def rows() -> list[RemoteRefused]:
            self.rig.step()
            return [e for e in self.journaled(after_seq)
                    if isinstance(e, RemoteRefused) and e.code == code]
        wait_until(lambda: sum(r.count for r in rows()) >= at_least)
        return rows()


def start_telemetry(broker: Broker, rig: TestRig, *, rate_per_s: float = 50.0) -> Telemetry:
    settings = broker.settings(remote_commands=True).model_copy(
        update={"command_rate_per_s": rate_per_s})
    telemetry = Telemetry(settings, RIG, rig.journal.path, sink=rig.journal.append,
                          wall=lambda: WALL, refusals=RefusalLog(quiet_s=0.2, window_s=5.0))
    telemetry.start()
    telemetry.bind_loop(rig.loop)
    assert telemetry.connected.wait(5), telemetry.last_error
    return telemetry


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    if MOSQUITTO is None:
        pytest.skip(NO_BROKER)
    folder = tmp_path_factory.mktemp("remote")
    broker = Broker(folder, tls=True)
    broker.start()
    rig = TestRig(folder / "journal.sqlite")
    for _ in range(4):
        rig.step()  # remote requests, like automatic ones, need a trusted MAP
    telemetry = start_telemetry(broker, rig)
    alice = Subscriber(broker, [reply_topic("alice")], user="alice", v5=True)
    yield Remote(broker, rig, telemetry, alice)
    alice.close()
    telemetry.close()
    rig.close()
    broker.stop()


def test_set_dose_journals_the_broker_authenticated_sender(remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    request_id, body = command("set_dose", dose_mcg_min=9.0)
    remote.send(body)
    reply = remote.reply(request_id)
    assert reply.accepted and reply.dose_mcg_min == pytest.approx(9.0)
    assert remote.dose() == pytest.approx(9.0)
    events = remote.journaled(seq)
    acted = [e for e in events if isinstance(e, RemoteCommand)]
    asked = [e for e in events if isinstance(e, DoseRequested)]
    assert [(a.request_id, a.sender) for a in acted] == [(request_id, "alice")]
    assert asked[-1].sender == "remote:alice" and asked[-1].requester == "remote"


def test_a_sender_claimed_in_the_payload_is_refused_and_never_journaled(remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    _, body = command("stop", sender="dr.smith")
    remote.send(body)
    reply = remote.reply()
    assert not reply.accepted and reply.code == CommandRefusal.INVALID
    assert remote.rig.supervisor.view().running
    rows = remote.refusal_rows(seq, CommandRefusal.INVALID)
    assert rows[0].sender == "alice"
    assert "dr.smith" not in "".join(e.model_dump_json() for e in remote.journaled(seq))


def test_the_broker_drops_a_command_under_another_users_name(remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    _, forged = command("stop")
    remote.send(forged, user="bob")  # alice writes on bob's command topic
    allowed_id, allowed = command("acknowledge", code="NO_SUCH")
    remote.send(allowed)
    assert remote.reply(allowed_id).code == CommandRefusal.NO_SUCH_ALARM
    assert remote.rig.supervisor.view().running
    acted = [e for e in remote.journaled(seq) if isinstance(e, RemoteCommand)]
    assert [(e.sender, e.command) for e in acted] == [("alice", "acknowledge")]


@pytest.mark.parametrize("user", ["rig-01", "bob", "viewer"])
def test_only_the_operators_of_this_rig_can_command_it(remote: Remote, user: str) -> None:
    """rig-01's own account (its password is in the rig profile), bob (operator of rig-02) and
    the viewer cannot command rig-01: the broker drops what they publish."""
    seq = remote.rig.journal.last_seq()
    target = remote.rig.supervisor.view().target_map_mmhg
    intruder = Subscriber(remote.broker, [], user=user)
    try:
        _, body = command("set_target", target_map_mmhg=62)
        intruder.publish(cmd_topic(user), body)
        allowed_id, allowed = command("acknowledge", code="NO_SUCH")
        remote.send(allowed)
        remote.reply(allowed_id)
    finally:
        intruder.close()
    assert remote.rig.supervisor.view().target_map_mmhg == target
    events = remote.journaled(seq)
    acted = [e for e in events if isinstance(e, RemoteCommand)]
    assert [(e.sender, e.command) for e in acted] == [("alice", "acknowledge")]
    assert not [e for e in events if isinstance(e, OperatorAction)]


def test_viewers_do_not_see_commands_in_flight(remote: Remote) -> None:
    viewer = Subscriber(remote.broker, ["vasopilot/v1/+/cmd/+", "vasopilot/v1/+/reply/+",
                                        "vasopilot/v1/+/state"])
    try:
        request_id, body = command("acknowledge", code="NO_SUCH")
        remote.send(body)
        remote.reply(request_id)
        seen = viewer.next(lambda m: m.topic.endswith("/state"), pump=remote.rig.step)
        while not viewer.messages.empty():
            seen = viewer.messages.get_nowait()
            assert "/cmd/" not in seen.topic and "/reply/" not in seen.topic
    finally:
        viewer.close()


@pytest.mark.parametrize(("payload", "code"), [
    (b"{not json", CommandRefusal.MALFORMED),
    (json.dumps({"command": "self_destruct", "request_id": "x1",
                 "issued_at": "2026-12-01T12:00:00Z"}), CommandRefusal.INVALID),
    (command("set_dose", dose_mcg_min=-1)[1], CommandRefusal.INVALID),
    (command("set_dose", dose_mcg_min=5000)[1], CommandRefusal.INVALID),
    (command("set_dose", dose_mcg_min=10, extra=1)[1], CommandRefusal.INVALID),
    (command("set_dose", dose_mcg_min="12")[1], CommandRefusal.INVALID),
    (command("set_dose", dose_mcg_min=35, confirm_soft_limit="yes")[1], CommandRefusal.INVALID),
    (command("set_target", target_map_mmhg="70")[1], CommandRefusal.INVALID),
    (command("volume_assessed", answer="fluid")[1], CommandRefusal.INVALID),
    (command("volume_assessed", answer="FLUID GIVEN")[1], CommandRefusal.INVALID),
    (command("volume_assessed", answer=1)[1], CommandRefusal.INVALID),
    (command("set_target", target_map_mmhg=70, confirm_below_usual="yes")[1],
     CommandRefusal.INVALID),
    (command("stop", issued_at=WALL.replace(tzinfo=None))[1].replace("Z", ""),
     CommandRefusal.INVALID),
    (command("stop", issued_at=WALL - timedelta(seconds=11))[1], CommandRefusal.STALE),
    (command("stop", issued_at=WALL + timedelta(seconds=3))[1], CommandRefusal.FUTURE),
    (b'{"command": "set_dose", "request_id": "d1", "issued_at": "2026-12-01T12:00:00Z", '
     b'"dose_mcg_min": 8, "dose_mcg_min": 40}', CommandRefusal.DUPLICATE_KEY),
    (command("set_dose", dose_mcg_min=10, pad="x" * 4000)[1], CommandRefusal.OVERSIZE),
])
def test_refuses_bad_payloads_changes_nothing_and_journals_the_refusal(
        remote: Remote, payload: bytes | str, code: CommandRefusal) -> None:
    before = remote.rig.supervisor.view()
    seq = remote.rig.journal.last_seq()
    remote.send(payload)
    reply = remote.reply()
    assert not reply.accepted and reply.code == code
    after = remote.rig.supervisor.view()
    assert (after.dose_mcg_min, after.running, after.weaning, after.target_map_mmhg) == \
        (before.dose_mcg_min, before.running, before.weaning, before.target_map_mmhg)
    rows = remote.refusal_rows(seq, code)
    assert [(r.sender, r.count) for r in rows] == [("alice", 1)] and rows[0].reason
    assert not [e for e in remote.journaled(seq)
                if isinstance(e, DoseRequested | OperatorAction | RemoteCommand)]


def test_a_dose_over_the_hard_maximum_is_refused_and_journaled_by_the_supervisor(
        remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    request_id, body = command("set_dose", dose_mcg_min=75.0)
    remote.send(body)
    reply = remote.reply(request_id)
    assert not reply.accepted and reply.code == "HARD_MAX"
    refused = [e for e in remote.journaled(seq) if isinstance(e, DoseRefused)]
    assert refused and refused[-1].code == "HARD_MAX" and refused[-1].sender == "remote:alice"


def test_a_replayed_request_id_is_refused_and_journaled(remote: Remote) -> None:
    request_id, body = command("set_dose", dose_mcg_min=remote.dose())
    remote.send(body)
    assert remote.reply(request_id).accepted
    seq = remote.rig.journal.last_seq()
    remote.send(body)
    replay = remote.reply(request_id)
    assert not replay.accepted and replay.code == CommandRefusal.REPLAY
    rows = remote.refusal_rows(seq, CommandRefusal.REPLAY)
    assert rows[0].request_id == request_id
    assert not [e for e in remote.journaled(seq) if isinstance(e, DoseRequested)]


def test_a_command_retained_while_the_rig_is_online_is_refused(remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    _, body = command("stop")
    remote.send(body, retain=True)
    try:
        reply = remote.reply()
        assert not reply.accepted and reply.code == CommandRefusal.RETAINED
        assert remote.rig.supervisor.view().running
        assert remote.refusal_rows(seq, CommandRefusal.RETAINED)[0].sender == "alice"
    finally:
        remote.send(b"", retain=True)  # clear the retained message


def test_the_reply_echoes_the_correlation_data(remote: Remote) -> None:
    request_id, body = command("acknowledge", code="NO_SUCH")
    remote.send(body, correlation=b"corr-42")
    assert remote.message(request_id).correlation == b"corr-42"


def test_set_target_changes_the_target_through_the_supervisor(remote: Remote) -> None:
    request_id, body = command("set_target", target_map_mmhg=75)
    remote.send(body)
    assert remote.reply(request_id).accepted
    assert remote.rig.supervisor.view().target_map_mmhg == 75.0
    actions = [e for e in remote.rig.journal.tail(50) if isinstance(e, OperatorAction)
               and e.action == "set_target"]
    assert actions and actions[-1].by == "remote:alice"


def test_a_volume_check_is_answered_by_a_remote_operator_and_journaled(remote: Remote) -> None:
    request_id, body = command("volume_assessed", answer="fluid given")
    remote.send(body)
    reply = remote.reply(request_id)
    assert reply.accepted and reply.reason == "volume check answered: fluid given"
    answers = [e for e in remote.rig.journal.tail(50) if isinstance(e, OperatorAction)
               and e.action == "volume_assessed"]
    assert answers and answers[-1].by == "remote:alice"
    assert answers[-1].volume_answer is VolumeAnswer.FLUID_GIVEN


def test_stop_and_weaning_reach_the_supervisor(remote: Remote) -> None:
    wean_id, wean = command("start_weaning")
    remote.send(wean)
    assert remote.reply(wean_id).accepted
    assert remote.rig.supervisor.view().weaning
    unwean_id, unwean = command("stop_weaning")
    remote.send(unwean)
    assert remote.reply(unwean_id).accepted
    assert not remote.rig.supervisor.view().weaning
    stop_id, stop = command("stop", reason="bench test over")
    remote.send(stop)
    assert remote.reply(stop_id).accepted
    assert not remote.rig.supervisor.view().running
    stops = [e for e in remote.rig.journal.tail(30)
             if isinstance(e, OperatorAction) and e.action == "stop"]
    assert stops[-1].by == "remote:alice"


def ask(alice: Subscriber, rig: TestRig, body: str) -> CommandReply:
    """Send ``body`` as alice and return the rig's reply (stepping the rig meanwhile)."""
    alice.publish(cmd_topic("alice"), body)
    return CommandReply.model_validate_json(alice.next(lambda _m: True, pump=rig.step).payload)


@pytest.fixture
def tls_rig(tls_broker: Broker, tmp_path: Path) -> Iterator[tuple[Broker, TestRig]]:
    rig = TestRig(tmp_path / "journal.sqlite")
    for _ in range(4):
        rig.step()
    yield tls_broker, rig
    rig.close()


def test_an_accepted_id_is_refused_after_a_restart(tls_broker: Broker, tmp_path: Path) -> None:
    broker, rig = tls_broker, TestRig(tmp_path / "journal.sqlite")
    for _ in range(4):
        rig.step()
    alice = Subscriber(broker, [reply_topic("alice")], user="alice")
    request_id, body = command("set_target", target_map_mmhg=70)
    try:
        with start_telemetry(broker, rig):
            assert ask(alice, rig, body).accepted
        rig.close()
        # A new process: new rig objects and telemetry, nothing in RAM, the same journal.
        restarted = TestRig(rig.journal.path)
        with start_telemetry(broker, restarted):
            reply = ask(alice, restarted, body)
        restarted.close()
    finally:
        alice.close()
    assert reply.request_id == request_id and reply.code == CommandRefusal.REPLAY


def test_an_accepted_id_is_refused_after_thousands_of_others(
        tls_rig: tuple[Broker, TestRig]) -> None:
    broker, rig = tls_rig
    alice = Subscriber(broker, [reply_topic("alice")], user="alice")
    first_id, first = command("set_target", target_map_mmhg=70)
    try:
        with start_telemetry(broker, rig):
            assert ask(alice, rig, first).accepted
            for i in range(5000):  # ids acted on since, as the journal holds them
                rig.journal.append(RemoteCommand(t_s=rig.clock.now_s(), request_id=f"o-{i}",
                                                 sender="alice", command="set_target",
                                                 issued_at=WALL.isoformat()))
            reply = ask(alice, rig, first)
    finally:
        alice.close()
    assert reply.request_id == first_id and reply.code == CommandRefusal.REPLAY


def test_a_retained_command_found_on_connecting_is_refused(
        tls_rig: tuple[Broker, TestRig]) -> None:
    broker, rig = tls_rig
    alice = Subscriber(broker, [reply_topic("alice")], user="alice")
    _, body = command("stop")
    alice.publish(cmd_topic("alice"), body, retain=True)
    try:
        with start_telemetry(broker, rig):
            msg = alice.next(lambda _m: True, pump=rig.step)
        reply = CommandReply.model_validate_json(msg.payload)
        assert not reply.accepted and reply.code == CommandRefusal.RETAINED
        assert rig.supervisor.view().running
    finally:
        alice.close()


def test_a_flood_is_rate_limited_and_journaled_as_one_row(
        tls_rig: tuple[Broker, TestRig]) -> None:
    broker, rig = tls_rig
    alice = Subscriber(broker, [reply_topic("alice")], user="alice")
    flood = 5000
    try:
        with start_telemetry(broker, rig, rate_per_s=5.0):
            seq = rig.journal.last_seq()
            sent = [alice.client.publish(cmd_topic("alice"),
                                         command("set_target", target_map_mmhg=70)[1], qos=1)
                    for _ in range(flood)]
            sent[-1].wait_for_publish(30)
            replies: list[Received] = []

            def all_answered() -> bool:
                rig.step()
                while not alice.messages.empty():
                    replies.append(alice.messages.get_nowait())
                return len(replies) >= flood

            assert wait_until(all_answered, timeout_s=60)
            codes = [CommandReply.model_validate_json(m.payload).code for m in replies]
            limited = codes.count(CommandRefusal.RATE_LIMITED)

            def limited_rows() -> list[RemoteRefused]:
                rig.step()
                return [e for e in rig.journal.since(seq) if isinstance(e, RemoteRefused)]

            assert wait_until(lambda: sum(r.count for r in limited_rows()) >= limited)
            rows = rig.journal.since(seq)
    finally:
        alice.close()
    accepted = codes.count(None)
    assert limited > flood * 0.9 and accepted + limited == flood
    refused = [r for r in rows if isinstance(r, RemoteRefused)]
    assert sum(r.count for r in refused) == limited
    # Thousands of refusals cost a few rows (one per 5 s window), not one per message; each
    # accepted command is its remote.command and operator.action rows.
    assert len(refused) <= 4
    commanded = [r for r in rows if isinstance(r, RemoteCommand | OperatorAction)]
    assert len(commanded) == 2 * accepted


def test_commands_are_off_by_default(broker: Broker, tmp_path: Path) -> None:
    rig = TestRig(tmp_path / "journal.sqlite")
    alice = Subscriber(broker, [reply_topic("alice")], user="alice")
    try:
        with Telemetry(broker.settings(), RIG, rig.journal.path,
                       sink=rig.journal.append) as telemetry:
            telemetry.bind_loop(rig.loop)
            assert telemetry.connected.wait(5)
            _, body = command("stop")
            alice.publish(cmd_topic("alice"), body)
            with pytest.raises(AssertionError):
                alice.next(lambda _m: True, timeout_s=0.5, pump=rig.step)
        assert rig.supervisor.view().running
    finally:
        alice.close()
        rig.close()
