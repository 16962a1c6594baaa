"""Remote commands (S15) through a real Mosquitto with TLS, users and an ACL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from mqtt_fixtures import MOSQUITTO, NO_BROKER, Broker, Received, Subscriber
from mqtt_rig import TestRig

from vasopilot.core.events import DoseRefused, DoseRequested, OperatorAction
from vasopilot.telemetry import Telemetry
from vasopilot.telemetry.payloads import CommandReply

pytestmark = pytest.mark.mqtt
RIG = "rig-c"
CMD = f"vasopilot/{RIG}/cmd"
_ids = count(1)


@dataclass
class Remote:
    broker: Broker
    rig: TestRig
    telemetry: Telemetry
    operator: Subscriber

    def send(self, payload: bytes | str, *, retain: bool = False,
             by: Subscriber | None = None) -> None:
        (by or self.operator).publish(CMD, payload, retain=retain)

    def reply(self, request_id: str | None = None, timeout_s: float = 5.0) -> CommandReply:
        def mine(msg: Received) -> bool:
            return (request_id is None
                    or CommandReply.model_validate_json(msg.payload).request_id == request_id)
        msg = self.operator.next(mine, timeout_s=timeout_s, pump=self.rig.step)
        return CommandReply.model_validate_json(msg.payload)

    def dose(self) -> float:
        return self.rig.supervisor.view().dose_mcg_min


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
    telemetry = Telemetry(broker.settings(remote_commands=True), RIG, rig.journal.path).start()
    telemetry.bind_loop(rig.loop)
    assert telemetry.connected.wait(5), telemetry.last_error
    operator = Subscriber(broker, [f"{CMD}/reply"], user="operator")
    yield Remote(broker, rig, telemetry, operator)
    operator.close()
    telemetry.close()
    rig.close()
    broker.stop()


def command(name: str, **fields: object) -> tuple[str, str]:
    request_id = f"req-{next(_ids)}"
    body = {"command": name, "request_id": request_id, "sender": "dr.who", **fields}
    return request_id, json.dumps(body)


def test_set_dose_goes_through_the_supervisor_and_journals_the_sender(remote: Remote) -> None:
    request_id, body = command("set_dose", dose_mcg_min=9.0)
    remote.send(body)
    reply = remote.reply(request_id)
    assert reply.accepted and reply.dose_mcg_min == pytest.approx(9.0)
    assert remote.dose() == pytest.approx(9.0)
    asked = [e for e in remote.rig.journal.tail(20) if isinstance(e, DoseRequested)]
    assert asked[-1].sender == "remote:dr.who" and asked[-1].requester == "remote"


@pytest.mark.parametrize("dose_mcg_min", [40.0, 100.0])  # over the soft, over the hard limit
def test_dose_over_a_limit_is_refused_with_the_reason(remote: Remote,
                                                      dose_mcg_min: float) -> None:
    before = remote.dose()
    request_id, body = command("set_dose", dose_mcg_min=dose_mcg_min)
    remote.send(body)
    reply = remote.reply(request_id)
    assert not reply.accepted and reply.code and reply.reason
    assert remote.dose() == before


@pytest.mark.parametrize(("payload", "code"), [
    (b"{not json", "MALFORMED"),
    (json.dumps({"command": "self_destruct", "request_id": "x1", "sender": "a"}), "INVALID"),
    (json.dumps({"command": "set_dose", "request_id": "x2", "sender": "a",
                 "dose_mcg_min": -1}), "INVALID"),
    (json.dumps({"command": "set_dose", "request_id": "x3", "sender": "a",
                 "dose_mcg_min": 5000}), "INVALID"),
    (json.dumps({"command": "set_dose", "request_id": "x4", "sender": "a",
                 "dose_mcg_min": 10, "extra": 1}), "INVALID"),
    (json.dumps({"command": "set_dose", "request_id": "x5", "sender": "a",
                 "dose_mcg_min": 10, "pad": "x" * 4000}), "OVERSIZE"),
])
def test_refuses_bad_payloads_and_changes_nothing(remote: Remote, payload: bytes | str,
                                                   code: str) -> None:
    before = remote.rig.supervisor.view()
    seq = remote.rig.journal.last_seq()
    remote.send(payload)
    reply = remote.reply()
    assert not reply.accepted and reply.code == code
    after = remote.rig.supervisor.view()
    assert (after.dose_mcg_min, after.running, after.weaning) == \
        (before.dose_mcg_min, before.running, before.weaning)
    assert not [e for e in remote.rig.journal.since(seq)
                if isinstance(e, DoseRequested | OperatorAction)]


def test_dose_over_the_hard_maximum_is_refused_and_journaled_by_the_supervisor(
        remote: Remote) -> None:
    seq = remote.rig.journal.last_seq()
    request_id, body = command("set_dose", dose_mcg_min=75.0)
    remote.send(body)
    reply = remote.reply(request_id)
    assert not reply.accepted and reply.code == "HARD_MAX"
    refused = [e for e in remote.rig.journal.since(seq) if isinstance(e, DoseRefused)]
    assert refused and refused[-1].code == "HARD_MAX"
    assert refused[-1].sender is not None and refused[-1].sender.startswith("remote:")


def test_refuses_a_replayed_request_id(remote: Remote) -> None:
    request_id, body = command("set_dose", dose_mcg_min=remote.dose())
    remote.send(body)
    assert remote.reply(request_id).accepted
    remote.send(body)
    replay = remote.reply(request_id)
    assert not replay.accepted and replay.code == "REPLAY"


def test_set_target_changes_the_target_through_the_supervisor(remote: Remote) -> None:
    request_id, body = command("set_target", target_map_mmhg=75)
    remote.send(body)
    assert remote.reply(request_id).accepted
    assert remote.rig.supervisor.view().target_map_mmhg == 75.0
    actions = [e for e in remote.rig.journal.tail(50) if isinstance(e, OperatorAction)
               and e.action == "set_target"]
    assert actions and actions[-1].by.startswith("remote:")


def test_set_target_outside_60_to_85_is_refused(remote: Remote) -> None:
    before = remote.rig.supervisor.view().target_map_mmhg
    _, body = command("set_target", target_map_mmhg=90)
    remote.send(body)
    reply = remote.reply()
    assert not reply.accepted and reply.code == "INVALID"
    assert remote.rig.supervisor.view().target_map_mmhg == before


def test_broker_acl_drops_commands_from_a_read_only_user(remote: Remote) -> None:
    viewer = Subscriber(remote.broker, [f"{CMD}/reply"], user="viewer")
    try:
        denied_id, denied = command("stop")
        remote.send(denied, by=viewer)
        # A permitted command sent afterwards is answered; the denied one never was.
        allowed_id, allowed = command("acknowledge", code="NO_SUCH")
        remote.send(allowed)
        replies = [remote.reply()]
        while replies[-1].request_id != allowed_id:
            replies.append(remote.reply())
    finally:
        viewer.close()
    assert denied_id not in {r.request_id for r in replies}
    assert replies[-1].code == "NO_SUCH_ALARM"
    assert remote.rig.supervisor.view().running


def test_stop_and_weaning_reach_the_supervisor(remote: Remote) -> None:
    wean_id, wean = command("start_weaning")
    remote.send(wean)
    assert remote.reply(wean_id).accepted
    assert remote.rig.supervisor.view().weaning
    stop_id, stop = command("stop", reason="bench test over")
    remote.send(stop)
    assert remote.reply(stop_id).accepted
    assert not remote.rig.supervisor.view().running
    stops = [e for e in remote.rig.journal.tail(30)
             if isinstance(e, OperatorAction) and e.action == "stop"]
    assert stops[-1].by == "remote:dr.who"


def test_commands_are_off_by_default(broker: Broker, tmp_path: Path) -> None:
    rig = TestRig(tmp_path / "journal.sqlite")
    operator = Subscriber(broker, [f"{CMD}/reply"], user="operator")
    try:
        with Telemetry(broker.settings(), RIG, rig.journal.path) as telemetry:
            telemetry.bind_loop(rig.loop)
            assert telemetry.connected.wait(5)
            _, body = command("stop")
            operator.publish(CMD, body)
            with pytest.raises(AssertionError):
                operator.next(lambda _m: True, timeout_s=0.5, pump=rig.step)
        assert rig.supervisor.view().running
    finally:
        operator.close()
        rig.close()


def test_refuses_a_stale_retained_command_found_on_connecting(tls_broker: Broker,
                                                              tmp_path: Path) -> None:
    rig = TestRig(tmp_path / "journal.sqlite")
    operator = Subscriber(tls_broker, [f"{CMD}/reply"], user="operator")
    _, body = command("stop")
    operator.publish(CMD, body, retain=True)
    try:
        with Telemetry(tls_broker.settings(remote_commands=True), RIG,
                       rig.journal.path) as telemetry:
            telemetry.bind_loop(rig.loop)
            msg = operator.next(lambda _m: True, pump=rig.step)
        reply = CommandReply.model_validate_json(msg.payload)
        assert not reply.accepted and reply.code == "RETAINED"
        assert rig.supervisor.view().running
    finally:
        operator.close()
        rig.close()
