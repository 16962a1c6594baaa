"""The terminal dashboard's model and rendering, kept apart from MQTT so it is testable."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vasopilot.core.types import Priority
from vasopilot.telemetry.payloads import ONLINE, AlarmsPayload, AlarmState, StatePayload

SPARK = "▁▂▃▄▅▆▇█"
PRIORITY_STYLE = {Priority.HIGH: "bold white on red", Priority.MEDIUM: "bold yellow",
                  Priority.LOW: "cyan"}


def sparkline(values: list[float], width: int = 30) -> str:
    """``values`` (the last ``width``) as a row of block characters, scaled to their range."""
    tail = values[-width:]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    span = high - low or 1.0
    return "".join(SPARK[round((v - low) / span * (len(SPARK) - 1))] for v in tail)


@dataclass
class RigBoard:
    """What the monitor knows of one rig; ``map_history`` holds MAP in mmHg, one per state."""

    rig_id: str
    status: str = "unknown"
    state: StatePayload | None = None
    alarms: tuple[AlarmState, ...] = ()
    map_history: deque[float] = field(default_factory=lambda: deque(maxlen=120))

    def on_message(self, leaf: str, payload: bytes) -> None:
        if leaf == "status":
            self.status = payload.decode(errors="replace") or "unknown"
        elif leaf == "state":
            self.state = StatePayload.model_validate_json(payload)
            self.alarms = self.state.alarms
            vitals = self.state.vitals
            if vitals is not None and vitals.map_mmhg is not None:
                self.map_history.append(vitals.map_mmhg)
        elif leaf == "alarms":
            self.alarms = AlarmsPayload.model_validate_json(payload).alarms


def _alarm_text(alarms: tuple[AlarmState, ...]) -> Text:
    text = Text()
    for alarm in sorted(alarms, key=lambda a: list(Priority).index(a.priority), reverse=True):
        if text:
            text.append(" ")
        label = alarm.code + (" (ack)" if alarm.acknowledged else "")
        text.append(label, style=PRIORITY_STYLE[alarm.priority])
    return text or Text("none", style="green")


def render(boards: dict[str, RigBoard], broker: str, connected: bool) -> RenderableType:
    table = Table(title=f"vasopilot monitor — {broker}", expand=True)
    for name, justify in (("rig", "left"), ("link", "left"), ("mode", "left"),
                          ("dose mcg/min", "right"), ("mcg/kg/min", "right"),
                          ("rate mL/h", "right"), ("MAP mmHg", "right"), ("MAP trend", "left"),
                          ("syringe", "right"), ("alarms", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rig_id in sorted(boards):
        board = boards[rig_id]
        s = board.state
        link = Text(board.status, style="green" if board.status == ONLINE else "bold red")
        if s is None:
            table.add_row(rig_id, link, *["-"] * 7, _alarm_text(board.alarms))
            continue
        vitals = s.vitals
        map_text = "-" if vitals is None or vitals.map_mmhg is None else \
            f"{vitals.map_mmhg:.0f}" + ("" if s.map_trusted else " ?")
        syringe = "-" if s.syringe_remaining_ml is None else \
            f"{s.syringe_remaining_ml:.1f} mL" + (
                "" if s.time_left_min is None else f" / {s.time_left_min:.0f} min")
        mode = s.mode + (" wean" if s.weaning else "") + ("" if s.running else " STOPPED")
        table.add_row(
            rig_id, link, mode, f"{s.dose_mcg_min:.2f}",
            "-" if s.dose_mcg_kg_min is None else f"{s.dose_mcg_kg_min:.3f}",
            f"{s.rate_ml_h:.2f}", map_text, sparkline(list(board.map_history)), syringe,
            _alarm_text(board.alarms))
    footer = Text("broker connected" if connected else "broker unreachable: reconnecting…",
                  style="green" if connected else "bold red")
    return Group(table, footer)
