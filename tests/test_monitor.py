"""The monitor's rendering, fed recorded payloads (no broker, no terminal)."""

from __future__ import annotations

from rich.console import Console

from vasopilot.core.types import Priority
from vasopilot.telemetry.dashboard import PRIORITY_STYLE, RigBoard, render, sparkline
from vasopilot.telemetry.payloads import AlarmState, StatePayload, Vitals

RECORDED_STATE = StatePayload(
    rig_id="rig-01", t_s=120.0, wall="2026-11-24T10:00:00.000+00:00", mode="protocol",
    running=True, weaning=False, stop_reason=None, dose_mcg_min=10.0, dose_mcg_kg_min=0.143,
    rate_ml_h=7.5, volume_infused_ml=0.25, syringe_remaining_ml=49.75, time_left_min=398.0,
    map_trusted=True, vitals=Vitals(t_s=119.0, map_mmhg=62.0, quality="good"),
    target_map_mmhg=65.0, lower_limit_mmhg=60.0,
    alarms=(AlarmState(code="MAP_LOW", priority=Priority.HIGH, message="MAP below 60"),),
    remote_commands=False, last_seq=17,
)


def shown(boards: dict[str, RigBoard], connected: bool = True, width: int = 200) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(boards, "broker:8883", connected, width=width))
    return console.export_text()


def board_of(rig_id: str, *maps_mmhg: float) -> RigBoard:
    board = RigBoard(rig_id)
    board.on_message("status", b"online")
    for map_mmhg in maps_mmhg:
        vitals = Vitals(t_s=0.0, map_mmhg=map_mmhg, quality="good")
        board.on_message("state", RECORDED_STATE.model_copy(
            update={"rig_id": rig_id, "vitals": vitals}).model_dump_json().encode())
    return board


def test_sparkline_scales_to_the_range() -> None:
    assert sparkline([60, 65, 70]) == "▁▅█"
    assert sparkline([64, 64]) == "▁▁"
    assert sparkline([]) == ""
    assert len(sparkline(list(range(100)), width=30)) == 30


def test_shows_dose_rate_map_trend_and_alarm_of_a_rig() -> None:
    text = shown({"rig-01": board_of("rig-01", 58.0, 60.0, 62.0)})
    row = next(line for line in text.splitlines() if "rig-01" in line)
    for expected in ("online", "protocol", "10.00", "0.143", "7.50", "62", "▁▅█",
                     "49.8 mL / 398 min", "MAP_LOW"):
        assert expected in row, expected
    assert "broker connected" in text


def test_a_rig_gone_offline_and_a_lost_broker_are_shown() -> None:
    board = RigBoard("rig-02")
    board.on_message("status", b"offline")
    text = shown({"rig-02": board}, connected=False)
    assert "offline" in text and "broker unreachable" in text


def test_high_priority_alarms_are_styled_loudest() -> None:
    assert "red" in PRIORITY_STYLE[Priority.HIGH]
    assert set(PRIORITY_STYLE) == set(Priority)


def test_readable_at_80_columns_one_unbroken_line_per_rig() -> None:
    boards = {rig: board_of(rig, 58.0, 60.0, 62.0) for rig in ("rig-01", "bench-long-name-07")}
    text = shown(boards, width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for rig in boards:
        row = next(line for line in lines if rig in line)
        for expected in ("online", "protocol", "10.00", "7.50", "62", "▁▅█", "MAP_LOW"):
            assert expected in row, (rig, expected)
    header = next(line for line in lines if "mcg/min" in line)
    for label in ("rig", "link", "mode", "mcg/min", "mL/h", "MAP", "trend", "alarms"):
        assert label in header, label


def test_the_volume_check_is_shown_with_its_message_and_how_to_answer() -> None:
    prompt = AlarmState(code="VOLUME_CHECK", priority=Priority.MEDIUM,
                        message="check volume status before escalating further: the dose "
                                "went from 10.0 to 20.0 mcg/min (x2.0) within 30 min")
    board = board_of("rig-01", 62.0)
    board.on_message("state", RECORDED_STATE.model_copy(update={
        "alarms": (prompt,), "volume_check_open": True}).model_dump_json().encode())
    text = shown({"rig-01": board})
    row = next(line for line in text.splitlines() if "rig-01" in line)
    assert "VOLUME_CHECK" in row
    assert "rig-01 VOLUME_CHECK: check volume status before escalating further" in text
    assert "volume-assessed ANSWER" in text


def test_an_acknowledged_alarm_keeps_its_code_but_not_its_message() -> None:
    advisory = AlarmState(code="RHYTHM_IRREGULAR", priority=Priority.LOW,
                          message="rhythm irregular: check the ECG", acknowledged=True)
    board = board_of("rig-01", 62.0)
    board.on_message("state", RECORDED_STATE.model_copy(
        update={"alarms": (advisory,)}).model_dump_json().encode())
    text = shown({"rig-01": board})
    assert "RHYTHM_IRREGULAR (ack)" in text
    assert "check the ECG" not in text
