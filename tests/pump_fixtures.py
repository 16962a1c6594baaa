"""Shared by the serial-pump tests: the syringe and mechanics, a clock, a bare pyserial
port on an emulator, as a third-party program would open it, and ``vasopilot emulate`` run as a
separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import serial

from drivers.sim.pty_port import ByteDevice, PtyPort
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeCatalogue, SyringeSpec

SYRINGE: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]
MECHANICS = MechanicsSettings()
REPO = Path(__file__).resolve().parents[1]

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


@contextmanager
def emulate_process(kind: str, link: Path) -> Iterator[str]:
    """``vasopilot emulate KIND --link LINK`` in its own process; yields the device path it
    prints, and stops it with Ctrl-C (SIGINT), which must end it with exit 0."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vasopilot", "emulate", kind, "--link",
                             str(link)], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
