"""Remote monitoring over MQTT: payloads, the publisher, remote commands, the service watchdog.

``attach`` is what ``vasopilot sim`` and ``vasopilot run`` call; see :mod:`.publisher`.
"""

from __future__ import annotations

from pathlib import Path

from vasopilot.core.config import MqttSettings
from vasopilot.telemetry.publisher import SeqFilter, Telemetry

__all__ = ["SeqFilter", "Telemetry", "attach"]


def attach(
    settings: MqttSettings, rig_id: str, journal: Path | str, *, weight_kg: float | None = None
) -> Telemetry:
    """A started :class:`Telemetry` for the rig whose journal is ``journal``; use it as a
    context manager, and hand it the rig loop with :meth:`Telemetry.bind_loop` once built."""
    return Telemetry(settings, rig_id, journal, weight_kg=weight_kg).start()
