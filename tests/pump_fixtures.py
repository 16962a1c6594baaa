"""Shared by the serial-pump tests: the syringe and mechanics, a clock, and a bare pyserial
port on an emulator, as a third-party program would open it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import pytest
import serial

from drivers.sim.pty_port import ByteDevice, PtyPort
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeCatalogue, SyringeSpec

SYRINGE: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]
MECHANICS = MechanicsSettings()

R = TypeVar("R")


class Decoder(Protocol):
    def feed(self, data: bytes) -> Sequence[object]: ...


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@contextmanager
def raw_port(emulator: ByteDevice, baud: int) -> Iterator[serial.Serial]:
    """A pyserial port on ``emulator`` over a pty; replies come within a second."""
    with PtyPort(emulator) as port:
        link = serial.Serial(port.path, baud, timeout=1.0)
        try:
            yield link
        finally:
            link.close()


def next_reply(link: serial.Serial, decoder: Decoder, reply_type: type[R],
               request: bytes = b"") -> R:
    """The next thing the emulator says, which must be a ``reply_type`` (not garbage)."""
    while True:
        chunk = link.read(1)
        assert chunk, f"no reply to {request!r}"
        for item in decoder.feed(chunk):
            assert isinstance(item, reply_type), item
            return item
