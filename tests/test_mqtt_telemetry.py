"""Telemetry against a real Mosquitto: retained topics, last will, reconnect and replay, TLS."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_fixtures import Broker, Received, Subscriber, wait_until
from mqtt_rig import TestRig

from vasopilot.core.events import DoseApplied
from vasopilot.telemetry import SeqFilter, Telemetry
from vasopilot.telemetry.payloads import EventPayload, StatePayload

pytestmark = pytest.mark.mqtt


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[TestRig]:
    r = TestRig(tmp_path / "journal.sqlite")
    yield r
    r.close()


def is_topic(leaf: str):  # type: ignore[no-untyped-def]
    return lambda m: m.topic.endswith("/" + leaf)


def test_publishes_retained_online_and_state_for_late_subscribers(broker: Broker,
                                                                  rig: TestRig) -> None:
    with Telemetry(broker.settings(), "rig-01", rig.journal.path, weight_kg=70.0,
                   after_seq=0) as telemetry:
        telemetry.bind_loop(rig.loop)
        assert telemetry.connected.wait(5)
        first = Subscriber(broker, ["vasopilot/v1/rig-01/state"])
        first.next(is_topic("state"), pump=rig.step)
        first.close()
        late = Subscriber(broker, ["vasopilot/v1/rig-01/status", "vasopilot/v1/rig-01/state",
                                   "vasopilot/v1/rig-01/alarms"])
        status = late.next(is_topic("status"))
        state_msg = late.next(is_topic("state"))
        alarms = late.next(is_topic("alarms"))
        late.close()
    assert status.retain and status.payload == b"online"
    assert state_msg.retain and alarms.retain
    state = StatePayload.model_validate_json(state_msg.payload)
    assert state.rig_id == "rig-01" and state.running and state.mode == "manual"
    assert state.dose_mcg_min == pytest.approx(10.0)
    assert state.dose_mcg_kg_min == pytest.approx(10.0 / 70.0)
    assert state.rate_ml_h == pytest.approx(7.5, rel=1e-3)  # read back, resolution-rounded
    assert state.schema_version == 1


def test_clean_exit_publishes_offline(broker: Broker, rig: TestRig) -> None:
    watcher = Subscriber(broker, ["vasopilot/v1/rig-01/status"])
    with Telemetry(broker.settings(), "rig-01", rig.journal.path) as telemetry:
        assert telemetry.connected.wait(5)
        watcher.next(lambda m: m.payload == b"online")
    watcher.next(lambda m: m.payload == b"offline")
    watcher.close()
    late = Subscriber(broker, ["vasopilot/v1/rig-01/status"])
    kept = late.next(is_topic("status"))
    late.close()
    assert kept.retain and kept.payload == b"offline"


def test_killed_process_leaves_offline_as_last_will(broker: Broker, rig: TestRig) -> None:
    script = textwrap.dedent(f"""
        import sys
        from vasopilot.core.config import MqttSettings
        from vasopilot.telemetry import Telemetry
        settings = MqttSettings.model_validate_json({broker.settings().model_dump_json()!r})
        t = Telemetry(settings, "rig-01", {str(rig.journal.path)!r}).start()
        t.connected.wait(5)
        print("connected", flush=True)
        sys.stdin.read()
    """)
    watcher = Subscriber(broker, ["vasopilot/v1/rig-01/status"])
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"connected\n"
        watcher.next(lambda m: m.payload == b"online")
        proc.kill()
        assert watcher.next(lambda m: m.payload == b"offline", timeout_s=5).payload == b"offline"
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        watcher.close()


def test_replays_every_event_once_in_order_after_broker_restart(broker: Broker,
                                                                rig: TestRig) -> None:
    sub = Subscriber(broker, ["vasopilot/v1/rig-01/events"], client_id="watch-r", persistent=True)
    telemetry = Telemetry(broker.settings(), "rig-01", rig.journal.path, after_seq=0,
                          backoff_s=(0.05, 0.2)).start()
    try:
        telemetry.bind_loop(rig.loop)
        assert telemetry.connected.wait(5)
        for _ in range(40):
            rig.step()
        broker.stop()
        # While the broker is down the rig goes on: dose changes, alarms and summaries pile up.
        rig.supervisor.operator_stop(rig.clock.now_s(), reason="test")
        for _ in range(60):
            rig.step()
        rig.supervisor.start(11.0, rig.clock.now_s(), soft_limit_confirmed=True)
        rig.journal.flush()
        last = rig.journal.last_seq()
        broker.start()
        keep = SeqFilter()
        kept: list[EventPayload] = []

        def keep_until_last(msg: Received) -> bool:
            payload = EventPayload.model_validate_json(msg.payload)
            if keep.accept(payload):
                kept.append(payload)
            return keep.last_seq >= last

        sub.next(keep_until_last, timeout_s=10)
    finally:
        telemetry.close()
        sub.close()
    assert [p.seq for p in kept] == list(range(1, last + 1))
    assert telemetry.connections >= 2
    applied = [p.event for p in kept if isinstance(p.event, DoseApplied)]
    assert applied[-1].dose_mcg_min == pytest.approx(11.0)


def test_connects_over_tls_with_a_test_ca(tls_broker: Broker, rig: TestRig) -> None:
    with Telemetry(tls_broker.settings(), "rig-01", rig.journal.path) as telemetry:
        telemetry.bind_loop(rig.loop)
        assert telemetry.connected.wait(5), telemetry.last_error
        sub = Subscriber(tls_broker, ["vasopilot/v1/rig-01/state"])
        msg = sub.next(is_topic("state"), pump=rig.step)
        sub.close()
    assert StatePayload.model_validate_json(msg.payload).rig_id == "rig-01"


def test_refuses_to_connect_with_bad_credentials(broker: Broker, rig: TestRig) -> None:
    watcher = Subscriber(broker, ["vasopilot/v1/rig-01/#"])
    telemetry = Telemetry(broker.settings(password="wrong"), "rig-01", rig.journal.path,
                          backoff_s=(0.05, 0.1)).start()
    try:
        assert wait_until(lambda: telemetry.last_error is not None)
        assert not telemetry.connected.is_set()
        assert telemetry.last_error is not None and "authori" in telemetry.last_error.lower()
        assert watcher.messages.empty()
    finally:
        telemetry.close()
        watcher.close()
