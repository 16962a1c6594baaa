import itertools
import math
import threading
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.pump.gpio_stepper import (
    ALARM_EMPTY,
    ALARM_END_OF_TRAVEL,
    ALARM_STALL,
    ALARM_STEP_THREAD,
    GpioStepperPump,
    StepRecord,
)
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.errors import (
    ConfigError,
    PumpConnectionError,
    PumpError,
    PumpRefusedError,
)
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import HostLossBehaviour, PumpState
from vasopilot.core.units import UL_PER_ML

STEP, DIR, EN = 17, 27, 22
MS = (5, 6, 13)
EOT, PLUNGER, STALL = 19, 26, 21

SYRINGE = SyringeSpec(
    name="bd-plastipak-50", volume_ml=50, inner_diameter_mm=26.7, compliance_ul_per_mmhg=1.0
)
MECHANICS = MechanicsSettings()


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def pump(factory: MockFactory, clock: VirtualClock) -> Iterator[GpioStepperPump]:
    with GpioStepperPump(
        clock, SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN, ms_pins=MS,
        end_of_travel_pin=EOT, plunger_pin=PLUNGER, stall_pin=STALL, pin_factory=factory,
        run_thread=False,
    ) as pump:
        # Plunger clamped: the detect switch pulls its input low.
        factory.pin(PLUNGER).drive_low()
        yield pump


def levels(factory: MockFactory, pin: int) -> list[bool]:
    """Levels the pin was driven to, without the input level recorded before it was claimed."""
    return [s.state for s in factory.pin(pin).states][1:]


def rising_edges(factory: MockFactory, pin: int) -> int:
    states = [s.state for s in factory.pin(pin).states]
    return sum(1 for a, b in itertools.pairwise(states) if not a and b)


def run_until(pump: GpioStepperPump, clock: VirtualClock, t_s: float) -> None:
    clock.advance_to(t_s)
    pump.service(t_s)


def hz(pump: GpioStepperPump, rate_ml_h: float) -> float:
    return rate_ml_h * UL_PER_ML / 3600.0 / pump.ul_per_step


def test_satisfies_the_pump_protocol_and_stops_silently_on_host_loss(
    pump: GpioStepperPump,
) -> None:
    assert isinstance(pump, Pump)
    assert pump.capabilities.host_loss is HostLossBehaviour.STOPS_SILENTLY
    assert pump.capabilities.max_rate_ml_h == pytest.approx(500 * pump.ul_per_step * 3.6)


def test_enable_comes_up_disabled_and_only_goes_active_while_moving(
    pump: GpioStepperPump, factory: MockFactory, clock: VirtualClock
) -> None:
    enable = factory.pin(EN)
    assert enable.state is True  # active-low: high is disabled
    assert factory.pin(STEP).state is False
    pump.set_rate(5.0)
    assert enable.state is False
    run_until(pump, clock, 10.0)
    pump.stop()
    assert enable.state is True
    assert levels(factory, EN) == [True, False, True]


def test_selects_sixteen_microsteps_on_an_a4988(
    factory: MockFactory, pump: GpioStepperPump
) -> None:
    assert [factory.pin(p).state for p in MS] == [True, True, True]


def test_refuses_a_microstep_factor_the_chip_cannot_select(
    factory: MockFactory, clock: VirtualClock
) -> None:
    with pytest.raises(ConfigError, match="microsteps=32"):
        GpioStepperPump(
            clock, SYRINGE, MechanicsSettings(microsteps=32), step_pin=STEP, dir_pin=DIR,
            enable_pin=EN, ms_pins=MS, driver_chip="a4988", pin_factory=factory,
            run_thread=False,
        )
    with pytest.raises(ConfigError, match="2 microstep pins"):
        GpioStepperPump(
            clock, SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
            ms_pins=MS, driver_chip="tmc2209", pin_factory=factory, run_thread=False,
        )


