"""``--mqtt URL`` / ``--broker URL`` and the broker password.

A URL overrides a rig profile's ``[mqtt]`` broker but never weakens its TLS, and never carries
a password: a command line is visible to every user of the machine (``ps``). The password comes
from a file (``--password-file``, or the profile's ``[mqtt] password_file``) or the environment
variable :data:`PASSWORD_ENV`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from vasopilot.core.config import MqttSettings
from vasopilot.core.errors import ConfigError

PASSWORD_ENV = "VASOPILOT_MQTT_PASSWORD"
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
    """``base`` with broker, user and TLS taken from ``url``, and enabled.

    ``mqtts://user@host:8883?ca=ca.pem&cert=c.pem&key=k.pem`` speaks TLS (files default to the
    profile's). ``mqtt://`` is plain TCP and, like ``insecure = true`` in a profile, must be
    asked for: allowed to a loopback host (the traffic never leaves the machine), elsewhere only
    with ``?insecure=true``; and never over a profile that asks for TLS.
    """
    base = base or MqttSettings()
    parts = urlsplit(url)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"broker {shown!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"broker {shown!r}: no broker host")
    if parts.password is not None:
        raise ConfigError(f"broker {shown!r}: a password in the URL shows in `ps`; put it in a "
                          f"file (--password-file, [mqtt] password_file) or ${PASSWORD_ENV}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "mqtts"
    insecure = query.get("insecure", "").lower() in _TRUE
    if base.tls and not tls:
        raise ConfigError(f"broker {shown!r}: the rig profile asks for TLS and an override "
                          "never weakens it; use mqtts://")
    if not tls and not insecure and not _loopback(parts.hostname):
        raise ConfigError(
            f"broker {shown!r}: plain MQTT to another host sends doses and credentials in "
            "clear; use mqtts:// or add ?insecure=true")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"broker {shown!r}: {exc}") from None
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
    for key, name in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
        if key in query:
            update[name] = query[key]
    if rig_id is not None:
        update["rig_id"] = rig_id
    return MqttSettings.model_validate(base.model_dump() | update)


def with_password(
    settings: MqttSettings,
    *,
    password_file: Path | str | None = None,
    base_dir: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> MqttSettings:
    """``settings`` with the password read from ``password_file`` (a command-line option),
    else the profile's ``password_file`` (relative to ``base_dir``), else :data:`PASSWORD_ENV`,
    else the profile's own ``password``."""
    path: Path | None = Path(password_file) if password_file is not None else None
    if path is None and settings.password_file is not None:
        path = Path(settings.password_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if path is not None:
        try:
            password = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"MQTT password file {path}: {exc.strerror or exc}") from None
    elif PASSWORD_ENV in environ:
        password = environ[PASSWORD_ENV]
    else:
        return settings
    return settings.model_copy(update={"password": password})
