"""``vasopilot sim`` with MQTT, and ``vasopilot cmd`` against a running ``sim --realtime``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mqtt_fixtures import RIG, USERS, Broker, Received, Subscriber, free_port

from vasopilot.cli import main
from vasopilot.core.events import RemoteCommand, RunStarted
from vasopilot.journal import JournalReader
from vasopilot.telemetry import SeqFilter
from vasopilot.telemetry.payloads import EventPayload, StatePayload
from vasopilot.telemetry.url import PASSWORD_ENV

pytestmark = pytest.mark.mqtt


def test_sim_publishes_every_event_under_its_rig_id_with_wall_clock_labels(
        broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, USERS[RIG])  # never in the URL, so never in `ps`
    sub = Subscriber(broker, [f"vasopilot/v1/{RIG}/events"])
    started = datetime.now(UTC)
    try:
        code = main(["sim", "--hours", "0.1", "--no-plot", "--json", "--out", str(tmp_path),
                     "--mqtt", f"mqtt://{RIG}@127.0.0.1:{broker.port}", "--rig-id", RIG])
        assert code == 0
        journal = next(tmp_path.glob("*.sqlite"))
        with JournalReader(journal) as reader:
            last = reader.last_seq()
        keep = SeqFilter()
        kept: list[EventPayload] = []

        def until_last(msg: Received) -> bool:
            payload = EventPayload.model_validate_json(msg.payload)
            if keep.accept(payload):
                kept.append(payload)
            return keep.last_seq >= last

        sub.next(until_last)
    finally:
        sub.close()
    assert [p.seq for p in kept] == list(range(1, last + 1))
    runs = [p.event for p in kept if isinstance(p.event, RunStarted)]
    assert runs and all(r.rig_id == RIG for r in runs)
    assert all(p.rig_id == RIG for p in kept)
    first = kept[0].event.wall
    assert first is not None
    assert abs(datetime.fromisoformat(first) - started) < timedelta(minutes=1)


def test_sim_warns_when_its_broker_cannot_be_reached(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--hours", "0.02", "--no-plot", "--json", "--out", str(tmp_path),
                 "--mqtt", f"mqtt://127.0.0.1:{free_port()}"])
    assert code == 0
    err = capsys.readouterr().err
    assert "cannot reach the MQTT broker" in err and "events wait in the journal" in err


def test_a_password_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--hours", "0.01", "--no-plot", "--mqtt", "mqtt://u:secret@127.0.0.1"])
    err = capsys.readouterr().err
    assert code == 2 and "password" in err and "secret" not in err


def _profile(folder: Path, broker: Broker) -> Path:
    secret = folder / "rig.pass"
    secret.write_text(USERS[RIG] + "\n")
    secret.chmod(0o600)
    profile = folder / "rig.toml"
    profile.write_text(f"""\
rig_id = "{RIG}"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
tls = true
ca_file = "{broker.ca}"
username = "{RIG}"
password_file = "rig.pass"
remote_commands = true
state_interval_s = 0.5
""")
    return profile


def _cmd(broker: Broker, folder: Path, user: str, *verb: str,
         timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
    secret = folder / f"{user}.pass"
    secret.write_text(USERS[user])
    return subprocess.run(
        [sys.executable, "-m", "vasopilot", "cmd", "--broker",
         f"mqtts://{user}@127.0.0.1:{broker.port}?ca={broker.ca}", "--rig", RIG,
         "--password-file", str(secret), "--timeout", str(timeout_s), *verb],
        capture_output=True, text=True, timeout=60, check=False)


def test_cmd_client_against_a_running_realtime_sim(tls_broker: Broker, tmp_path: Path) -> None:
    profile = _profile(tmp_path, tls_broker)
    state = Subscriber(tls_broker, [f"vasopilot/v1/{RIG}/state"])
    sim = subprocess.Popen(
        [sys.executable, "-m", "vasopilot", "sim", "--rig", str(profile), "--realtime",
         "--hours", "0.01", "--no-plot", "--json", "--out", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"PYTHONPATH": "."})
    try:
        state.next(lambda _m: True, timeout_s=20)  # the rig is up and publishing
        accepted = _cmd(tls_broker, tmp_path, "alice", "set-target", "72")
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.startswith("accepted set-target") and "72" in accepted.stdout
        answered = _cmd(tls_broker, tmp_path, "alice", "volume-assessed", "not indicated")
        assert answered.returncode == 0, answered.stderr
        assert "volume check answered: not indicated" in answered.stdout
        refused = _cmd(tls_broker, tmp_path, "alice", "acknowledge", "NO_SUCH")
        assert refused.returncode == 1 and "[NO_SUCH_ALARM]" in refused.stdout
        # bob commands only rig-02: the broker drops his command and says nothing.
        silent = _cmd(tls_broker, tmp_path, "bob", "stop", timeout_s=1.0)
        assert silent.returncode == 2
        assert silent.stderr.strip() == ("vasopilot cmd: no reply in 1 s: not authorised, or "
                                         "the rig is offline")
        seen = state.next(lambda m: StatePayload.model_validate_json(m.payload)
                          .target_map_mmhg == 72.0)
        assert StatePayload.model_validate_json(seen.payload).running
    finally:
        state.close()
        sim.terminate()
        sim.wait(30)
        if sim.stderr is not None:
            sim.stderr.close()
    journal = next((tmp_path / "out").glob("*.sqlite"))
    with JournalReader(journal) as reader:
        acted = [e for e in reader.iter_events() if isinstance(e, RemoteCommand)]
    assert [(e.sender, e.command) for e in acted] == [("alice", "set_target"),
                                                      ("alice", "volume_assessed"),
                                                      ("alice", "acknowledge")]
