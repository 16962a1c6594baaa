"""Remote monitoring over MQTT: payloads, the publisher, remote commands, the service watchdog.

``attach`` is what ``vasopilot sim`` and ``vasopilot run`` call; see :mod:`.publisher`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vasopilot.core.config import MqttSettings
from vasopilot.telemetry.publisher import SeqFilter, Telemetry

if TYPE_CHECKING:
    from vasopilot.journal import Journal
    from vasopilot.settings import RigConfig

__all__ = ["SeqFilter", "Telemetry", "attach", "telemetry_for"]


def attach(
    settings: MqttSettings, rig_id: str, journal: Path | str, *, weight_kg: float | None = None
) -> Telemetry:
    """A started :class:`Telemetry` for the rig whose journal is ``journal``; use it as a
    context manager, and hand it the rig loop with :meth:`Telemetry.bind_loop` once built."""
    return Telemetry(settings, rig_id, journal, weight_kg=weight_kg).start()


@contextmanager
def telemetry_for(
    config: RigConfig,
    journal: Journal,
    *,
    url: str | None = None,
    rig_id: str | None = None,
    after_seq: int | None = None,
) -> Iterator[Telemetry | None]:
    """Telemetry for a rig if ``url`` (``--mqtt``) or the profile's ``[mqtt]`` asks for it.

    ``url`` and ``rig_id`` override the profile; ``after_seq`` is where event replay starts
    (0 for a fresh journal: every event). Yields ``None`` when MQTT is off.
    """
    settings = config.profile.mqtt
    if url:
        from vasopilot.telemetry.url import settings_from_url

        settings = settings_from_url(url, settings, rig_id=rig_id)
    if not settings.enabled:
        yield None
        return
    telemetry = Telemetry(settings, rig_id or settings.rig_id or config.profile.rig_id,
                          journal.path, weight_kg=config.profile.patient.weight_kg,
                          after_seq=after_seq).start()
    try:
        yield telemetry
    finally:
        # Commit the tail of batched events so the last of them are published too.
        try:
            journal.flush()
        finally:
            telemetry.close()
