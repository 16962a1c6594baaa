"""The terminal dashboard's model and rendering, kept apart from MQTT so it is testable."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vasopilot.core.events import AlarmCode
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


# Below this many columns the table drops the per-kg dose and the syringe, and shortens the
# trend, so an 80-column terminal shows every rig on one unbroken line.
WIDE_COLUMNS = 120


def render(boards: dict[str, RigBoard], broker: str, connected: bool, *,
           width: int = WIDE_COLUMNS) -> RenderableType:
    """The dashboard for a terminal ``width`` columns wide."""
    wide = width >= WIDE_COLUMNS
    columns = [("rig", "left"), ("link", "left"), ("mode", "left"),
               ("dose mcg/min" if wide else "mcg/min", "right")]
    if wide:
        columns.append(("mcg/kg/min", "right"))
    columns += [("rate mL/h" if wide else "mL/h", "right"),
                ("MAP mmHg" if wide else "MAP", "right"),
                ("MAP trend" if wide else "trend", "left")]
    if wide:
        columns.append(("syringe", "right"))
    table = Table(title=f"vasopilot monitor — {broker}", expand=True,
                  padding=(0, 1) if wide else (0, 1, 0, 0))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("alarms", justify="left", overflow="fold")
    for rig_id in sorted(boards):
        board = boards[rig_id]
        s = board.state
        link = Text(board.status, style="green" if board.status == ONLINE else "bold red")
        if s is None:
            table.add_row(rig_id, link, *["-"] * (len(columns) - 2), _alarm_text(board.alarms))
            continue
        vitals = s.vitals
        map_text = "-" if vitals is None or vitals.map_mmhg is None else \
            f"{vitals.map_mmhg:.0f}" + ("" if s.map_trusted else " ?")
        mode = s.mode + (" wean" if s.weaning else "") + ("" if s.running else " STOP")
        cells: list[str | Text] = [rig_id, link, mode, f"{s.dose_mcg_min:.2f}"]
        if wide:
            cells.append("-" if s.dose_mcg_kg_min is None else f"{s.dose_mcg_kg_min:.3f}")
        cells += [f"{s.rate_ml_h:.2f}", map_text,
                  sparkline(list(board.map_history), width=30 if wide else 10)]
        if wide:
            cells.append("-" if s.syringe_remaining_ml is None else
                         f"{s.syringe_remaining_ml:.1f} mL" + (
                             "" if s.time_left_min is None else f" / {s.time_left_min:.0f} min"))
        table.add_row(*cells, _alarm_text(board.alarms))
    footer = Text("broker connected" if connected else "broker unreachable: reconnecting…",
                  style="green" if connected else "bold red")
    return Group(table, *_messages(boards), footer)


def _messages(boards: dict[str, RigBoard]) -> list[Text]:
    """What each unacknowledged alarm says (the table has room for codes only), with how to
    answer a volume check."""
    lines = []
    for rig_id in sorted(boards):
        for alarm in boards[rig_id].alarms:
            if alarm.acknowledged:
                continue
            line = Text(f"{rig_id} ")
            line.append(alarm.code, style=PRIORITY_STYLE[alarm.priority])
            line.append(f": {alarm.message}")
            if alarm.code == AlarmCode.VOLUME_CHECK:
                line.append(f" (vasopilot cmd … --rig {rig_id} volume-assessed ANSWER)")
            lines.append(line)
    return lines