def test_counts_one_step_edge_per_microstep_and_delivers_from_issued_steps(
    pump: GpioStepperPump, factory: MockFactory, clock: VirtualClock
) -> None:
    status = pump.set_rate(20.0)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(20.0)
    run_until(pump, clock, 60.0)
    expected_steps = math.floor(hz(pump, 20.0) * 60.0)
    assert rising_edges(factory, STEP) == expected_steps
    status = pump.status()
    assert status.delivered_ml == pytest.approx(expected_steps * pump.ul_per_step / UL_PER_ML)
    assert status.syringe_remaining_ml == pytest.approx(50.0 - status.delivered_ml)


def test_delivers_an_hour_of_virtual_time_within_one_microstep(
    pump: GpioStepperPump, clock: VirtualClock
) -> None:
    pump.set_rate(5.0)
    for minute in range(1, 61):
        run_until(pump, clock, minute * 60.0)
    assert abs(pump.status().delivered_ml - 5.0) < pump.ul_per_step / UL_PER_ML


def test_rate_change_takes_effect_at_the_next_step_without_a_pause(
    factory: MockFactory, clock: VirtualClock
) -> None:
    records: list[StepRecord] = []
    with GpioStepperPump(
        clock, SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
        pin_factory=factory, run_thread=False, on_step=records.append,
    ) as pump:
        pump.set_rate(1.0)
        run_until(pump, clock, 30.0)
        slow_steps = len(records)
        pump.set_rate(60.0)
        run_until(pump, clock, 31.0)
    first_fast_s = records[slow_steps].due_s
    assert 30.0 < first_fast_s <= 30.0 + 1.0 / hz(pump, 60.0)
    assert factory.pin(EN).state is True


def test_rounds_a_rate_down_to_the_resolution_and_refuses_instead_of_clamping(
    pump: GpioStepperPump,
) -> None:
    assert pump.set_rate(5.0004).rate_ml_h == pytest.approx(5.0)
    with pytest.raises(PumpRefusedError, match="outside"):
        pump.set_rate(pump.capabilities.max_rate_ml_h * 1.01)
    with pytest.raises(PumpRefusedError):
        pump.set_rate(-1.0)
    assert pump.status().rate_ml_h == pytest.approx(5.0)


def test_stops_at_end_of_travel_and_refuses_to_restart_there(
    pump: GpioStepperPump, factory: MockFactory, clock: VirtualClock
) -> None:
    pump.set_rate(20.0)
    run_until(pump, clock, 10.0)
    steps_before = rising_edges(factory, STEP)
    factory.pin(EOT).drive_low()
    run_until(pump, clock, 20.0)
    status = pump.status()
    assert rising_edges(factory, STEP) == steps_before
    assert status.state is PumpState.ALARM
    assert status.alarm == ALARM_END_OF_TRAVEL
    assert status.end_of_travel
    assert factory.pin(EN).state is True
    with pytest.raises(PumpRefusedError, match="latched"):
        pump.set_rate(20.0)
    pump.stop()
    with pytest.raises(PumpRefusedError, match=ALARM_END_OF_TRAVEL):
        pump.set_rate(20.0)


def test_refuses_to_infuse_without_a_plunger_detected(
    pump: GpioStepperPump, factory: MockFactory
) -> None:
    factory.pin(PLUNGER).drive_high()
    with pytest.raises(PumpRefusedError, match="plunger"):
        pump.set_rate(5.0)
    assert factory.pin(EN).state is True


def test_backs_off_after_a_stall_keeping_the_alarm_latched(
    pump: GpioStepperPump, factory: MockFactory, clock: VirtualClock
) -> None:
    pump.set_rate(10.0)
    run_until(pump, clock, 60.0)
    delivered_ml = pump.status().delivered_ml
    factory.pin(STALL).drive_high()
    run_until(pump, clock, 61.0)
    assert pump.status().alarm == ALARM_STALL
    assert pump.status().stalled
    factory.pin(STALL).drive_low()

    status = pump.back_off(100.0)
    assert status.state is PumpState.BACKING_OFF
    assert status.rate_ml_h == 0.0
    assert factory.pin(DIR).state is False
    assert factory.pin(EN).state is False
    run_until(pump, clock, 120.0)
    status = pump.status()
    steps_back = math.floor(100.0 / pump.ul_per_step)
    assert status.delivered_ml == pytest.approx(delivered_ml - steps_back * pump.ul_per_step / 1e3)
    assert status.state is PumpState.ALARM
    assert status.alarm == ALARM_STALL
    assert factory.pin(EN).state is True
    assert levels(factory, DIR) == [True, False]


