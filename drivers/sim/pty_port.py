"""Pseudo-terminal plumbing shared by the device emulators.

A :class:`PtyPort` opens a pty, optionally points a symlink at its device, and runs a thread
that hands every byte from the host to a :class:`ByteDevice` and writes back what it answers.
The thread also polls the device so it can speak on its own (unsolicited alarm packets) and
notice timers on its clock. ``unplug()``/``replug()`` take the port away and bring a fresh one
back behind the same symlink, like a USB-serial adapter pulled and re-inserted; the device
object (and so the pump's state) survives, as a real pump's would.

A pty does not enforce baud rate, parity or modem lines; emulators accept any baud.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from vasopilot.core.errors import ConfigError

POLL_INTERVAL_S = 0.005
_READ_CHUNK = 4096


class ByteDevice(Protocol):
    """A device that speaks bytes: the emulator side of a serial line."""

    def on_bytes(self, data: bytes) -> bytes:
        """Take bytes from the host; return the bytes to send back (maybe none)."""
        ...

    def poll(self) -> bytes:
        """Called between reads: bytes the device sends on its own (maybe none)."""
        ...


@dataclass
class WireFaults:
    """Test levers an emulator applies to its next replies: noise before, half a reply, no
    reply, or the reply under another pump's address."""

    garbage_before_reply: bytes = b""
    truncate_next_replies: int = 0
    drop_next_replies: int = 0
    wrong_address_next_replies: int = 0
    intact_replies_first: int = 0

    def shape(self, reply: bytes, as_wrong_address: bytes) -> bytes:
        """The bytes that really go out for ``reply`` (``as_wrong_address``: the same reply
        from another address). ``intact_replies_first`` lets that many through untouched
        before the armed faults apply, to hit one command in the middle of a sequence."""
        if self.intact_replies_first:
            self.intact_replies_first -= 1
            return reply
        if self.drop_next_replies:
            self.drop_next_replies -= 1
            return b""
        if self.wrong_address_next_replies:
            self.wrong_address_next_replies -= 1
            reply = as_wrong_address
        raw = self.garbage_before_reply + reply
        self.garbage_before_reply = b""
        if self.truncate_next_replies:
            self.truncate_next_replies -= 1
            raw = raw[: max(1, len(raw) // 2)]
        return raw


class PtyPort:
    """A pty served by a thread. ``path`` is the symlink if one was asked for, else the device.

    The master side's reads are real I/O; time inside the device comes from its own clock.
    """

    def __init__(self, device: ByteDevice, *, link: Path | None = None) -> None:
        self._device = device
        self._link = link
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._master: int | None = None
        self._slave: int | None = None
        self._device_path = ""
        self._thread: threading.Thread | None = None
        self._open_pty()
        self._thread = threading.Thread(target=self._serve, name="pty-emulator", daemon=True)
        self._thread.start()

    @property
    def device_path(self) -> str:
        """The pty's own device (``/dev/pts/N``); it changes on every replug."""
        return self._device_path

    @property
    def path(self) -> str:
        """Where a host should open the port: the symlink if there is one."""
        return str(self._link) if self._link is not None else self._device_path

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        # Raw from the start: no echo, no CR/NL translation, before any host has opened it.
        tty.setraw(slave)
        os.set_blocking(master, False)
        with self._lock:
            self._master, self._slave = master, slave
            self._device_path = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".tmp")
            try:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(self._device_path)
                os.replace(tmp, self._link)
            except OSError as exc:
                with self._lock:
                    self._master = self._slave = None
                os.close(master)
                os.close(slave)
                raise ConfigError(f"cannot link {self._link} to the emulator's pty: "
                                  f"{exc.strerror}") from None

    def _close_pty(self) -> None:
        with self._lock:
            master, slave = self._master, self._slave
            self._master = self._slave = None
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()

    def unplug(self) -> None:
        """Take the port away: the host's reads and writes fail; the symlink disappears."""
        self._close_pty()

    def replug(self) -> None:
        """A fresh pty behind the same symlink; the device keeps its state."""
        if self._master is None:
            self._open_pty()

    def _serve(self) -> None:
        while not self._stop.is_set():
            # The lock spans select and read so unplug() never closes an fd mid-read, and a
            # closed fd number reused by someone else is never read from.
            with self._lock:
                data = self._read_master()
            out = self._device.on_bytes(data) if data else b""
            out += self._device.poll()
            if out:
                self._send(out)
            if self._master is None:
                self._stop.wait(POLL_INTERVAL_S)

    def _read_master(self) -> bytes:
        if self._master is None:
            return b""
        try:
            ready, _, _ = select.select([self._master], [], [], POLL_INTERVAL_S)
            return os.read(self._master, _READ_CHUNK) if ready else b""
        except OSError:
            # EIO while no host holds the slave open: nothing to read yet.
            return b""

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            with self._lock:
                if self._master is None:
                    return  # unplugged: the bytes go nowhere, as on a pulled cable
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    written = 0
                except OSError:
                    return
            view = view[written:]
            if not written:
                self._stop.wait(POLL_INTERVAL_S)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close_pty()

    def __enter__(self) -> PtyPort:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
