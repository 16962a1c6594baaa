"""Alarm manager in the IEC 60601-1-8 style (S11).

High-priority alarms latch: they stay until acknowledged *and* their cause is gone. An alarm can
be silenced (audio paused) for at most ``silence_max_s``, never disabled. Every transition is an
event (raised, acknowledged, silenced, cleared).
"""

from __future__ import annotations

from dataclasses import dataclass

from vasopilot.core.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmCode,
    AlarmRaised,
    AlarmSilenced,
)
from vasopilot.core.types import Priority

AlarmEvent = AlarmRaised | AlarmAcknowledged | AlarmSilenced | AlarmCleared

# Conditions the supervisor's own checks assert on every tick; after a restart they are raised
# again only if this run finds them true.
CONDITIONS = frozenset({
    AlarmCode.MAP_STALE, AlarmCode.MAP_LOW, AlarmCode.SYRINGE_NEAR_EMPTY,
    AlarmCode.PUMP_DISCONNECTED, AlarmCode.DELIVERY_UNCERTAIN, AlarmCode.JOURNAL_FAULT,
})

_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


# MAP_STALE starts medium and escalates to high when the data stay untrusted (S5).
ALARM_PRIORITY: dict[AlarmCode, Priority] = {
    AlarmCode.MAP_STALE: Priority.MEDIUM,
    AlarmCode.MAP_LOW: Priority.MEDIUM,
    AlarmCode.OCCLUSION: Priority.HIGH,
    AlarmCode.EXTRAVASATION: Priority.HIGH,
    AlarmCode.SYRINGE_NEAR_EMPTY: Priority.MEDIUM,
    AlarmCode.SYRINGE_EMPTY: Priority.HIGH,
    AlarmCode.CHANGEOVER: Priority.LOW,
    AlarmCode.PUMP_FAULT: Priority.HIGH,
    AlarmCode.PUMP_DISCONNECTED: Priority.HIGH,
    AlarmCode.PUMP_UNCOMMANDED: Priority.HIGH,
    AlarmCode.DELIVERY_UNCERTAIN: Priority.MEDIUM,
    AlarmCode.HOST_TIMEOUT: Priority.HIGH,
    AlarmCode.RESTARTED: Priority.LOW,
    AlarmCode.HARD_LIMIT_REFUSED: Priority.LOW,
    AlarmCode.JOURNAL_FAULT: Priority.HIGH,
    AlarmCode.VOLUME_CHECK: Priority.MEDIUM,
    AlarmCode.TACHYCARDIA: Priority.MEDIUM,
    AlarmCode.BRADYCARDIA: Priority.MEDIUM,
    AlarmCode.RHYTHM_IRREGULAR: Priority.LOW,
    AlarmCode.SBP_LOW: Priority.MEDIUM,
    AlarmCode.CANNULA_CHECK: Priority.LOW,
    AlarmCode.PERIPHERAL_LINE_TIME: Priority.MEDIUM,
    AlarmCode.PROLONGED_HIGH_DOSE: Priority.LOW,
    # S9: infiltration seen in line pressure alarms at once; a flow-independent offset advises.
    AlarmCode.CANNULA_SITE: Priority.HIGH,
    AlarmCode.LINE_PRESSURE_CHANGED: Priority.LOW,
    AlarmCode.TARGET_UNREACHABLE: Priority.MEDIUM,
}


@dataclass
class Alarm:
    code: AlarmCode
    priority: Priority
    message: str
    raised_t_s: float
    cause_active: bool = True
    acknowledged: bool = False
    silenced_until_t_s: float | None = None

    @property
    def latching(self) -> bool:
        return self.priority is Priority.HIGH

    def audible(self, now_s: float) -> bool:
        return self.silenced_until_t_s is None or now_s >= self.silenced_until_t_s


