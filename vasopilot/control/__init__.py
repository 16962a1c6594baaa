"""Control modes. A controller proposes; the supervisor disposes.

Every mode satisfies :class:`Controller`: it sees beats and the supervisor's read-only view and
may return a :class:`~vasopilot.core.types.DoseRequest`. It never holds the pump.
"""

from vasopilot.control.base import Controller
from vasopilot.control.manual import ManualMode
from vasopilot.control.protocol import NurseProtocol

__all__ = ["Controller", "ManualMode", "NurseProtocol"]
