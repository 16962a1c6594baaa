"""The safety supervisor: the only holder of the pump (DESIGN.md invariant 1).

Imports value types only (``vasopilot.core``); no I/O besides the pump it is handed and the
event sink it writes to before acting, and no clock: time is an argument.
"""

from safety.alarms import AlarmCode, AlarmManager
from safety.supervisor import Decision, EventSink, Supervisor, SupervisorView

__all__ = ["AlarmCode", "AlarmManager", "Decision", "EventSink", "Supervisor", "SupervisorView"]