def test_infuses_again_in_the_forward_direction_after_back_off(
    pump: GpioStepperPump, factory: MockFactory, clock: VirtualClock
) -> None:
    pump.set_rate(10.0)
    run_until(pump, clock, 30.0)
    pump.stop()
    pump.back_off(20.0)
    run_until(pump, clock, 31.0)
    assert pump.status().state is PumpState.STOPPED
    pump.set_rate(10.0)
    assert factory.pin(DIR).state is True
    assert levels(factory, DIR) == [True, False, True]


def test_refuses_to_back_off_past_the_end_of_the_barrel(pump: GpioStepperPump) -> None:
    with pytest.raises(PumpRefusedError, match="barrel"):
        pump.back_off(100.0)


def test_stops_with_an_alarm_when_the_syringe_runs_empty(
    factory: MockFactory, clock: VirtualClock
) -> None:
    with GpioStepperPump(
        clock, SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
        pin_factory=factory, run_thread=False, fill_ml=0.01,
    ) as pump:
        pump.set_rate(60.0)
        run_until(pump, clock, 10.0)
        status = pump.status()
    assert status.state is PumpState.ALARM
    assert status.alarm == ALARM_EMPTY
    assert status.syringe_remaining_ml < pump.ul_per_step / UL_PER_ML
    assert rising_edges(factory, STEP) == math.floor(10.0 / pump.ul_per_step)


def test_never_falls_back_to_a_mock_pin_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with pytest.raises(PumpConnectionError, match="pin factory"):
        GpioStepperPump(
            VirtualClock(), SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
            run_thread=False,
        )


def test_a_step_thread_needs_a_real_time_clock(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="real-time"):
        GpioStepperPump(
            VirtualClock(), SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
            pin_factory=factory,
        )


def test_step_thread_issues_steps_and_reports_its_lateness(factory: MockFactory) -> None:
    done = threading.Event()
    records: list[StepRecord] = []

    def record(step: StepRecord) -> None:
        records.append(step)
        if len(records) >= 20:
            done.set()

    with GpioStepperPump(
        MonotonicClock(), SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
        pin_factory=factory, on_step=record,
    ) as pump:
        pump.set_rate(pump.capabilities.max_rate_ml_h)
        assert done.wait(timeout=5.0)
        pump.stop()
        timing = pump.step_timing()
    assert timing.steps >= 20
    assert 0.0 <= timing.median_late_us <= timing.p99_late_us <= timing.max_late_us
    assert all(r.issued_s >= r.due_s for r in records)
    assert factory.pin(EN).state is True


def test_a_dead_step_thread_raises_an_alarm_and_fails_the_heartbeat(factory: MockFactory) -> None:
    stepped = threading.Event()

    def fail(step: StepRecord) -> None:
        stepped.set()
        raise OSError("GPIO chip went away")

    pump = GpioStepperPump(
        MonotonicClock(), SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
        pin_factory=factory, on_step=fail,
    )
    pump.heartbeat()
    pump.set_rate(pump.capabilities.max_rate_ml_h)
    assert stepped.wait(timeout=5.0)
    pump.close()
    assert pump.status().alarm == ALARM_STEP_THREAD
    assert factory.pin(EN).state is True
    with pytest.raises(PumpError, match="GPIO chip went away"):
        pump.heartbeat()


def test_holding_keeps_the_motor_energised_when_stopped_but_not_after_an_alarm(
    factory: MockFactory, clock: VirtualClock
) -> None:
    with GpioStepperPump(
        clock, SYRINGE, MECHANICS, step_pin=STEP, dir_pin=DIR, enable_pin=EN,
        end_of_travel_pin=EOT, pin_factory=factory, run_thread=False, hold_when_stopped=True,
    ) as pump:
        pump.set_rate(20.0)
        pump.stop()
        assert factory.pin(EN).state is False
        pump.set_rate(20.0)
        factory.pin(EOT).drive_low()
        run_until(pump, clock, 5.0)
        assert pump.status().alarm == ALARM_END_OF_TRAVEL
        assert factory.pin(EN).state is True
