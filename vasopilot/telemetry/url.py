"""``--mqtt URL`` and ``--rig-id``: override a rig profile's ``[mqtt]`` section from the CLI."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, unquote, urlsplit

from vasopilot.core.config import MqttSettings
from vasopilot.core.errors import ConfigError

_TRUE = {"1", "true", "yes"}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from_url(
    url: str, base: MqttSettings | None = None, *, rig_id: str | None = None
) -> MqttSettings:
    """``base`` with broker, credentials and TLS taken from ``url``, and enabled.

    ``mqtts://user:pass@host:8883?ca=ca.pem&cert=c.pem&key=k.pem`` speaks TLS (files default to
    the profile's). ``mqtt://`` is plain TCP and, like ``insecure = true`` in a profile, must be
    asked for: allowed to a loopback host (the traffic never leaves the machine), elsewhere only
    with ``?insecure=true``.
    """
    base = base or MqttSettings()
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"--mqtt {url!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"--mqtt {url!r}: no broker host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "mqtts"
    insecure = query.get("insecure", "").lower() in _TRUE
    if not tls and not insecure and not _loopback(parts.hostname):
        raise ConfigError(
            f"--mqtt {url!r}: plain MQTT to another host sends doses and credentials in clear; "
            "use mqtts:// or add ?insecure=true")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"--mqtt {url!r}: {exc}") from None
    update: dict[str, object] = {
        "enabled": True,
        "host": parts.hostname,
        "port": port,
        "tls": tls,
        "insecure": not tls,
        "remote_commands": base.remote_commands and tls,
    }
    if parts.username is not None:
        update["username"] = unquote(parts.username)
        update["password"] = unquote(parts.password) if parts.password is not None else None
    for key, field in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
        if key in query:
            update[field] = query[key]
    if rig_id is not None:
        update["rig_id"] = rig_id
    return MqttSettings.model_validate(base.model_dump() | update)
