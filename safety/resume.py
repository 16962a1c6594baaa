"""Restart recovery (S13): what the journal says the supervisor was doing when it died.

Journal times come from the dead process's clock, whose origin need not match the new one, so
nothing here carries a time over: the resumed supervisor restarts its own intervals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vasopilot.core.events import (
    AlarmCleared,
    AlarmCode,
    AlarmRaised,
    DoseApplied,
    DoseChange,
    Event,
    OperatorAction,
    StopReason,
)
from vasopilot.core.types import Priority


@dataclass(frozen=True)
class OpenAlarm:
    code: AlarmCode
    priority: Priority
    message: str


@dataclass(frozen=True)
class ResumeState:
    """The last dose journaled (0 = stopped), why it stopped, and the alarms still open.

    ``previous_dose_mcg_min`` is the dose before the last one (the pump may still run it if the
    process died between journaling a change and sending it); ``target_map_mmhg`` the last MAP
    target an operator set (``None``: the profile's).
    """

    dose_mcg_min: float
    stop_reason: StopReason | None
    weaning: bool
    open_alarms: tuple[OpenAlarm, ...]
    target_map_mmhg: float | None = None
    previous_dose_mcg_min: float | None = None

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> ResumeState:
        """Replay journal events (oldest first) into the state to resume."""
        dose_mcg_min = 0.0
        previous: float | None = None
        stop_reason: StopReason | None = None
        weaning = False
        target: float | None = None
        open_alarms: dict[AlarmCode, OpenAlarm] = {}
        for event in events:
            if isinstance(event, DoseApplied):
                # A change taken back (never sent) leaves no dose the pump might still run.
                previous = event.dose_mcg_min if event.change is DoseChange.NOT_APPLIED \
                    else event.previous_dose_mcg_min
                dose_mcg_min = event.dose_mcg_min
                stop_reason = event.stop_reason if dose_mcg_min == 0 else None
            elif isinstance(event, OperatorAction):
                if event.action in ("wean", "stop_weaning"):
                    weaning = event.action == "wean"
                if event.target_map_mmhg is not None:
                    target = event.target_map_mmhg
            elif isinstance(event, AlarmRaised):
                open_alarms[event.code] = OpenAlarm(event.code, event.priority, event.message)
            elif isinstance(event, AlarmCleared):
                open_alarms.pop(event.code, None)
        return cls(dose_mcg_min, stop_reason, weaning and dose_mcg_min > 0,
                   tuple(open_alarms.values()), target, previous)
