"""Where the supervisor's parts write what they decide: the event sink, guarded (S14).

An event that cannot be made durable (:class:`~vasopilot.core.errors.JournalUnavailable`) is
kept pending by the sink, in order; this records the fault as a HIGH ``JOURNAL_FAULT`` alarm
that lives in the supervisor's alarm list (and so in its view, the console and MQTT) even
though the journal cannot hold it yet, and reports the failure to the caller, which then does
not act on the event (a dose change that could not be journaled is not made). Each tick asks
the sink to write what is pending; the alarm's cause goes once nothing is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Protocol

from safety.alarms import ALARM_PRIORITY, AlarmCode, AlarmManager
from vasopilot.core.errors import JournalUnavailable
from vasopilot.core.events import Event
from vasopilot.core.types import Priority


class EventSink(Protocol):
    """Where the supervisor records what it decides.

    ``append`` returns once the event is durable, or raises ``JournalUnavailable`` having kept
    it pending; ``flush_pending`` tries to write what is pending and says whether nothing is.
    """

    def append(self, event: Event) -> Event: ...

    def flush_pending(self) -> bool: ...


class Recorder:
    """The sink and the alarm manager, shared by the supervisor's parts."""

    def __init__(self, sink: EventSink, alarms: AlarmManager) -> None:
        self._sink = sink
        self.alarms = alarms
        self._fault: str | None = None

    @property
    def journal_ok(self) -> bool:
        """No event is waiting to be made durable."""
        return self._fault is None

    @property
    def journal_fault(self) -> str | None:
        """Why the journal is behind, while it is."""
        return self._fault

    def record(self, events: Iterable[Event]) -> bool:
        """Append each event; ``False`` if any of them is not durable yet."""
        failure: tuple[str, float] | None = None
        for event in events:
            try:
                self._sink.append(event)
            except JournalUnavailable as exc:
                failure = failure or (str(exc), event.t_s)
        if failure is not None:
            # After the whole batch, so the alarm's own events follow the ones that failed.
            self._journal_down(*failure)
        return failure is None

    def alarm(self, code: AlarmCode, message: str, now_s: float, *,
              priority: Priority | None = None, momentary: bool = False) -> bool:
        """Raise ``code`` (at its usual priority unless given) and journal the raise."""
        return self.record(self.alarms.raise_alarm(
            code, priority or ALARM_PRIORITY[code], message, now_s, momentary=momentary))

    def clear(self, code: AlarmCode, now_s: float) -> bool:
        if not self.alarms.is_active(code):  # the usual tick: nothing to clear, nothing to say
            return True
        return self.record(self.alarms.cause_gone(code, now_s))

    def catch_up(self, now_s: float) -> None:
        """Let the sink write what is pending; the fault's cause goes when nothing is."""
        if self._fault is None:
            return
        if self._sink.flush_pending():
            self._fault = None
            self.record(self.alarms.cause_gone(AlarmCode.JOURNAL_FAULT, now_s))

    def _journal_down(self, cause: str, now_s: float) -> None:
        first = self._fault is None
        self._fault = cause
        if first:
            # Into the alarm list first, so people see it even if its own event stays pending.
            for event in self.alarms.raise_alarm(
                    AlarmCode.JOURNAL_FAULT, Priority.HIGH,
                    f"the journal cannot record events ({cause}); the infusion continues, "
                    "no dose change until it can", now_s):
                with contextlib.suppress(JournalUnavailable):
                    self._sink.append(event)
