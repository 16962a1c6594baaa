"""The bridge firmware under CPython: the same logic behind a simulated HAL, on a pty.

:class:`BridgeEmulator` is a :class:`~drivers.sim.pty_port.ByteDevice`: bytes from the host go
to :class:`~firmware_bridge.firmware.logic.Firmware` exactly as on the Pico, and time comes
from a :class:`~vasopilot.core.clock.Clock` (virtual in tests, monotonic for
``vasopilot emulate bridge``). Between two calls the emulator runs the firmware's main loop
at the instants it asks for (:meth:`Firmware.wake_us`), so an hour of virtual time costs a few
thousand passes, and :class:`SimPio` executes the step program's period arithmetic (pull a
period or repeat the last, rise ``EDGE_BEFORE_END`` cycles before its end) cycle by cycle in
closed form. The input pins come from a syringe-physics twin (``SimSyringePump``, handed in by
the rig assembly: this package never imports ``drivers.sim``), which the step rate drives.

Fault levers (:attr:`BridgeEmulator.faults` and methods): power-on reset, a main loop that
hangs (the watchdog resets the chip), a stuck PIO, dropped and corrupted frames either way,
stall, plunger out. Every boot is recorded (:attr:`BridgeEmulator.boots`): when it was alive,
what the motor was commanded to do, and which requests it executed, for the tests.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

from firmware_bridge import protocol as p
from firmware_bridge.firmware import logic
from firmware_bridge.firmware.logic import Firmware, Hal
from vasopilot.core.clock import Clock
from vasopilot.core.errors import PumpError
from vasopilot.core.interfaces import Pump
from vasopilot.core.units import UL_PER_ML

SECONDS_PER_HOUR = 3600.0
# From reset to the firmware's first pass: ROM, MicroPython start-up, imports.
BOOT_S = 0.4
WATCHDOG_US = logic.WATCHDOG_TIMEOUT_MS * 1000


class SimPio:
    """The step state machine's timing: the period arithmetic of ``step_pio.PROGRAM``."""

    def __init__(self) -> None:
        self.fifo: deque[int] = deque()
        self.active = False
        self.frozen = False
        self.count = 0
        self._x = 0
        self._period_start = 0
        self._y = 0
        self._edge_done = False
        self.edges_us: list[int] | None = None  # set to a list to record every edge

    def push(self, y: int) -> None:
        if len(self.fifo) >= logic.FIFO_DEPTH:
            raise RuntimeError("PIO FIFO overflow: the firmware pushed into a full FIFO")
        self.fifo.append(y)

    def start(self, t_us: int) -> None:
        self.active = True
        self._period_start = t_us
        self._pull()

    def stop(self) -> None:
        self.active = False
        self.fifo.clear()

    def _pull(self) -> None:
        # pull noblock: the FIFO's next word, or X (the last period) when it is empty
        self._x = self.fifo.popleft() if self.fifo else self._x
        self._y = self._x
        self._edge_done = False

    def advance(self, t_us: int) -> None:
        """Run the program up to ``t_us`` (edges at or before it are counted)."""
        while self.active and not self.frozen:
            end = self._period_start + self._y + logic.OVERHEAD_CYCLES
            edge = end - logic.EDGE_BEFORE_END
            if not self._edge_done:
                if edge > t_us:
                    return
                self.count += 1
                self._edge_done = True
                if self.edges_us is not None:
                    self.edges_us.append(edge)
            if end > t_us:
                return
            self._period_start = end
            self._pull()


@dataclass
class Segment:
    """The motor commanded at ``rate_q16`` in ``direction`` from ``t0_s`` to ``t1_s``."""

    t0_s: float
    direction: int
    rate_q16: int
    t1_s: float | None = None


@dataclass
class Boot:
    """One life of the chip, from the end of boot to a reset (``down_s``, None while alive)."""

    cause: int
    up_s: float
    down_s: float | None = None
    steps: int = 0
    segments: list[Segment] = field(default_factory=list)
    executed: list[tuple[int, int, int, bytes]] = field(default_factory=list)


@dataclass
class LinkFaults:
    """Frame faults, applied per frame: seeded random rates and counted one-shots."""

    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    drop_next_rx: int = 0
    drop_next_tx: int = 0
    # this many host frames get through before ``drop_next_rx`` applies (to hit one request
    # in the middle of an exchange)
    intact_rx_first: int = 0
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def shape(self, frame: bytes, *, rx: bool) -> bytes:
        if rx and self.drop_next_rx:
            if self.intact_rx_first:
                self.intact_rx_first -= 1
                return frame
            self.drop_next_rx -= 1
            return b""
        if not rx and self.drop_next_tx:
            self.drop_next_tx -= 1
            return b""
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return b""
        if self.corrupt_rate and len(frame) > 1 and self.rng.random() < self.corrupt_rate:
            data = bytearray(frame)
            i = self.rng.randrange(len(data) - 1)  # never the delimiter itself
            data[i] ^= 1 << self.rng.randrange(8)
            return bytes(data)
        return frame


