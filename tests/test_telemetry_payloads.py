"""Payload schemas, the state builder and the --mqtt URL override (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mqtt_rig import TestRig

from vasopilot.cli import main
from vasopilot.core.config import MqttSettings
from vasopilot.core.errors import ConfigError
from vasopilot.telemetry.payloads import StatePayload
from vasopilot.telemetry.state import state_payload
from vasopilot.telemetry.url import settings_from_url


def test_schema_command_prints_every_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == {"state", "alarms", "events", "beats", "cmd", "reply"}
    assert "dose_mcg_kg_min" in found["state"]["properties"]
    assert "schema_version" in found["events"]["properties"]


def test_state_names_dose_rate_volume_and_vitals(tmp_path: Path) -> None:
    rig = TestRig(tmp_path / "journal.sqlite")
    try:
        for _ in range(10):
            rig.step()
        beat = rig.beats.read_beats()[0]
        state = state_payload(rig.supervisor.view(rig.clock.now_s()), rig_id="r", wall="w",
                              mode="manual", weight_kg=80.0, last_beat=beat,
                              remote_commands=False, last_seq=3)
    finally:
        rig.close()
    assert state.dose_mcg_kg_min == pytest.approx(state.dose_mcg_min / 80.0)
    assert state.volume_infused_ml is not None and state.volume_infused_ml > 0
    assert state.vitals is not None and state.vitals.map_mmhg == 70.0
    assert StatePayload.model_validate_json(state.model_dump_json()) == state
    assert not state.changed_from(state.model_copy(update={"t_s": 99.0}))
    assert state.changed_from(state.model_copy(update={"dose_mcg_min": 1.0}))


def test_mqtts_url_sets_broker_credentials_and_tls() -> None:
    s = settings_from_url("mqtts://op%40lab@broker.example:8884?ca=ca.pem", rig_id="rig-9")
    assert (s.host, s.port, s.username, s.password, s.tls, s.ca_file, s.rig_id) == \
        ("broker.example", 8884, "op@lab", None, True, "ca.pem", "rig-9")


def test_plain_mqtt_to_another_host_needs_insecure() -> None:
    with pytest.raises(ConfigError, match="insecure"):
        settings_from_url("mqtt://broker.example")
    assert settings_from_url("mqtt://broker.example?insecure=true").insecure
    assert settings_from_url("mqtt://127.0.0.1").port == 1883


def test_plain_url_over_a_tls_profile_is_refused() -> None:
    base = MqttSettings(tls=True, remote_commands=True)
    with pytest.raises(ConfigError, match="never weakens"):
        settings_from_url("mqtt://localhost", base)
