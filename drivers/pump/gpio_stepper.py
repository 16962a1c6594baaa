"""A lead-screw syringe pump driven by a stepper driver chip (A4988, DRV8825, TMC2209) on GPIO.

STEP, DIR and EN outputs go through gpiozero, so the same code runs on a Pi (lgpio pin factory
on a Pi 5, any real factory on a Pi 4) and against gpiozero's ``MockFactory`` in tests. Steps
are timed by :class:`~drivers.pump.step_schedule.StepSchedule`; a dedicated thread issues them
on the monotonic clock, or, with ``run_thread=False``, :meth:`GpioStepperPump.service` issues
the steps due by a given time so a virtual clock can drive the pump deterministically.

Delivered volume is counted from issued steps: a stalled motor or a slipping coupling is not
seen here (that needs the force or line-pressure sensor, which is not this driver's job).
The process is the step generator, so when the host dies the motor simply stops
(``HostLossBehaviour.STOPS_SILENTLY``); the driver board's enable line must be pulled to its
disabled level in hardware, because between boot and our start nobody drives it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.pump.step_schedule import Direction, StepSchedule
from vasopilot.core.clock import Clock, VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.errors import ConfigError, PumpConnectionError, PumpError, PumpRefusedError
from vasopilot.core.types import (
    HostLossBehaviour,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
)
from vasopilot.core.units import (
    MINUTES_PER_HOUR,
    SECONDS_PER_MIN,
    UL_PER_ML,
    volume_per_microstep_ul,
)

SECONDS_PER_HOUR = SECONDS_PER_MIN * MINUTES_PER_HOUR

DriverChip = Literal["a4988", "drv8825", "tmc2209"]

# Microstep-select levels per microstep factor, pins in data-sheet order (MS1, MS2[, MS3]).
MICROSTEP_LEVELS: dict[DriverChip, dict[int, tuple[bool, ...]]] = {
    "a4988": {
        1: (False, False, False),
        2: (True, False, False),
        4: (False, True, False),
        8: (True, True, False),
        16: (True, True, True),
    },
    "drv8825": {
        1: (False, False, False),
        2: (True, False, False),
        4: (False, True, False),
        8: (True, True, False),
        16: (False, False, True),
        32: (True, False, True),
    },
    "tmc2209": {8: (False, False), 16: (True, True), 32: (True, False), 64: (False, True)},
}

ALARM_END_OF_TRAVEL = PumpAlarm.END_OF_TRAVEL
ALARM_STALL = PumpAlarm.STALL
ALARM_NO_PLUNGER = PumpAlarm.NO_PLUNGER
ALARM_EMPTY = PumpAlarm.EMPTY
ALARM_STEP_THREAD = PumpAlarm.STEP_THREAD

# Rates are kept to 1 µL/h: finer than any dose step the supervisor makes, coarser than float noise.
RESOLUTION_ML_H = 0.001
# Below this a 50 mL syringe moves one microstep every several minutes: not a useful infusion.
MIN_RATE_ML_H = 0.01
LATENESS_WINDOW = 8192


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One issued step: when it was due and when the STEP pulse went out (clock seconds)."""

    due_s: float
    issued_s: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class StepTiming:
    """How late the step thread issued its most recent steps, in microseconds."""

    steps: int
    median_late_us: float
    p99_late_us: float
    max_late_us: float


def real_pin_factory() -> Any:
    """A hardware pin factory: lgpio (Pi 5 and older), else RPi.GPIO (Pi 4 and older).

    gpiozero's own default would honour ``GPIOZERO_PIN_FACTORY=mock`` or fall back to the
    native factory; a pump must never end up stepping a mock because a library was missing.
    """
    failures: list[str] = []
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except Exception as exc:  # any import or chip-open failure means "not this factory"
        failures.append(f"lgpio: {exc}")
    try:
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    except Exception as exc:
        failures.append(f"RPi.GPIO: {exc}")
    raise PumpConnectionError(f"no real GPIO pin factory could be opened ({'; '.join(failures)})")


