"""Running under systemd: ``READY=1`` at start, ``WATCHDOG=1`` only while the rig loop steps.

The sd_notify protocol is one datagram per message to the Unix socket in ``$NOTIFY_SOCKET``
(``@name`` is the abstract namespace). :class:`LoopWatchdog` proves the supervisor loop alive
by handing it a mark through :meth:`RigLoop.submit`: the mark runs only if the loop takes
another step, so a hung or dead loop stops the pings and systemd restarts the service
(``WatchdogSec=``), while the pump does what its driver's host-loss contract says (S12: keeps
its last rate, or stops after its safe-mode timeout), on its own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from vasopilot.core.clock import Clock
from vasopilot.runtime import RigLoop


class SystemdNotifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send ``message`` (e.g. ``"READY=1"``); whether it was sent."""
        if self.address is None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self.address)
            except OSError:
                return False
        return True


class LoopWatchdog:
    """Pings systemd's watchdog only while ``loop`` keeps stepping.

    Call :meth:`tick` every ``interval_s`` (half of ``WatchdogSec`` is systemd's advice); a
    ping is sent when the loop ran a mark within ``max_age_s`` seconds of ``clock``.
    """

    def __init__(self, loop: RigLoop, notifier: SystemdNotifier, clock: Clock, *,
                 max_age_s: float) -> None:
        self._loop = loop
        self._notifier = notifier
        self._clock = clock
        self._max_age_s = max_age_s
        self._alive_s: float | None = None
        self._mark_pending = False
        self.pings = 0

    def _mark(self, _now_s: float) -> None:
        self._mark_pending = False
        self._alive_s = self._clock.now_s()

    def tick(self) -> bool:
        """Ask the loop for a fresh mark and ping if the last one is recent; whether it pinged."""
        if not self._mark_pending:
            # One mark at a time: a hung loop must not pile up an inbox of them.
            self._mark_pending = True
            self._loop.submit(self._mark)
        alive_s = self._alive_s
        if alive_s is None or self._clock.now_s() - alive_s > self._max_age_s:
            return False
        if self._notifier.notify("WATCHDOG=1"):
            self.pings += 1
            return True
        return False

    async def run(self, interval_s: float) -> None:
        """Tick every ``interval_s`` seconds until cancelled."""
        while True:
            self.tick()
            await self._clock.sleep_async(interval_s)
