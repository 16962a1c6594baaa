"""The tools people already run: Home Assistant discovery, the Telegraf config, the Grafana
dashboard. Each may name only fields that real payloads have."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_rig import TestRig

from vasopilot.telemetry.homeassistant import SENSORS, discovery
from vasopilot.telemetry.payloads import EventPayload, StatePayload, topic
from vasopilot.telemetry.state import state_payload

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RIG = "rig-01"


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real state payload (with vitals and an alarm list) and a real event payload."""
    rig = TestRig(tmp_path_factory.mktemp("tools") / "journal.sqlite")
    for _ in range(10):
        rig.step()
    state = state_payload(rig.supervisor.view(rig.clock.now_s()), rig_id=RIG,
                          wall="2026-12-01T12:00:00.000+00:00", mode="manual", weight_kg=80.0,
                          last_beat=rig.beats.read_beats()[0], remote_commands=False,
                          last_seq=3)
    event = rig.journal.tail(1)[0]
    assert event.seq is not None
    yield {"state": json.loads(StatePayload.model_validate(state).model_dump_json()),
           "events": json.loads(EventPayload(rig_id=RIG, seq=event.seq,
                                             event=event).model_dump_json())}
    rig.close()


def resolve(data: Any, path: str) -> Any:
    """A GJSON path of the subset Telegraf's json_v2 configs here use: dots and ``#``."""
    for part in path.split("."):
        if part == "#":
            assert isinstance(data, list), path
            return len(data)
        assert isinstance(data, dict) and part in data, f"{path}: no {part!r}"
        data = data[part]
    return data


def telegraf_inputs() -> list[dict[str, Any]]:
    with (DEPLOY / "telegraf" / "vasopilot.conf").open("rb") as fh:
        inputs: list[dict[str, Any]] = tomllib.load(fh)["inputs"]["mqtt_consumer"]
    return inputs


def test_telegraf_consumes_our_topics_at_qos_1_with_a_persistent_session(
        payloads: dict[str, Any]) -> None:
    leaves = set()
    for consumer in telegraf_inputs():
        assert consumer["qos"] == 1 and consumer["persistent_session"] is True
        assert re.fullmatch(r"[a-z0-9-]{1,32}", consumer["client_id"])
        assert consumer["data_format"] == "json_v2" and "${" in consumer["password"]
        (subscribed,) = consumer["topics"]
        leaf = subscribed.rsplit("/", 1)[1]
        assert subscribed == topic("+", leaf)
        (parsing,) = consumer["topic_parsing"]
        assert parsing["topic"] == subscribed
        assert parsing["tags"].split("/").index("rig") == topic(RIG, leaf).split("/").index(RIG)
        leaves.add(leaf)
    assert leaves == {"state", "events"}


def telegraf_fields() -> dict[str, set[str]]:
    """Measurement -> the field names Telegraf writes."""
    found: dict[str, set[str]] = {}
    for consumer in telegraf_inputs():
        for block in consumer["json_v2"]:
            names = found.setdefault(block["measurement_name"], set())
            for f in block["field"]:
                names.add(f.get("rename", f["path"].rsplit(".", 1)[-1]))
    return found


def test_telegraf_names_only_fields_the_payloads_have(payloads: dict[str, Any]) -> None:
    for consumer in telegraf_inputs():
        leaf = consumer["topics"][0].rsplit("/", 1)[1]
        payload = payloads[leaf]
        for block in consumer["json_v2"]:
            stamp = resolve(payload, block["timestamp_path"])
            assert isinstance(stamp, str) and stamp[:4].isdigit()
            for entry in [*block["field"], *block.get("tag", [])]:
                value = resolve(payload, entry["path"])
                kind = entry.get("type")
                if kind == "float":
                    assert isinstance(value, int | float) or value is None, entry
                elif kind == "bool":
                    assert isinstance(value, bool), entry
                elif kind == "int":
                    assert isinstance(value, int), entry


def test_the_grafana_dashboard_queries_only_fields_telegraf_writes() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "vasopilot-dashboard.json").read_text())
    fields = telegraf_fields()
    queried = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = fields[target["measurement"]]
            for select in target["select"]:
                for part in select:
                    if part["type"] == "field":
                        assert part["params"][0] in names, (panel["title"], part)
                        queried += 1
            for group in target["groupBy"]:
                if group["type"] == "tag":
                    assert group["params"][0] in {"rig", "kind", "mode"}
    assert queried >= 6
    assert {"dose_mcg_min", "rate_ml_h", "map_mmhg"} <= fields["vasopilot_state"]


def test_home_assistant_discovery_is_read_only_sensors_over_the_state_topic(
        payloads: dict[str, Any]) -> None:
    config = json.loads(discovery(RIG, state_interval_s=1.0))
    (availability,) = config["availability"]
    assert availability == {"topic": topic(RIG, "status"), "payload_available": "online",
                            "payload_not_available": "offline"}
    assert set(config["cmps"]) == {key for key, *_ in SENSORS}
    units = {key: c.get("unit_of_measurement") for key, c in config["cmps"].items()}
    assert units == {"dose": "mcg/min", "rate": "mL/h", "map": "mmHg", "alarms": None}
    for component in config["cmps"].values():
        assert component["p"] == "sensor" and component["state_topic"] == topic(RIG, "state")
        assert component["expire_after"] >= 3
        assert not [k for k in component if "command" in k]
        for path in re.findall(r"value_json\.([a-z_.]+)", component["value_template"]):
            resolve(payloads["state"], path)
