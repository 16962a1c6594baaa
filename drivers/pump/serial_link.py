"""Port handling shared by the serial pump drivers: open by URL, read with timeouts, reconnect.

A ``SerialLink`` may be shared by several pumps on one RS-232 line (New Era addresses 0-99);
its lock keeps one request-reply exchange on the wire at a time. A failed read or write closes
the port; the next exchange re-opens the same URL, so a pump whose USB adapter was unplugged and
plugged back is found again without anyone touching its settings.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import serial

from drivers.port_lock import lock_alone
from drivers.pump.frames import FrameError, FrameFault
from vasopilot.core.errors import (
    PumpCommunicationError,
    PumpConnectionError,
    UncertainDeliveryError,
)

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")


class SerialPort(Protocol):
    """What the link uses of a pyserial port (narrowed so tests can see the contract)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class FrameDecoder(Protocol[T_co]):
    """A sans-I/O reply decoder: fed bytes, it returns what it recognised."""

    @property
    def pending(self) -> bytes:
        """Bytes of a frame begun but not finished."""
        ...

    def feed(self, data: bytes) -> Sequence[T_co]: ...

    def clear(self) -> None: ...


# More than a few frames' worth of bytes without a reply means the line is babbling.
MAX_REPLY_BYTES = 512


class SerialLink:
    """One serial port by URL (``/dev/ttyUSB0``, a pty path, ``socket://``, ``loop://``).

    ``timeout_s`` is the longest silence tolerated while a reply is still expected.
    """

    def __init__(self, url: str, *, baud: int, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout_s} s")
        self.url = url
        self.baud = baud
        self.timeout_s = timeout_s
        self.lock = threading.RLock()
        self._port: SerialPort | None = None

    def open(self) -> None:
        """Open the port if it is closed; raises :class:`PumpConnectionError` if it cannot."""
        if self._port is not None:
            return
        try:
            port: SerialPort = serial.serial_for_url(
                self.url, baudrate=self.baud, bytesize=8, parity="N", stopbits=1,
                timeout=self.timeout_s, write_timeout=self.timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PumpConnectionError(f"cannot open pump port {self.url}: {exc}") from None
        if not lock_alone(port):
            raise PumpConnectionError(
                f"pump port {self.url} is held by another process (another vasopilot run?): "
                "only one may drive a pump; stop that one first")
        self._port = port

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            # The port is being dropped because it already failed; closing may fail too.
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def _fail(self, what: str, exc: BaseException) -> PumpConnectionError:
        self.close()
        return PumpConnectionError(f"pump port {self.url}: {what} failed ({exc}); "
                                   "it will be re-opened on the next command")

    def write(self, data: bytes) -> None:
        self.open()
        assert self._port is not None
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise self._fail("write", exc) from None

    def read_some(self) -> bytes:
        """What has arrived, waiting at most ``timeout_s`` for the first byte (b"" on silence)."""
        self.open()
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            return self._port.read(max(1, waiting))
        except (serial.SerialException, OSError) as exc:
            raise self._fail("read", exc) from None

    def read_waiting(self) -> bytes:
        """Only what has already arrived, without waiting."""
        self.open()
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            return self._port.read(waiting) if waiting else b""
        except (serial.SerialException, OSError) as exc:
            raise self._fail("read", exc) from None

    def items(self, decoder: FrameDecoder[T], what: str) -> Iterator[T]:
        """Decoded items as they arrive, until the caller has its reply and stops iterating.

        Silence for ``timeout_s`` raises :class:`FrameError` if a frame was begun (a half
        reply) or :class:`PumpConnectionError` if nothing came; an endless stream without a
        reply raises :class:`FrameError`.
        """
        received = 0
        while received <= MAX_REPLY_BYTES:
            chunk = self.read_some()
            if not chunk:
                pending = decoder.pending
                decoder.clear()
                if pending:
                    raise FrameError(FrameFault.HALF_FRAME,
                                     f"reply to {what} on {self.url}: {pending!r}, then "
                                     f"silence for {self.timeout_s} s")
                raise PumpConnectionError(
                    f"no reply to {what} on {self.url} within {self.timeout_s} s")
            received += len(chunk)
            yield from decoder.feed(chunk)
        raise FrameError(FrameFault.BABBLE,
                         f"more than {MAX_REPLY_BYTES} bytes without a reply to {what} on "
                         f"{self.url}")


class ChangeGuard:
    """Tells a lost reply to a query from one to a command that may have changed the pump.

    Drivers call :meth:`sent` before writing a state-changing command; inside
    :meth:`changing`, a connection or communication error after that becomes
    :class:`UncertainDeliveryError` ("sent, but we do not know if the pump acted").
    """

    def __init__(self) -> None:
        self._sent = False

    def sent(self) -> None:
        self._sent = True

    @contextmanager
    def changing(self, what: str) -> Iterator[None]:
        self._sent = False
        try:
            yield
        except (PumpConnectionError, PumpCommunicationError) as exc:
            if self._sent:
                raise UncertainDeliveryError(
                    f"{what}: sent, but the pump's reply was lost ({exc})") from exc
            raise
