"""Fixtures shared across test modules: the MQTT brokers and the serial pumps' virtual clock."""

from mqtt_fixtures import broker, tls_broker
from pump_fixtures import clock

__all__ = ["broker", "clock", "tls_broker"]
