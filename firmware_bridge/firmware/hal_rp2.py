"""The bridge's HAL on a Raspberry Pi Pico (RP2040) under MicroPython.

Runs on the chip only (it imports ``machine``, ``rp2``, ``micropython``); typed with
``micropython-rp2-stubs``. Pins (GPIO numbers), as wired in the README:

    GP2  STEP out (PIO state machine 0; also the input of the step counter, state machine 1)
    GP3  DIR out (high: infuse)
    GP4  ENABLE out, active low; a 10 kΩ pull-up to 3V3 keeps the driver off while the chip
         is dead or in reset (the RP2040's own ~50 kΩ pull-down would enable it)
    GP5  ALARM_OK out: high while there is no alarm; a pull-down makes a dead chip alarm
    GP6  STALL in (TMC2209 DIAG), active high
    GP7  END_OF_TRAVEL in, switch to ground, active low
    GP8  PLUNGER in, switch to ground when the plunger is clamped, active low
    GP22 MAINTENANCE in: grounded at boot, ``main.py`` leaves the REPL to ``mpremote``

The step program is written here in MicroPython's PIO assembler and must assemble to exactly
the opcodes of :mod:`step_pio` that the host proved cycle by cycle; the HAL refuses to step
otherwise.
"""

import os
import select
import sys

import machine
import rp2
from machine import Pin

from firmware_bridge import protocol as p
from firmware_bridge.firmware import logic, step_pio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rp2.asm_pio import *  # noqa: F403  (the assembler's names, for the type checker)

STEP_PIN = 2
DIR_PIN = 3
ENABLE_PIN = 4
ALARM_OK_PIN = 5
STALL_PIN = 6
END_OF_TRAVEL_PIN = 7
PLUNGER_PIN = 8
MAINTENANCE_PIN = 22

TIMER_BASE = 0x40054000
TIMEHR = TIMER_BASE + 0x08
TIMELR = TIMER_BASE + 0x0C  # reading it latches TIMEHR: one consistent 64-bit time
WATCHDOG_SCRATCH0 = 0x40058000 + 0x0C
MAX_READ_PER_PASS = 256
COUNT_CLOCK_HZ = 125_000_000


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW, fifo_join=rp2.PIO.JOIN_TX)
def step_program() -> None:
    pull(noblock)  # noqa: F405
    mov(x, osr)  # noqa: F405
    mov(y, x)  # noqa: F405
    label("delay")  # noqa: F405
    jmp(y_dec, "delay")  # noqa: F405
    set(pins, 1)[2]  # noqa: F405
    set(pins, 0)  # noqa: F405


@rp2.asm_pio()
def count_program() -> None:
    mov(x, invert(null))  # noqa: F405
    label("wait")  # noqa: F405
    wait(1, pin, 0)  # noqa: F405
    wait(0, pin, 0)  # noqa: F405
    jmp(x_dec, "count")  # noqa: F405
    label("count")  # noqa: F405
    mov(isr, invert(x))  # noqa: F405
    push(noblock)  # noqa: F405
    jmp("wait")  # noqa: F405


def _assembled(program: object) -> "list[int]":
    return list(program[0])  # type: ignore[index]


class Rp2Hal(logic.Hal):
    def __init__(self) -> None:
        if (_assembled(step_program) != list(step_pio.STEP_PROGRAM)
                or _assembled(count_program) != list(step_pio.COUNT_PROGRAM)):
            raise RuntimeError("the PIO programs do not assemble to the proven opcodes")
        self._step = Pin(STEP_PIN, Pin.OUT, value=0)
        self._dir = Pin(DIR_PIN, Pin.OUT, value=1)
        self._enable = Pin(ENABLE_PIN, Pin.OUT, value=1)
        self._alarm_ok = Pin(ALARM_OK_PIN, Pin.OUT, value=1)
        self._stall = Pin(STALL_PIN, Pin.IN, Pin.PULL_DOWN)
        self._end = Pin(END_OF_TRAVEL_PIN, Pin.IN, Pin.PULL_UP)
        self._plunger = Pin(PLUNGER_PIN, Pin.IN, Pin.PULL_UP)
        self._sm = rp2.StateMachine(0)
        self._init_step()
        self._counter = rp2.StateMachine(1, count_program, freq=COUNT_CLOCK_HZ,
                                         in_base=self._step)
        self._counter.active(1)
        self._count = 0
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        cause = machine.reset_cause()
        self._cause = (p.RESET_WATCHDOG if cause == machine.WDT_RESET
                       else p.RESET_POWER_ON if cause == machine.PWRON_RESET else p.RESET_OTHER)
        self._wdt = machine.WDT(timeout=logic.WATCHDOG_TIMEOUT_MS)

    def _init_step(self) -> None:
        # init() also empties the FIFO: queued periods of a run that ended must not step.
        self._sm.init(step_program, freq=logic.STEP_CLOCK_HZ, set_base=self._step)

    def now_us(self) -> int:
        low = machine.mem32[TIMELR]
        high = machine.mem32[TIMEHR]
        return int((high << 32) | low)

    def reset_cause(self) -> int:
        return self._cause

    def random_u32(self) -> int:
        return int.from_bytes(os.urandom(4), "little")

    def read(self) -> bytes:
        data = bytearray()
        while len(data) < MAX_READ_PER_PASS and self._poll.poll(0):
            data.extend(sys.stdin.buffer.read(1))
        return bytes(data)

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def pio_stop(self) -> None:
        self._sm.active(0)
        self._init_step()
        self._sm.exec("set(pins, 0)")
        self._enable.value(1)

    def pio_start(self, direction: int, rate_q16: int) -> None:
        self._dir.value(1 if direction == p.INFUSE else 0)
        self._enable.value(0)
        self._sm.active(1)

    def pio_push(self, y: int) -> None:
        self._sm.put(y)

    def pio_level(self) -> int:
        return self._sm.tx_fifo()

    def step_count(self) -> int:
        while self._counter.rx_fifo():
            self._count = self._counter.get()
        return self._count

    def inputs(self) -> int:
        bits = 0
        if self._stall.value():
            bits |= p.INPUT_STALL
        if not self._end.value():
            bits |= p.INPUT_END_OF_TRAVEL
        if not self._plunger.value():
            bits |= p.INPUT_PLUNGER
        return bits

    def set_alarm(self, on: bool) -> None:
        self._alarm_ok.value(0 if on else 1)

    def watchdog_feed(self) -> None:
        self._wdt.feed()

    def scratch_read(self) -> "list[int]":
        return [int(machine.mem32[WATCHDOG_SCRATCH0 + 4 * i]) & 0xFFFFFFFF for i in range(4)]

    def scratch_write(self, words: "list[int]") -> None:
        for i in range(4):
            machine.mem32[WATCHDOG_SCRATCH0 + 4 * i] = words[i]