class AlarmManager:
    def __init__(self, silence_max_s: float = 120.0) -> None:
        self._silence_max_s = silence_max_s
        self._alarms: dict[AlarmCode, Alarm] = {}

    def active(self) -> list[Alarm]:
        """Active alarms, highest priority first, then oldest first."""
        return sorted(self._alarms.values(), key=lambda a: (-_RANK[a.priority], a.raised_t_s))

    def is_active(self, code: AlarmCode) -> bool:
        return code in self._alarms

    def get(self, code: AlarmCode) -> Alarm | None:
        return self._alarms.get(code)

    def raise_alarm(
        self, code: AlarmCode, priority: Priority, message: str, now_s: float, *,
        momentary: bool = False,
    ) -> list[AlarmEvent]:
        """Raise (or re-assert) an alarm; a re-raise at higher priority escalates it.

        A ``momentary`` alarm reports something that happened rather than a lasting condition
        (a refusal, a restart, a changeover): its cause is over at once, so it stays until
        acknowledged and then clears. An alarm still shown only because it latches, whose cause
        had gone, is raised afresh with the new message: it must say what is true now.
        """
        alarm = self._alarms.get(code)
        if alarm is not None and not alarm.cause_active and alarm.message != message:
            del self._alarms[code]
            alarm = None
        if alarm is not None:
            alarm.cause_active = alarm.cause_active or not momentary
            if _RANK[priority] <= _RANK[alarm.priority]:
                return []
            alarm.priority = priority
            alarm.message = message
            alarm.acknowledged = False
            alarm.silenced_until_t_s = None
        else:
            self._alarms[code] = Alarm(code, priority, message, now_s,
                                       cause_active=not momentary)
        return [AlarmRaised(t_s=now_s, code=code, priority=priority, message=message)]

    def cause_gone(self, code: AlarmCode, now_s: float) -> list[AlarmEvent]:
        """The condition behind ``code`` has ended: clear unless it latches unacknowledged."""
        alarm = self._alarms.get(code)
        if alarm is None or not alarm.cause_active:
            return []
        alarm.cause_active = False
        if alarm.latching and not alarm.acknowledged:
            return []
        del self._alarms[code]
        return [AlarmCleared(t_s=now_s, code=code)]

    def acknowledge(self, code: AlarmCode, now_s: float, by: str = "operator") -> list[AlarmEvent]:
        alarm = self._alarms.get(code)
        if alarm is None:
            return []
        alarm.acknowledged = True
        events: list[AlarmEvent] = [AlarmAcknowledged(t_s=now_s, code=code, by=by)]
        if not alarm.cause_active:
            del self._alarms[code]
            events.append(AlarmCleared(t_s=now_s, code=code))
        return events

    def silence(
        self, code: AlarmCode, now_s: float, duration_s: float | None = None, by: str = "operator"
    ) -> list[AlarmEvent]:
        """Pause an alarm's audio for at most ``silence_max_s`` (never longer, never disabled)."""
        alarm = self._alarms.get(code)
        if alarm is None:
            return []
        span_s = self._silence_max_s if duration_s is None else min(duration_s, self._silence_max_s)
        alarm.silenced_until_t_s = now_s + max(0.0, span_s)
        return [AlarmSilenced(t_s=now_s, code=code, until_t_s=alarm.silenced_until_t_s, by=by)]

    def carry_over(self, code: AlarmCode, priority: Priority, message: str,
                   now_s: float) -> list[AlarmEvent]:
        """An alarm the previous run left open, restated as a record of that run.

        A condition (:data:`CONDITIONS`) is cleared: this run's checks raise it again, with
        what is true now, if it still holds. A high-priority event (an occlusion, a pump fault)
        stays, latched until acknowledged, marked as the previous run's; any other is cleared.
        """
        if priority is not Priority.HIGH or code in CONDITIONS:
            return [AlarmCleared(t_s=now_s, code=code)]
        restated = f"before the restart: {message}"
        self._alarms[code] = Alarm(code, priority, restated, now_s, cause_active=False)
        return [AlarmRaised(t_s=now_s, code=code, priority=priority, message=restated)]


__all__ = ["ALARM_PRIORITY", "CONDITIONS", "Alarm", "AlarmCode", "AlarmEvent", "AlarmManager"]
