"""Issue 19's prompts and alarms where people see them: the state payload, the report's series
and plot, the command line that answers the volume check."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from rich.console import Console
from safety_fixtures import feed, make_supervisor
from test_alarms import SCENARIOS, SETUPS, T0_S

from vasopilot.cli import cmd
from vasopilot.core.config import NOREPINEPHRINE_PERIPHERAL, PatientSettings
from vasopilot.core.events import (
    AlarmCode,
    AlarmRaised,
    Event,
    OperatorAction,
    RefusalCode,
    RunStarted,
)
from vasopilot.core.types import DoseRequest, Priority, Requester, VolumeAnswer
from vasopilot.report import RunSeries, plot_run
from vasopilot.telemetry.dashboard import RigBoard, render
from vasopilot.telemetry.payloads import COMMAND_ADAPTER, VolumeAssessed
from vasopilot.telemetry.state import alarms_payload, state_payload


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    return parser.parse_args(["cmd", "--broker", "mqtt://127.0.0.1", "--rig", "r", *argv])


def test_the_command_line_sends_a_valid_volume_answer() -> None:
    body = cmd.body(_parse("volume-assessed", "fluid given"), "req-1", "2026-12-01T12:00:00Z")
    command = COMMAND_ADAPTER.validate_python(body | {"issued_at": "2026-12-01T12:00:00Z"},
                                              strict=False)
    assert isinstance(command, VolumeAssessed) and command.answer is VolumeAnswer.FLUID_GIVEN


def test_the_command_line_refuses_an_answer_outside_the_three(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse("volume-assessed", "maybe")
    assert exit_info.value.code == 2
    assert "invalid VolumeAnswer value: 'maybe'" in capsys.readouterr().err


def test_set_target_can_confirm_a_floor_below_the_usual_sbp() -> None:
    body = cmd.body(_parse("set-target", "70", "--confirm-below-usual"), "req-2", "t")
    assert body["confirm_below_usual"] is True


def test_the_state_says_a_volume_check_is_open_and_which_line_runs() -> None:
    patient = PatientSettings(line="peripheral")
    supervisor, pump, _ = make_supervisor(drug=NOREPINEPHRINE_PERIPHERAL, patient=patient)
    feed(supervisor, 0.0, 20.0, pump=pump)
    assert supervisor.start(12.0, 20.0).applied
    t = feed(supervisor, 20.0, 150.0, pump=pump)
    assert supervisor.request(DoseRequest(14.0, Requester.CONTROLLER, "low"), t).applied
    t = feed(supervisor, t, t + 130.0, pump=pump)
    passing = DoseRequest(16.0, Requester.OPERATOR, "nurse", soft_limit_confirmed=True)
    assert supervisor.request(passing, t).code is RefusalCode.VOLUME_CHECK  # 15 is the max
    state = state_payload(supervisor.view(t), rig_id="r", wall="w", mode="manual",
                          weight_kg=None, last_beat=None, remote_commands=False, last_seq=1)
    assert state.volume_check_open and state.line == "peripheral"
    assert any(a.code == AlarmCode.VOLUME_CHECK for a in state.alarms)


def _run() -> list[Event]:
    return [
        RunStarted(t_s=0.0, rig_id="sim-rig", mode="closed-loop", target_map_mmhg=65.0,
                   lower_limit_mmhg=60.0, conc_mcg_ml=80.0),
        AlarmRaised(t_s=600.0, code=AlarmCode.VOLUME_CHECK, priority=Priority.MEDIUM,
                    message="check volume status before escalating further: x2"),
        OperatorAction(t_s=900.0, action="volume_assessed", by="nurse",
                       detail="fluid given", volume_answer=VolumeAnswer.FLUID_GIVEN),
        AlarmRaised(t_s=1800.0, code=AlarmCode.RHYTHM_IRREGULAR, priority=Priority.LOW,
                    message="rhythm irregular: check the ECG"),
    ]


def test_the_report_draws_the_new_alarms_and_the_volume_answers(tmp_path: Path) -> None:
    series = RunSeries.from_events(_run())
    assert {bar.code for bar in series.alarms} == {"VOLUME_CHECK", "RHYTHM_IRREGULAR"}
    assert series.volume_answers == [(0.25, VolumeAnswer.FLUID_GIVEN)]
    png = plot_run(_run(), tmp_path / "run.png", "guard rails")
    assert png.read_bytes().startswith(b"\x89PNG")


GUARD_RAILS = (AlarmCode.VOLUME_CHECK, AlarmCode.TACHYCARDIA, AlarmCode.BRADYCARDIA,
               AlarmCode.RHYTHM_IRREGULAR, AlarmCode.SBP_LOW, AlarmCode.CANNULA_CHECK,
               AlarmCode.PERIPHERAL_LINE_TIME, AlarmCode.PROLONGED_HIGH_DOSE)


@pytest.mark.parametrize("code", GUARD_RAILS)
def test_every_guard_rail_alarm_reaches_mqtt_the_monitor_and_the_report(
    code: AlarmCode, tmp_path: Path
) -> None:
    """Each raised through the supervisor by test_alarms' scenario for it, then read where
    people see it: the MQTT state and alarms payloads, the monitor's row, the report."""
    supervisor, pump, sink = make_supervisor(**SETUPS.get(code, {}))
    feed(supervisor, T0_S - 20, T0_S, pump=pump)
    assert supervisor.start(10.0, T0_S).applied
    SCENARIOS[code](supervisor, pump, sink)
    state = state_payload(supervisor.view(), rig_id="r", wall="w", mode="closed-loop",
                          weight_kg=None, last_beat=None, remote_commands=False, last_seq=1)
    assert code in {a.code for a in state.alarms}
    assert code in {a.code for a in alarms_payload(state).alarms}
    board = RigBoard("r")
    board.on_message("status", b"online")
    board.on_message("state", state.model_dump_json().encode())
    console = Console(record=True, width=200, color_system=None)
    console.print(render({"r": board}, "broker:8883", True, width=200))
    assert code in next(line for line in console.export_text().splitlines() if " r " in line)
    assert code in {bar.code for bar in RunSeries.from_events(sink.events).alarms}
    png = plot_run(sink.events, tmp_path / "run.png", code.value)
    assert png.read_bytes().startswith(b"\x89PNG")
