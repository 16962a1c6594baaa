"""An MT-SICS balance as seen from its serial port, weighing a pump twin's outflow.

The beaker on the pan holds ``beaker_g`` plus the fluid that left the pump's line
(``density_g_ml`` × its outflow volume), minus what evaporated (``evaporation_mg_min``). The
weighing cell follows that load with a first-order lag (``settling_s``, solved exactly for the
load's straight-line course between two readings), adds seeded Gaussian noise (``noise_mg``)
and shows the result rounded to its readability (0.1 mg, 0.01 mg…). The reading is stable
while the cell is within one digit of the load, so a steady flow at 1 mL/h reads dynamic and
``S`` answers ``S I``: use ``SI``, as the manual says for timed samples.

Commands (MT-SICS level 0 and a little of level 1): ``@``, ``I0``, ``I1``, ``I2``, ``I4``,
``S``, ``SI``, ``Z``, ``T``; anything else answers ``ES``. Fault levers are on
:attr:`BalanceEmulator.faults`: the next reply ``ET``/``EL``/``S I``, overload and underload,
a dropped reply, a late reply (held until the emulator's clock has moved on by a delay).

A pty cannot do 7-bit even parity; the emulator is 8N1 at any nominal baud.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from drivers.balance.mt_sics import Stability, format_command_list, format_weight
from drivers.sim.bedside import Outflow
from vasopilot.core.clock import Clock
from vasopilot.core.config import BalanceEmulatorSettings

MG_PER_G = 1000.0
MAX_LINE_BYTES = 128
COMMANDS = ((0, "I0"), (0, "I1"), (0, "I2"), (0, "I4"), (0, "S"), (0, "SI"), (0, "Z"),
            (0, "@"), (1, "T"))


@dataclass
class BalanceFaults:
    """Test levers of a :class:`BalanceEmulator`; each ``*_next`` applies to the next reply."""

    error_next: str | None = None
    busy_next: int = 0
    overload: bool = False
    underload: bool = False
    drop_next: int = 0
    late_next_s: float = 0.0


class BalanceEmulator:
    """A balance on a pty (see the module doc); satisfies ``drivers.sim.pty_port.ByteDevice``.

    ``received`` lists every command line; ``overlapped`` counts commands that arrived while a
    late reply was still held (a driver with more than one command outstanding).
    """

    def __init__(self, clock: Clock, beaker: Outflow, settings: BalanceEmulatorSettings, *,
                 density_g_ml: float = 0.998, serial_number: str = "0123456789") -> None:
        self._clock = clock
        self._beaker = beaker
        self.settings = settings
        self.density_g_ml = density_g_ml
        self.serial_number = serial_number
        self.faults = BalanceFaults()
        self.received: list[str] = []
        self.overlapped = 0
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._rng = random.Random(settings.seed)
        self._decimals = max(0, round(-math.log10(settings.readability_mg / MG_PER_G)))
        self._zero_g = 0.0
        self._tare_g = 0.0
        self._t0_s = clock.now_s()
        self._t_s = self._t0_s
        self._load_g = self._true_load_g(self._t0_s)
        self._cell_g = self._load_g
        self._held: tuple[float, str] | None = None

    # -- ByteDevice ----------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> bytes:
        with self._lock:
            self._buf.extend(data)
            out = bytearray()
            while (end := self._buf.find(b"\n")) >= 0:
                line = bytes(self._buf[:end]).rstrip(b"\r").decode("ascii", errors="replace")
                del self._buf[: end + 1]
                out += self._serve(line)
            if len(self._buf) > MAX_LINE_BYTES:
                self._buf.clear()  # the balance's input buffer overflowed: the line is lost
            return bytes(out)

    def poll(self) -> bytes:
        with self._lock:
            if self._held is None or self._clock.now_s() < self._held[0]:
                return b""
            command = self._held[1]
            self._held = None
            return self._answer(command)

    # -- the physics ---------------------------------------------------------------------------

    def true_load_g(self) -> float:
        """What lies on the pan now, in g (beaker, fluid, minus evaporation)."""
        with self._lock:
            return self._true_load_g(self._clock.now_s())

    def _true_load_g(self, t_s: float) -> float:
        fluid_g = self.density_g_ml * self._beaker.outflow_volume_ml
        evaporated_g = self.settings.evaporation_mg_min * (t_s - self._t0_s) / 60.0 / MG_PER_G
        return self.settings.beaker_g + fluid_g - evaporated_g

    def _settle(self) -> None:
        """Move the cell to now: exact first-order response to a load ramping linearly."""
        t_s = self._clock.now_s()
        dt_s = t_s - self._t_s
        load_g = self._true_load_g(t_s)
        tau = self.settings.settling_s
        if dt_s <= 0:
            return
        if tau <= 0:
            self._cell_g = load_g
        else:
            slope = (load_g - self._load_g) / dt_s
            lag = slope * tau
            self._cell_g = load_g - lag + (self._cell_g - self._load_g + lag) * \
                math.exp(-dt_s / tau)
        self._t_s, self._load_g = t_s, load_g

    def _reading(self) -> tuple[float, Stability]:
        self._settle()
        step_g = self.settings.readability_mg / MG_PER_G
        noisy = self._cell_g + self._rng.gauss(0.0, self.settings.noise_mg / MG_PER_G)
        shown = round((noisy - self._zero_g - self._tare_g) / step_g) * step_g
        settled = abs(self._cell_g - self._load_g) <= step_g
        return shown, Stability.STABLE if settled else Stability.DYNAMIC

    # -- commands ------------------------------------------------------------------------------

    def _serve(self, line: str) -> bytes:
        self.received.append(line)
        faults = self.faults
        if self._held is not None:
            self.overlapped += 1
        if faults.drop_next:
            faults.drop_next -= 1
            return b""
        if faults.error_next is not None:
            code, faults.error_next = faults.error_next, None
            return code.encode("ascii") + b"\r\n"
        if faults.late_next_s > 0:
            self._held = (self._clock.now_s() + faults.late_next_s, line)
            faults.late_next_s = 0.0
            return b""
        return self._answer(line)

    def _answer(self, line: str) -> bytes:
        fields = line.split()
        command = fields[0] if fields else ""
        if command in ("S", "SI"):
            return self._weight(command)
        if command in ("@", "I4"):
            return f'I4 A "{self.serial_number}"\r\n'.encode("ascii")
        if command == "I0":
            return format_command_list(COMMANDS)
        if command == "I1":
            return b'I1 A "0123" "2.20" "2.12" "2.00" "1.00"\r\n'
        if command == "I2":
            capacity = f"{self.settings.capacity_g:.{self._decimals}f}"
            return f'I2 A "vasopilot emulated balance {capacity} g"\r\n'.encode("ascii")
        if command == "Z":
            shown, stability = self._reading()
            if stability is not Stability.STABLE:
                return b"Z I\r\n"
            self._zero_g += shown
            return b"Z A\r\n"
        if command == "T":
            shown, stability = self._reading()
            if stability is not Stability.STABLE:
                return b"T I\r\n"
            self._tare_g += shown
            return f"T S {self._tare_g:10.{self._decimals}f} g\r\n".encode("ascii")
        return b"ES\r\n"

    def _weight(self, command: str) -> bytes:
        faults = self.faults
        shown, stability = self._reading()
        busy = faults.busy_next > 0 or (command == "S" and stability is not Stability.STABLE)
        if faults.busy_next:
            faults.busy_next -= 1
        over = faults.overload or self._load_g > self.settings.capacity_g
        return format_weight(shown, stability, self._decimals, busy=busy, overload=over,
                             underload=faults.underload)