class _Framer:
    """Cuts a byte stream at the delimiter so faults apply to whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def frames(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        out: list[bytes] = []
        while True:
            i = self._buf.find(0)
            if i < 0:
                return out
            out.append(bytes(self._buf[: i + 1]))
            del self._buf[: i + 1]


class SimHal(Hal):
    """The chip as the firmware sees it, on the emulator's time line."""

    def __init__(self, emulator: BridgeEmulator, cause: int, t_us: int) -> None:
        self._emu = emulator
        self._cause = cause
        self.t_us = t_us
        self.fed_us = t_us
        self.rx = bytearray()
        self.tx = bytearray()
        self.pio = SimPio()
        self.alarm_output = False
        self._withdraw_from: int | None = None

    def now_us(self) -> int:
        return self.t_us

    def reset_cause(self) -> int:
        return self._cause

    def random_u32(self) -> int:
        return self._emu.rng.getrandbits(32)

    def read(self) -> bytes:
        data = bytes(self.rx)
        self.rx.clear()
        return data

    def write(self, data: bytes) -> None:
        self.tx.extend(data)

    def pio_stop(self) -> None:
        self.pio.advance(self.t_us)
        self.pio.stop()
        self._emu._motion(self, None)

    def pio_start(self, direction: int, rate_q16: int) -> None:
        self.pio.start(self.t_us)
        self._emu._motion(self, (direction, rate_q16))

    def pio_push(self, y: int) -> None:
        self.pio.push(y)

    def pio_level(self) -> int:
        return len(self.pio.fifo)

    def step_count(self) -> int:
        self.pio.advance(self.t_us)
        return self.pio.count

    def inputs(self) -> int:
        return self._emu._inputs()

    def set_alarm(self, on: bool) -> None:
        self.alarm_output = on

    def watchdog_feed(self) -> None:
        self.fed_us = self.t_us

    def scratch_read(self) -> list[int]:
        return list(self._emu.scratch)

    def scratch_write(self, words: list[int]) -> None:
        self._emu.scratch = list(words)


class _RecordingFirmware(Firmware):
    """The firmware unchanged, with each executed request written down for the tests."""

    def __init__(self, hal: Hal, boot: Boot) -> None:
        self._boot_record = boot
        super().__init__(hal)

    def _execute(self, frame: p.Frame) -> p.Message:
        self._boot_record.executed.append((frame.link, frame.seq, frame.msg_type, frame.body))
        return super()._execute(frame)


