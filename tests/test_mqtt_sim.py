"""``vasopilot sim --mqtt``: a simulated run's every journal event reaches the broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from mqtt_fixtures import USERS, Broker, Received, Subscriber

from vasopilot.cli import main
from vasopilot.journal import JournalReader
from vasopilot.telemetry import SeqFilter
from vasopilot.telemetry.payloads import EventPayload

pytestmark = pytest.mark.mqtt


def test_sim_publishes_every_journal_event_under_its_rig_id(broker: Broker,
                                                            tmp_path: Path) -> None:
    sub = Subscriber(broker, ["vasopilot/bench-7/events"])
    url = f"mqtt://rig:{USERS['rig']}@127.0.0.1:{broker.port}"
    try:
        code = main(["sim", "--hours", "0.1", "--no-plot", "--json", "--out", str(tmp_path),
                     "--mqtt", url, "--rig-id", "bench-7"])
        assert code == 0
        journal = next(tmp_path.glob("*.sqlite"))
        with JournalReader(journal) as reader:
            last = reader.last_seq()
        keep = SeqFilter()
        seqs: list[int] = []

        def until_last(msg: Received) -> bool:
            payload = EventPayload.model_validate_json(msg.payload)
            if keep.accept(payload):
                seqs.append(payload.seq)
            return keep.last_seq >= last

        sub.next(until_last)
    finally:
        sub.close()
    assert seqs == list(range(1, last + 1))
