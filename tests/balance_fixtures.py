"""Shared by the balance tests: a beaker filled at a known rate, an emulated balance on a pty
read by the production driver, and a scripted device for (sent, reply) pairs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from drivers.balance.mt_sics_balance import MtSicsBalance
from drivers.sim.balance_emulator import BalanceEmulator
from drivers.sim.pty_port import PtyPort
from vasopilot.core.clock import Clock, VirtualClock
from vasopilot.core.config import BalanceEmulatorSettings


class Beaker:
    """Fluid arriving at a constant ``rate_ml_h`` from ``clock``'s start (an ``Outflow``)."""

    def __init__(self, clock: Clock, rate_ml_h: float) -> None:
        self._clock = clock
        self._t0 = clock.now_s()
        self.rate_ml_h = rate_ml_h

    @property
    def outflow_volume_ml(self) -> float:
        return self.rate_ml_h * (self._clock.now_s() - self._t0) / 3600.0


QUIET = BalanceEmulatorSettings(noise_mg=0.0, evaporation_mg_min=0.0, settling_s=0.0)


@contextmanager
def emulated_balance(clock: VirtualClock, *, rate_ml_h: float = 0.0,
                     settings: BalanceEmulatorSettings = QUIET,
                     timeout_s: float = 0.3) -> Iterator[tuple[MtSicsBalance, BalanceEmulator]]:
    emulator = BalanceEmulator(clock, Beaker(clock, rate_ml_h), settings, density_g_ml=1.0)
    with PtyPort(emulator) as port:
        balance = MtSicsBalance(port.path, clock=clock, timeout_s=timeout_s)
        try:
            yield balance, emulator
        finally:
            balance.close()


@dataclass
class ScriptedBalance:
    """Answers each expected command line with its scripted reply; anything else is kept in
    ``unexpected`` (pymeasure's expected_protocol, on a pty)."""

    script: list[tuple[bytes, bytes]]
    unexpected: list[bytes] = field(default_factory=list)
    _buf: bytearray = field(default_factory=bytearray)

    def on_bytes(self, data: bytes) -> bytes:
        self._buf.extend(data)
        out = b""
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            if self.script and self.script[0][0] == line:
                out += self.script.pop(0)[1]
            else:
                self.unexpected.append(line)
        return out

    def poll(self) -> bytes:
        return b""


@contextmanager
def scripted(pairs: Sequence[tuple[bytes, bytes]], clock: Clock) -> Iterator[
        tuple[MtSicsBalance, ScriptedBalance]]:
    device = ScriptedBalance(list(pairs))
    with PtyPort(device) as port:
        balance = MtSicsBalance(port.path, clock=clock, timeout_s=0.3)
        try:
            yield balance, device
        finally:
            balance.close()
