"""The safety supervisor: the only holder of the pump (docs/architecture.md, invariant 1).

Imports value types only (``vasopilot.core``); no I/O besides the pump it is handed and the
event sink it writes to before acting, and no clock: time is an argument.
"""

from safety.alarms import ALARM_PRIORITY, AlarmCode, AlarmManager
from safety.occlusion import OcclusionDetector, OcclusionFinding
from safety.record import EventSink
from safety.resume import ResumeState
from safety.supervisor import Decision, StopReason, Supervisor
from safety.view import SupervisorView

__all__ = [
    "ALARM_PRIORITY",
    "AlarmCode",
    "AlarmManager",
    "Decision",
    "EventSink",
    "OcclusionDetector",
    "OcclusionFinding",
    "ResumeState",
    "StopReason",
    "Supervisor",
    "SupervisorView",
]