class BridgeEmulator:
    """The Pico running the bridge firmware, with a syringe drive behind it: ``physics`` (a
    ``SimSyringePump`` in the rig assembly) moves ``microstep_ul`` per step."""

    def __init__(self, clock: Clock, physics: Pump, *, microstep_ul: float,
                 seed: int = 0) -> None:
        if microstep_ul <= 0:
            raise ValueError(f"a microstep must move some volume, got {microstep_ul} µL")
        self._clock = clock
        self.physics = physics
        self.microstep_ul = microstep_ul
        self.rng = random.Random(seed)
        self.faults = LinkFaults(seed=seed + 1)
        self.scratch = [0, 0, 0, 0]
        self._boots: list[Boot] = []
        self.plunger_present = True
        self._lock = threading.RLock()
        self._rx_framer = _Framer()
        self._tx_framer = _Framer()
        self._hung = False
        self._fw: Firmware | None = None
        self._hal: SimHal | None = None
        self._origin_s = 0.0
        self._up_at_s = clock.now_s()
        self._next_cause = p.RESET_POWER_ON
        self._advance()

    # -- ByteDevice ------------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> bytes:
        with self._lock:
            self._advance()
            if self._fw is None or self._hal is None:
                return b""  # in reset: the bytes fall on a dead USB port
            for frame in self._rx_framer.frames(data):
                self._hal.rx.extend(self.faults.shape(frame, rx=True))
            if not self._hung:
                self._fw.service()
            return self._take_tx()

    def poll(self) -> bytes:
        with self._lock:
            self._advance()
            return self._take_tx()

    # -- levers ----------------------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power off and on now: the scratch registers are lost, the firmware boots stopped."""
        with self._lock:
            self._advance()
            self._reset(self._clock.now_s(), p.RESET_POWER_ON)
            self.scratch = [0, 0, 0, 0]

    def hang_main_loop(self, hung: bool = True) -> None:
        """The main loop stops (the PIO runs on); the watchdog resets the chip after its
        timeout, unless the loop comes back first."""
        with self._lock:
            self._advance()
            self._hung = hung

    def hang_pio(self) -> None:
        """The step state machine stops stepping; the loop notices and stops the watchdog."""
        with self._lock:
            self._advance()
            if self._hal is not None:
                self._hal.pio.frozen = True

    def remove_plunger(self, removed: bool = True) -> None:
        with self._lock:
            self._advance()
            self.plunger_present = not removed

    # -- what the tests read ---------------------------------------------------------------------

    @property
    def boots(self) -> list[Boot]:
        """Every boot so far, up to the clock's present."""
        with self._lock:
            self._advance()
            return list(self._boots)

    @property
    def alive(self) -> bool:
        with self._lock:
            self._advance()
            return self._fw is not None

    @property
    def alarm_output(self) -> bool:
        with self._lock:
            self._advance()
            return self._hal is not None and self._hal.alarm_output

    def firmware_status(self) -> p.Status | None:
        with self._lock:
            self._advance()
            return None if self._fw is None else self._fw.status()

    def record_edges(self) -> list[int]:
        """From now on, every step edge of this boot, in µs of MCU time."""
        with self._lock:
            self._advance()
            assert self._hal is not None
            self._hal.pio.edges_us = []
            return self._hal.pio.edges_us

    def steps_now(self) -> int:
        """Steps of the boot now alive (0 while in reset)."""
        with self._lock:
            self._advance()
            return 0 if self._hal is None else self._hal.step_count()

    @property
    def mcu_origin_s(self) -> float:
        """Clock time of this boot's MCU time zero (the reset)."""
        return self._origin_s

    # -- the simulation --------------------------------------------------------------------------

    def _us(self, t_s: float) -> int:
        return round((t_s - self._origin_s) * 1e6)

    def _s(self, t_us: int) -> float:
        return self._origin_s + t_us / 1e6

    def _advance(self) -> None:
        """Bring chip and firmware up to the clock's present."""
        target_s = self._clock.now_s()
        while True:
            fw, hal = self._fw, self._hal
            if fw is None or hal is None:
                if target_s < self._up_at_s:
                    return
                self._come_up()
                continue
            target = self._us(target_s)
            deadline = min(target, hal.fed_us + WATCHDOG_US)
            if not self._hung:
                wake = fw.wake_us()
                while wake < deadline:
                    self._run_to(hal, wake)
                    fw.service()
                    deadline = min(target, hal.fed_us + WATCHDOG_US)
                    wake = fw.wake_us()
            self._run_to(hal, deadline)
            if deadline == target:
                if not self._hung:
                    fw.service()
                if target < hal.fed_us + WATCHDOG_US:
                    return
            self._reset(self._s(hal.t_us), p.RESET_WATCHDOG)

    def _run_to(self, hal: SimHal, t_us: int) -> None:
        hal.t_us = max(hal.t_us, t_us)
        hal.pio.advance(hal.t_us)

    def _come_up(self) -> None:
        self._origin_s = self._up_at_s - BOOT_S
        boot = Boot(cause=self._next_cause, up_s=self._up_at_s)
        self._boots.append(boot)
        hal = SimHal(self, self._next_cause, self._us(self._up_at_s))
        self._hal = hal
        self._hung = False
        self._fw = _RecordingFirmware(hal, boot)

    def _reset(self, t_s: float, cause: int) -> None:
        hal = self._hal
        if hal is not None:
            hal.t_us = self._us(t_s)
            hal.pio.advance(hal.t_us)
            hal.pio.stop()
            self._motion(hal, None)
            boot = self._boots[-1]
            boot.down_s = t_s
            boot.steps = hal.pio.count
        self._fw = None
        self._hal = None
        self._hung = False
        self._up_at_s = t_s + BOOT_S
        self._next_cause = cause

    def _take_tx(self) -> bytes:
        hal = self._hal
        if hal is None or not hal.tx:
            return b""
        frames = self._tx_framer.frames(bytes(hal.tx))
        out = b"".join(self.faults.shape(f, rx=False) for f in frames)
        hal.tx.clear()
        return out

    def _inputs(self) -> int:
        status = self.physics.status()
        bits = p.INPUT_PLUNGER if self.plunger_present else 0
        if status.stalled:
            bits |= p.INPUT_STALL
        if status.end_of_travel:
            bits |= p.INPUT_END_OF_TRAVEL
        return bits

    def _motion(self, hal: SimHal, run: tuple[int, int] | None) -> None:
        """Record what the motor was commanded and drive the syringe mechanics with it."""
        t_s = self._s(hal.t_us)
        boot = self._boots[-1] if self._boots else None
        if boot is not None and boot.segments and boot.segments[-1].t1_s is None:
            boot.segments[-1].t1_s = t_s
        physics = self.physics
        try:
            if hal._withdraw_from is not None:
                steps = hal.pio.count - hal._withdraw_from
                hal._withdraw_from = None
                # The twin withdraws at its own speed: the volume is what counts here.
                physics.back_off(steps * self.microstep_ul)
            if run is None:
                if physics.status().rate_ml_h > 0:
                    physics.stop()
                return
            direction, rate_q16 = run
            if boot is not None:
                boot.segments.append(Segment(t_s, direction, rate_q16))
            if direction == p.INFUSE:
                rate_ml_h = rate_q16 / p.Q16 * self.microstep_ul * SECONDS_PER_HOUR / UL_PER_ML
                physics.set_rate(physics.capabilities.deliverable_rate_ml_h(rate_ml_h))
            else:
                physics.stop()
                hal._withdraw_from = hal.pio.count
        except PumpError:
            # The twin refuses what its mechanics cannot do; the firmware's steps still count.
            pass
