"""An MT-SICS balance on a serial port: one command outstanding, typed errors, timed samples.

The wire is any pyserial URL (a device, a pty, ``socket://``); baud, byte size, parity, stop
bits and handshake come from the rig profile because the balance's menu sets them. Every
exchange writes one command and waits for its reply before anything else is sent: the
MT-SICS manual warns that a balance may confuse or drop commands otherwise. After a reply was
lost the next exchange first sends ``@`` and discards everything up to its answer, so a late
reply to the lost command is never taken for the answer to a new one.

Timed samples use ``SI`` (the weight now, with its stability flag); ``S`` waits for stability
and may block for the balance's own timeout, so it is offered for manual checks only. The
driver never zeroes or tares: a run's weights are differences from its first sample.
"""

from __future__ import annotations

import contextlib
import termios
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

import serial

from drivers.balance.mt_sics import (
    CommandList,
    CommandListDecoder,
    LineDecoder,
    Stability,
    encode,
    parse_identity,
    parse_weight,
)
from drivers.port_lock import lock_alone
from vasopilot.core.clock import Clock
from vasopilot.core.errors import (
    BalanceCommunicationError,
    BalanceConnectionError,
    BalanceSyntaxError,
)

# A pulled USB adapter surfaces from pyserial's flush as a bare termios error.
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
# Lines that are not the awaited reply (echoes of old commands after a resync) tolerated
# before the line counts as babbling.
MAX_STRAY_LINES = 16
Handshake = Literal["none", "xonxoff", "rtscts"]


@dataclass(frozen=True)
class Weighing:
    """A weight with the time it was read (``t_s`` on the rig's clock) and its flag."""

    t_s: float
    mass_g: float
    stability: Stability

    @property
    def stable(self) -> bool:
        return self.stability is Stability.STABLE


@dataclass(frozen=True)
class SerialSettings:
    """The balance menu's serial settings (MT-SICS factory default: 9600 8N1, no handshake)."""

    baud: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    handshake: Handshake = "none"