class GpioStepperPump:
    """A stepper syringe pump on GPIO pins; satisfies :class:`vasopilot.core.interfaces.Pump`.

    ``step_pin``, ``dir_pin``, ``enable_pin``: outputs (BCM numbers or gpiozero pin names).
    ``ms_pins``: optional microstep-select outputs, set for ``mechanics.microsteps`` from the
    ``driver_chip`` table; without them the jumpers must match ``mechanics.microsteps``.
    ``end_of_travel_pin``, ``plunger_pin``: switches to ground with pull-ups (active low);
    ``stall_pin``: an active-high stall output such as a TMC2209's DIAG.
    ``fill_ml``: volume in the syringe at start (default: its nominal volume).
    ``max_step_hz``: fastest step rate the step thread is trusted with; back-off runs at it.
    ``hold_when_stopped``: keep the motor energised while stopped instead of disabling it.
    ``on_step``: called from the stepping thread after each step (for benchmarks).
    """

    def __init__(
        self,
        clock: Clock,
        syringe: SyringeSpec,
        mechanics: MechanicsSettings,
        *,
        step_pin: int | str,
        dir_pin: int | str,
        enable_pin: int | str,
        ms_pins: Sequence[int | str] = (),
        end_of_travel_pin: int | str | None = None,
        plunger_pin: int | str | None = None,
        stall_pin: int | str | None = None,
        pin_factory: Any = None,
        fill_ml: float | None = None,
        run_thread: bool = True,
        driver_chip: DriverChip = "a4988",
        enable_active_low: bool = True,
        infuse_dir_high: bool = True,
        max_step_hz: float = 500.0,
        hold_when_stopped: bool = False,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> None:
        if run_thread and isinstance(clock, VirtualClock):
            raise ValueError("a step thread needs a real-time clock; use run_thread=False")
        fill_ml = syringe.volume_ml if fill_ml is None else fill_ml
        if not 0 <= fill_ml <= syringe.volume_ml:
            raise ConfigError(
                f"fill_ml={fill_ml} must lie within the syringe's 0-{syringe.volume_ml} mL"
            )
        ms_levels = self._microstep_levels(driver_chip, mechanics.microsteps, len(ms_pins))
        self._clock = clock
        self._syringe = syringe
        self._fill_ml = fill_ml
        self._ul_per_step = volume_per_microstep_ul(
            syringe.inner_diameter_mm, mechanics.lead_mm, mechanics.steps_per_rev,
            mechanics.microsteps,
        )
        self._max_step_hz = max_step_hz
        self._infuse_dir_high = infuse_dir_high
        self._hold_when_stopped = hold_when_stopped
        self._on_step = on_step
        self._capabilities = PumpCapabilities(
            min_rate_ml_h=MIN_RATE_ML_H,
            max_rate_ml_h=self._rate_ml_h_from_hz(max_step_hz),
            resolution_ml_h=RESOLUTION_ML_H,
            syringe_volume_ml=syringe.volume_ml,
            host_loss=HostLossBehaviour.STOPS_SILENTLY,
            can_back_off=True,
        )

        factory = real_pin_factory() if pin_factory is None else pin_factory
        self._devices: list[Any] = []
        try:
            # Enable is created first and at its disabled level, so the motor cannot be
            # energised while the other pins are still being set up.
            self._enable = self._track(DigitalOutputDevice(
                enable_pin, active_high=not enable_active_low, initial_value=False,
                pin_factory=factory,
            ))
            self._step = self._track(
                DigitalOutputDevice(step_pin, initial_value=False, pin_factory=factory)
            )
            self._dir = self._track(DigitalOutputDevice(
                dir_pin, initial_value=infuse_dir_high, pin_factory=factory
            ))
            for pin, level in zip(ms_pins, ms_levels, strict=True):
                self._track(DigitalOutputDevice(pin, initial_value=level, pin_factory=factory))
            self._end_of_travel = self._input(end_of_travel_pin, factory, pull_up=True)
            self._plunger = self._input(plunger_pin, factory, pull_up=True)
            self._stall = self._input(stall_pin, factory, pull_up=False)
        except PumpError:
            self._close_devices()
            raise
        except Exception as exc:
            self._close_devices()
            raise PumpConnectionError(f"could not open the pump's GPIO pins: {exc}") from exc

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._schedule = StepSchedule(clock.now_s())
        self._state = PumpState.STOPPED
        self._alarm: PumpAlarm | None = None
        self._closed = False
        self._lateness_s: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._max_late_s = 0.0
        self._late_count = 0
        self._thread: threading.Thread | None = None
        self._thread_error: Exception | None = None
        if run_thread:
            self._thread = threading.Thread(target=self._run, name="step-train", daemon=True)
            self._thread.start()

    # --- Pump protocol ---------------------------------------------------------------------

    @property
    def capabilities(self) -> PumpCapabilities:
        return self._capabilities

    @property
    def ul_per_step(self) -> float:
        """Volume moved by one microstep, in µL."""
        return self._ul_per_step

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (rounded down to the resolution); refuses, never clamps.

        A rate of 0 is :meth:`stop`. A latched alarm, a back-off in progress, an active
        end-of-travel or stall input, a missing plunger or an empty syringe refuse the rate.
        """
        with self._lock:
            self._check_open()
            if not math.isfinite(rate_ml_h) or rate_ml_h < 0:
                raise PumpRefusedError(f"rate must be finite and >= 0, got {rate_ml_h} mL/h")
            if rate_ml_h == 0:
                self._halt(None)
                return self._status()
            caps = self._capabilities
            if not caps.min_rate_ml_h <= rate_ml_h <= caps.max_rate_ml_h:
                raise PumpRefusedError(
                    f"rate {rate_ml_h} mL/h outside {caps.min_rate_ml_h}-{caps.max_rate_ml_h} mL/h"
                )
            if self._alarm is not None:
                raise PumpRefusedError(f"alarm {self._alarm!r} is latched; stop() acknowledges it")
            if self._state is PumpState.BACKING_OFF:
                raise PumpRefusedError("backing off; wait for it to finish or stop()")
            fault = self._infusion_fault()
            if fault is not None:
                raise PumpRefusedError(f"cannot infuse: {fault}")
            steps_left = math.floor(self._remaining_ul() / self._ul_per_step + 1e-9)
            if steps_left <= 0:
                raise PumpRefusedError("the syringe is empty")
            deliverable_ml_h = caps.deliverable_rate_ml_h(rate_ml_h)
            self._move(Direction.INFUSE, self._hz_from_rate_ml_h(deliverable_ml_h), steps_left)
            self._state = PumpState.INFUSING
            return self._status()

    def stop(self) -> PumpStatus:
        """Stop stepping (also a back-off) and acknowledge a latched alarm."""
        with self._lock:
            self._check_open()
            self._halt(None)
            return self._status()

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw by ``volume_ul`` (rounded down to whole steps) at the fastest step rate.

        Infusion stops first; a latched alarm stays latched, so the supervisor still sees why.
        """
        with self._lock:
            self._check_open()
            if not math.isfinite(volume_ul) or volume_ul <= 0:
                raise PumpRefusedError(f"back-off volume must be positive, got {volume_ul} µL")
            empty_barrel_ml = self._syringe.volume_ml - self._fill_ml
            headroom_ul = empty_barrel_ml * UL_PER_ML + self._delivered_ul()
            if volume_ul > headroom_ul:
                raise PumpRefusedError(
                    f"backing off {volume_ul} µL would pull the plunger past the barrel's "
                    f"end ({headroom_ul:.1f} µL left)"
                )
            steps = math.floor(volume_ul / self._ul_per_step + 1e-9)
            if steps == 0:
                return self._status()
            self._move(Direction.WITHDRAW, self._max_step_hz, steps)
            self._state = PumpState.BACKING_OFF
            return self._status()

    def status(self) -> PumpStatus:
        with self._lock:
            return self._status()

    def heartbeat(self) -> None:
        """No hardware watchdog to feed; raises :class:`PumpError` if the step thread died."""
        with self._lock:
            error = self._thread_error
        if error is not None:
            raise PumpError(f"the step thread died: {error!r}") from error

    def close(self) -> None:
        """Stop, disable the motor, end the step thread and release the pins (alarms stay)."""
        with self._lock:
            if self._closed:
                return
            self._halt(self._alarm)
            self._enable.off()
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._close_devices()

    def __enter__(self) -> GpioStepperPump:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- stepping --------------------------------------------------------------------------

    def service(self, now_s: float) -> int:
        """Issue every step due by ``now_s`` (virtual-clock mode); returns how many went out."""
        if self._thread is not None:
            raise RuntimeError("service() is for run_thread=False; the step thread is running")
        with self._lock:
            self._check_open()
            issued = 0
            due_s = self._schedule.next_step_s()
            while due_s is not None and due_s <= now_s:
                if self._issue_step(due_s, due_s):
                    issued += 1
                due_s = self._schedule.next_step_s()
            return issued

    def step_timing(self) -> StepTiming:
        """Lateness of the step thread over its last steps (all zero in service mode)."""
        with self._lock:
            late = sorted(self._lateness_s)
            max_late_s = self._max_late_s
            count = self._late_count
        if not late:
            return StepTiming(steps=0, median_late_us=0.0, p99_late_us=0.0, max_late_us=0.0)
        return StepTiming(
            steps=count,
            median_late_us=late[len(late) // 2] * 1e6,
            p99_late_us=late[min(len(late) - 1, math.ceil(0.99 * len(late)) - 1)] * 1e6,
            max_late_us=max_late_s * 1e6,
        )

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    if self._closed:
                        return
                    due_s = self._schedule.next_step_s()
                    if due_s is None:
                        self._wake.wait()
                        continue
                    wait_s = due_s - self._clock.now_s()
                    if wait_s > 0:
                        # A rate change notifies, so the wait is recomputed at once.
                        self._wake.wait(wait_s)
                        continue
                    issued_s = self._clock.now_s()
                    if self._issue_step(due_s, issued_s):
                        late_s = issued_s - due_s
                        self._lateness_s.append(late_s)
                        self._late_count += 1
                        self._max_late_s = max(self._max_late_s, late_s)
        except Exception as exc:
            # Kept for heartbeat(): an exception escaping a thread is only printed.
            with self._lock:
                self._thread_error = exc
                self._halt(ALARM_STEP_THREAD)

    def _issue_step(self, due_s: float, issued_s: float) -> bool:
        """One STEP pulse if nothing forbids it; caller holds the lock."""
        direction = self._schedule.direction
        # Back-off is the reaction to a stall, so a DIAG still asserted must not block it.
        if direction is Direction.INFUSE:
            fault = self._infusion_fault()
            if fault is not None:
                self._halt(fault)
                return False
        self._schedule.pop_step()
        self._step.on()
        self._step.off()
        if self._on_step is not None:
            self._on_step(StepRecord(due_s=due_s, issued_s=issued_s, direction=direction))
        if self._schedule.run_complete:
            if direction is Direction.INFUSE:
                self._halt(ALARM_EMPTY)
            else:
                self._finish_back_off()
        return True

    def _move(self, direction: Direction, rate_hz: float, max_steps: int) -> None:
        # DIR is settled before EN and before the next STEP edge (setup time is < 1 µs).
        self._dir.value = (direction is Direction.INFUSE) == self._infuse_dir_high
        self._enable.on()
        self._schedule.set_rate(self._clock.now_s(), rate_hz, direction, max_steps)
        self._wake.notify_all()

    def _halt(self, alarm: PumpAlarm | None) -> None:
        """Stop stepping; with ``alarm`` latch it, without acknowledge any latched one."""
        self._schedule.stop(self._clock.now_s())
        if not self._hold_when_stopped or alarm is not None:
            self._enable.off()
        self._alarm = alarm
        self._state = PumpState.STOPPED if alarm is None else PumpState.ALARM
        self._wake.notify_all()

    def _finish_back_off(self) -> None:
        self._schedule.stop(self._clock.now_s())
        if not self._hold_when_stopped or self._alarm is not None:
            self._enable.off()
        self._state = PumpState.STOPPED if self._alarm is None else PumpState.ALARM

    def _infusion_fault(self) -> PumpAlarm | None:
        if self._end_of_travel is not None and self._end_of_travel.is_active:
            return ALARM_END_OF_TRAVEL
        if self._stall is not None and self._stall.is_active:
            return ALARM_STALL
        if self._plunger is not None and not self._plunger.is_active:
            return ALARM_NO_PLUNGER
        return None

    # --- read-back -------------------------------------------------------------------------

    def _status(self) -> PumpStatus:
        infusing = self._state is PumpState.INFUSING
        rate_hz = self._schedule.rate_hz if infusing else 0.0
        return PumpStatus(
            t_s=self._clock.now_s(),
            state=self._state,
            rate_ml_h=round(self._rate_ml_h_from_hz(rate_hz), 9),
            delivered_ml=self._delivered_ul() / UL_PER_ML,
            syringe_remaining_ml=self._remaining_ul() / UL_PER_ML,
            stalled=self._alarm == ALARM_STALL
            or (self._stall is not None and bool(self._stall.is_active)),
            end_of_travel=self._end_of_travel is not None and bool(self._end_of_travel.is_active),
            alarm=self._alarm,
        )

    def _delivered_ul(self) -> float:
        return self._schedule.position_steps * self._ul_per_step

    def _remaining_ul(self) -> float:
        return self._fill_ml * UL_PER_ML - self._delivered_ul()

    def _hz_from_rate_ml_h(self, rate_ml_h: float) -> float:
        return rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR / self._ul_per_step

    def _rate_ml_h_from_hz(self, rate_hz: float) -> float:
        return rate_hz * self._ul_per_step * SECONDS_PER_HOUR / UL_PER_ML

    # --- pins ------------------------------------------------------------------------------

    @staticmethod
    def _microstep_levels(chip: DriverChip, microsteps: int, n_pins: int) -> tuple[bool, ...]:
        if n_pins == 0:
            return ()
        table = MICROSTEP_LEVELS[chip]
        if microsteps not in table:
            raise ConfigError(
                f"mechanics.microsteps={microsteps} cannot be selected on a {chip} "
                f"(choices: {sorted(table)})"
            )
        levels = table[microsteps]
        if n_pins != len(levels):
            raise ConfigError(f"a {chip} has {len(levels)} microstep pins, got {n_pins}")
        return levels

    def _track(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def _input(self, pin: int | str | None, factory: Any, *, pull_up: bool) -> Any:
        if pin is None:
            return None
        return self._track(DigitalInputDevice(pin, pull_up=pull_up, pin_factory=factory))

    def _check_open(self) -> None:
        if self._closed:
            raise PumpError("the pump is closed")

    def _close_devices(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()
