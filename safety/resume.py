"""Restart recovery (S13): what the journal says the supervisor was doing when it died.

Journal times come from the dead process's clock, whose origin need not match the new one, so
no time is carried over as such: the resumed supervisor restarts its own intervals. What the
guard rails need from the past (the dose history behind the line's time, the time at high
doses and the volume check's escalation, and when the volume check was last answered) comes
back as *ages*: seconds before the journal's last event, on one axis stitched across every
restart of the run (each ``RunStarted(restarted=True)`` continues where the previous process's
last event left off; the seconds a restart takes are not counted, as no clock saw them).
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
    RunStarted,
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
    target an operator set (``None``: the profile's). ``dose_history`` is every dose of the run
    as (age in s, mcg/min), oldest first, each in force from that age until the next (0:
    stopped); ``volume_answer_age_s`` the age of the last answer to a volume check.
    """

    dose_mcg_min: float
    stop_reason: StopReason | None
    weaning: bool
    open_alarms: tuple[OpenAlarm, ...]
    target_map_mmhg: float | None = None
    previous_dose_mcg_min: float | None = None
    dose_history: tuple[tuple[float, float], ...] = ()
    volume_answer_age_s: float | None = None

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> ResumeState:
        """Replay journal events (oldest first) into the state to resume."""
        dose_mcg_min = 0.0
        previous: float | None = None
        stop_reason: StopReason | None = None
        weaning = False
        target: float | None = None
        open_alarms: dict[AlarmCode, OpenAlarm] = {}
        axis = _StitchedAxis()
        doses: list[tuple[float, float]] = []
        answered_t: float | None = None
        for event in events:
            t = axis.place(event)
            if isinstance(event, DoseApplied):
                doses.append((t, event.dose_mcg_min))
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
                if event.volume_answer is not None:
                    answered_t = t
            elif isinstance(event, AlarmRaised):
                open_alarms[event.code] = OpenAlarm(event.code, event.priority, event.message)
            elif isinstance(event, AlarmCleared):
                open_alarms.pop(event.code, None)
        end = axis.end
        return cls(dose_mcg_min, stop_reason, weaning and dose_mcg_min > 0,
                   tuple(open_alarms.values()), target, previous,
                   tuple((end - t, dose) for t, dose in doses),
                   None if answered_t is None else end - answered_t)


class _StitchedAxis:
    """One time axis over the processes of a run: a restart's events continue from the last
    event before it (a new clock may start anywhere)."""

    def __init__(self) -> None:
        self._offset_s = 0.0
        self.end = 0.0
        self._started = False

    def place(self, event: Event) -> float:
        if not self._started or (isinstance(event, RunStarted) and event.restarted):
            self._offset_s = self.end - event.t_s
            self._started = True
        # a clock never runs backwards within one process; a restart without its RunStarted
        # (a bare supervisor swapped in a test or a tool) must not either
        self.end = max(self.end, event.t_s + self._offset_s)
        return self.end
