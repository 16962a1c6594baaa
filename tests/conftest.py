"""Shared fixtures: only the MQTT broker ones (see tests/mqtt_fixtures.py)."""

from mqtt_fixtures import broker, tls_broker

__all__ = ["broker", "tls_broker"]
