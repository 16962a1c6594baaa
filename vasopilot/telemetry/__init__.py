"""Remote monitoring over MQTT: payloads, the publisher, remote commands, the service watchdog.

``attach`` is what ``vasopilot sim`` and ``vasopilot run`` call; see :mod:`.publisher`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vasopilot.core.config import MqttSettings
from vasopilot.telemetry.publisher import SeqFilter, Telemetry

if TYPE_CHECKING:
    from vasopilot.journal import Journal
    from vasopilot.settings import RigConfig

__all__ = ["SeqFilter", "Telemetry", "attach", "telemetry_for", "with_rig_id"]


def attach(
    settings: MqttSettings, rig_id: str, journal: Path | str, *, weight_kg: float | None = None
) -> Telemetry:
    """A started :class:`Telemetry` for the rig whose journal is ``journal``; use it as a
    context manager, and hand it the rig loop with :meth:`Telemetry.bind_loop` once built."""
    return Telemetry(settings, rig_id, journal, weight_kg=weight_kg).start()


def with_rig_id(config: RigConfig, rig_id: str | None) -> RigConfig:
    """``config`` under one rig id, so journal events and topics agree: ``rig_id``
    (``--rig-id``), else the profile's ``[mqtt] rig_id``, else its ``rig_id``."""
    chosen = rig_id or config.profile.mqtt.rig_id or config.profile.rig_id
    if chosen == config.profile.rig_id:
        return config
    return dataclasses.replace(config, profile=config.profile.model_copy(
        update={"rig_id": chosen}))


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

    ``url`` and ``rig_id`` override the profile (the URL never weakens its TLS); the password
    comes from the profile's ``password_file`` or the environment (see :mod:`.url`).
    ``after_seq`` is where event replay starts (0 for a fresh journal: every event). Yields
    ``None`` when MQTT is off.
    """
    from vasopilot.telemetry.url import settings_from_url, with_password

    settings = config.profile.mqtt
    if url:
        settings = settings_from_url(url, settings, rig_id=rig_id)
    if not settings.enabled:
        yield None
        return
    settings = with_password(settings, base_dir=config.source.parent if config.source else None)
    telemetry = Telemetry(settings, with_rig_id(config, rig_id).profile.rig_id, journal.path,
                          weight_kg=config.profile.patient.weight_kg, after_seq=after_seq,
                          sink=journal.append).start()
    try:
        yield telemetry
    finally:
        # Commit the tail of batched events so the last of them are published too.
        try:
            journal.flush()
        finally:
            telemetry.close()
