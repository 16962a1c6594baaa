"""Scripted exchanges, pymeasure's ``expected_protocol`` habit: the production driver on a fake
serial port that replays (bytes sent, bytes replied) pairs exactly and fails on any byte the
script does not expect. Each pair names the place in ``docs/pumps.md`` that states it, so
the drivers are held against the manual and not only against emulators that share their codec.

Frames in scripts are written out by hand; the one thing computed here is the safe-mode CRC,
with ``binascii.crc_hqx`` exactly as the manual states it (pinned to its check value in
``test_protocol_scripts.py``), never with the codec under test.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import serial

# The URL a driver is given to open the scripted port.
SCRIPT_URL = "script://pump"

STX = b"\x02"
ETX = b"\x03"


def safe(data: bytes) -> bytes:
    """An NE-1000 safe-mode packet: STX, LEN (data + 4), data, CRC-16/XMODEM (big-endian), ETX."""
    crc = binascii.crc_hqx(data, 0)
    return STX + bytes([len(data) + 4]) + data + crc.to_bytes(2, "big") + ETX


def basic(body: bytes) -> bytes:
    """An NE-1000 basic-mode reply: STX, address, status, data, ETX."""
    return STX + body + ETX


@dataclass(frozen=True, slots=True)
class Exchange:
    """The driver writes ``sent`` (b"": nothing; the pump speaks on its own) and the pump
    answers ``replied`` (b"": silence). ``manual``: where docs/pumps.md says so."""

    sent: bytes
    replied: bytes
    manual: str


class ScriptError(AssertionError):
    """The driver wrote something the script does not expect."""


class ScriptedPort:
    """What :class:`drivers.pump.serial_link.SerialPort` needs, replaying a script.

    A reply is readable as soon as its request is complete. An unsolicited exchange
    (``sent == b""``) becomes readable once everything before it has been read, that is, between
    two exchanges, where a pump's own packet lands.
    """

    def __init__(self, script: Sequence[Exchange]) -> None:
        self._script = list(script)
        self._next = 0
        self._written = bytearray()
        self._readable = bytearray()
        self.failure: ScriptError | None = None
        self.opened = 0

    # -- SerialPort -----------------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        self._release_unsolicited()
        return len(self._readable)

    def read(self, size: int = 1) -> bytes:
        self._release_unsolicited()
        out = bytes(self._readable[:size])
        del self._readable[:size]
        return out

    def write(self, data: bytes) -> int:
        self._written.extend(data)
        while self._written:
            if self._next >= len(self._script):
                self._fail(f"wrote {bytes(self._written)!r} after the script ended")
            step = self._script[self._next]
            if not step.sent:
                self._fail(f"wrote {bytes(self._written)!r} where the pump was to speak on its "
                           f"own ({step.manual})")
            have = bytes(self._written[: len(step.sent)])
            if not step.sent.startswith(have):
                self._fail(f"exchange {self._next}: wrote {bytes(self._written)!r}, expected "
                           f"{step.sent!r} ({step.manual})")
            if len(have) < len(step.sent):
                break
            del self._written[: len(step.sent)]
            self._readable.extend(step.replied)
            self._next += 1
        return len(data)

    def close(self) -> None:
        """A port a driver closes and opens again is the same line: the script goes on."""

    # -- the test's side ------------------------------------------------------------------------

    def assert_done(self) -> None:
        if self.failure is not None:
            raise self.failure
        left = self._script[self._next:]
        assert not left, f"the driver never sent {[s.sent for s in left]} ({left[0].manual})"
        assert not self._written, f"half a request left: {bytes(self._written)!r}"

    def _release_unsolicited(self) -> None:
        while (not self._readable and self._next < len(self._script)
               and not self._script[self._next].sent):
            self._readable.extend(self._script[self._next].replied)
            self._next += 1

    def _fail(self, message: str) -> None:
        # Kept as well as raised: a driver that catches broadly must not hide it.
        self.failure = ScriptError(message)
        raise self.failure


@contextmanager
def scripted(monkeypatch: pytest.MonkeyPatch, script: Sequence[Exchange]) -> Iterator[ScriptedPort]:
    """``SCRIPT_URL`` opens a port replaying ``script``; on leaving, the whole script must have
    been played and nothing else sent."""
    port = ScriptedPort(script)
    real = serial.serial_for_url

    def serial_for_url(url: str, *args: Any, **kwargs: Any) -> Any:
        if url != SCRIPT_URL:
            return real(url, *args, **kwargs)
        port.opened += 1
        return port

    with monkeypatch.context() as patch:
        patch.setattr(serial, "serial_for_url", serial_for_url)
        yield port
    port.assert_done()