class MtSicsBalance:
    """A Mettler Toledo (or MT-SICS compatible) balance at ``url``.

    Connecting resets it (``@``) and reads its serial number and, where ``I0`` is implemented,
    the commands it supports. ``timeout_s`` is the longest silence accepted while a reply is
    due. Raises :class:`~vasopilot.core.errors.BalanceConnectionError` if the port cannot be
    opened or the balance does not answer.
    """

    def __init__(self, url: str, *, clock: Clock, serial_settings: SerialSettings | None = None,
                 timeout_s: float = 2.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout_s} s")
        self.url = url
        self._clock = clock
        self._settings = serial_settings or SerialSettings()
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._port: serial.SerialBase | None = None
        self._decoder = LineDecoder()
        self._resync = False
        try:
            self.serial_number = self.reset()
        except BalanceSyntaxError:
            # Some look-alikes have no reset; I4 is level 0 everywhere.
            self.serial_number = self.read_serial_number()
        self.commands = self.list_commands()

    # -- commands ------------------------------------------------------------------------------

    def reset(self) -> str:
        """``@``: cancel whatever the balance was doing; returns its serial number."""
        return parse_identity(self._exchange("@", answer="I4"))

    def read_serial_number(self) -> str:
        """``I4``: the balance's serial number."""
        return parse_identity(self._exchange("I4"))

    def list_commands(self) -> CommandList | None:
        """``I0``: the implemented commands, or ``None`` where the balance does not have I0."""
        collected = CommandListDecoder()
        try:
            with contextlib.closing(self._lines("I0")) as lines:
                for line in lines:
                    collected.add(line)
                    if collected.done:
                        return collected.result
        except BalanceSyntaxError:
            return None
        raise AssertionError("unreachable: _lines ends only by raising")

    def weigh_now(self) -> Weighing:
        """``SI``: the weight at this instant, stable or not, stamped on the rig's clock."""
        weight = parse_weight(self._exchange("SI"), "SI")
        return Weighing(self._clock.now_s(), weight.mass_g, weight.stability)

    def weigh_stable(self) -> Weighing:
        """``S``: the next stable weight (``BalanceBusyError`` if none within the balance's
        own timeout). Not for timed samples: it can block."""
        weight = parse_weight(self._exchange("S"), "S")
        return Weighing(self._clock.now_s(), weight.mass_g, weight.stability)

    def close(self) -> None:
        with self._lock:
            self._close_port()

    # -- the wire ------------------------------------------------------------------------------

    def _exchange(self, command: str, *, answer: str | None = None) -> str:
        """Send ``command``, return its reply line: the first that reports an error or starts
        with ``answer`` (by default the command's echo)."""
        head = answer or command.split(maxsplit=1)[0]
        with contextlib.closing(self._lines(command)) as lines:
            for line in lines:
                if _answers(line, head):
                    return line
        raise AssertionError("unreachable: _lines ends only by raising")

    def _lines(self, command: str) -> Generator[str, None, None]:
        """Reply lines to ``command`` as they arrive; the caller stops when it has its reply.

        Holds the lock throughout, so exactly one command is outstanding on the wire.
        """
        with self._lock:
            if self._resync:
                self._resync = False
                self._send_and_drain("@")
            yield from self._send_and_read(command)

    def _send_and_drain(self, command: str) -> None:
        with contextlib.closing(self._send_and_read(command)) as lines:
            for line in lines:
                if _answers(line, "I4"):
                    return

    def _send_and_read(self, command: str) -> Generator[str, None, None]:
        port = self._open()
        self._decoder.clear()
        try:
            port.reset_input_buffer()
            port.write(encode(command))
        except PORT_ERRORS as exc:
            raise self._fail(f"writing {command!r}", exc) from None
        stray = 0
        while stray <= MAX_STRAY_LINES:
            try:
                chunk = port.read(max(1, port.in_waiting))
            except PORT_ERRORS as exc:
                raise self._fail(f"reading the reply to {command!r}", exc) from None
            if not chunk:
                self._resync = True
                pending = self._decoder.pending
                self._decoder.clear()
                if pending:
                    raise BalanceCommunicationError(
                        f"half a reply to {command!r} on {self.url}: {pending!r}, then silence "
                        f"for {self._timeout_s} s")
                raise BalanceConnectionError(
                    f"no reply to {command!r} from the balance on {self.url} within "
                    f"{self._timeout_s} s")
            for line in self._decoder.feed(chunk):
                stray += 1
                yield line
        self._resync = True
        raise BalanceCommunicationError(
            f"more than {MAX_STRAY_LINES} lines without a reply to {command!r} on {self.url}")

    def _open(self) -> serial.SerialBase:
        if self._port is not None:
            return self._port
        s = self._settings
        try:
            port: serial.SerialBase = serial.serial_for_url(
                self.url, baudrate=s.baud, bytesize=s.bytesize, parity=s.parity,
                stopbits=s.stopbits, xonxoff=s.handshake == "xonxoff",
                rtscts=s.handshake == "rtscts", timeout=self._timeout_s,
                write_timeout=self._timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BalanceConnectionError(f"cannot open balance port {self.url}: {exc}") from None
        if not lock_alone(port):
            raise BalanceConnectionError(
                f"balance port {self.url} is held by another process (another accuracy run?): "
                "its replies would be shared; stop that one first")
        self._port = port
        return port

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            # Dropped because it failed already; closing may fail as well.
            with contextlib.suppress(*PORT_ERRORS):
                port.close()

    def _fail(self, what: str, exc: BaseException) -> BalanceConnectionError:
        self._close_port()
        self._resync = True
        return BalanceConnectionError(f"balance port {self.url}: {what} failed ({exc}); it "
                                      "will be re-opened on the next command")


def _answers(line: str, head: str) -> bool:
    fields = line.split(maxsplit=1)
    if not fields:
        return False
    first = fields[0]
    return first in ("ES", "ET", "EL", head) or (first == "S" and head.startswith("S"))
