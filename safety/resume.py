"""Restart recovery (S13): what the journal says the supervisor was doing when it died.

Journal times come from the dead process's clock, whose origin need not match the new one, so
nothing here carries a time over: the resumed supervisor restarts its own intervals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vasopilot.core.events import AlarmCleared, AlarmRaised, DoseApplied, Event, OperatorAction
from vasopilot.core.types import Priority


@dataclass(frozen=True)
class OpenAlarm:
    code: str
    priority: Priority
    message: str


@dataclass(frozen=True)
class ResumeState:
    """The last dose applied (0 = stopped), why it stopped, the alarms still open, and the
    MAP target an operator set (``None``: the profile's)."""

    dose_mcg_min: float
    stop_reason: str | None
    weaning: bool
    open_alarms: tuple[OpenAlarm, ...]
    target_map_mmhg: float | None = None

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> ResumeState:
        """Replay journal events (oldest first) into the state to resume."""
        dose_mcg_min = 0.0
        stop_reason: str | None = None
        weaning = False
        open_alarms: dict[str, OpenAlarm] = {}
        target_map_mmhg: float | None = None
        for event in events:
            if isinstance(event, DoseApplied):
                dose_mcg_min = event.dose_mcg_min
                stop_reason = stop_reason_of(event.reason) if dose_mcg_min == 0 else None
            elif isinstance(event, OperatorAction) and event.action in ("wean", "stop_weaning"):
                weaning = event.action == "wean"
            elif isinstance(event, OperatorAction) and event.target_map_mmhg is not None:
                target_map_mmhg = event.target_map_mmhg
            elif isinstance(event, AlarmRaised):
                open_alarms[event.code] = OpenAlarm(event.code, event.priority, event.message)
            elif isinstance(event, AlarmCleared):
                open_alarms.pop(event.code, None)
        return cls(dose_mcg_min, stop_reason, weaning and dose_mcg_min > 0,
                   tuple(open_alarms.values()), target_map_mmhg)


STOPPED_PREFIX = "stopped: "


def stop_reason_of(reason: str) -> str | None:
    """The stop reason written into a ``DoseApplied`` reason by the supervisor, if any."""
    if reason.startswith(STOPPED_PREFIX):
        return reason[len(STOPPED_PREFIX):]
    return None
