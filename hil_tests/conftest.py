"""The hardware-in-the-loop suite: the same tests on emulated devices (CI) or a real rig.

Without options every test runs against the emulated pumps (the production serial drivers on a
pty to their emulators, and the GPIO stepper on gpiozero's MockFactory) in real time. With
``--rig config/bench-<name>.toml`` the pump of that profile is opened for real: fill the
syringe with water, put the line's end in a beaker, and keep a hand near the pump's stop key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.sim.emulated import start_emulated_pump
from vasopilot.core.clock import MonotonicClock
from vasopilot.core.interfaces import Pump
from vasopilot.rig import open_pump
from vasopilot.settings import RigConfig, load_rig

SIM_PROFILE = Path(__file__).resolve().parents[1] / "config" / "sim.toml"
EMULATED = ("new-era", "harvard", "gpio-stepper")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rig", type=Path, default=None,
                     help="run the HIL suite against the pump of this rig profile (real hardware)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hil_pump" in metafunc.fixturenames:
        rig = metafunc.config.getoption("--rig")
        kinds = [str(rig)] if rig is not None else list(EMULATED)
        metafunc.parametrize("hil_pump", kinds, indirect=True)


@pytest.fixture
def hil_config(request: pytest.FixtureRequest) -> RigConfig:
    rig = request.config.getoption("--rig")
    return load_rig(rig if rig is not None else SIM_PROFILE)


@pytest.fixture
def hil_pump(request: pytest.FixtureRequest, hil_config: RigConfig) -> Iterator[Pump]:
    clock = MonotonicClock()
    target: str = request.param
    if target not in EMULATED:
        pump = open_pump(hil_config, clock)
        yield pump
        pump.stop()
        pump.close()
        return
    if target == "gpio-stepper":
        from drivers.pump.gpio_stepper import GpioStepperPump

        gpio = hil_config.profile.pump.gpio
        stepper = GpioStepperPump(clock, hil_config.syringe, hil_config.profile.pump.mechanics,
                                  step_pin=gpio.step_pin, dir_pin=gpio.dir_pin,
                                  enable_pin=gpio.enable_pin, pin_factory=MockFactory())
        yield stepper
        stepper.close()
        return
    emulated = start_emulated_pump(target, clock, hil_config.syringe,
                                   hil_config.profile.pump.mechanics)
    yield emulated.pump
    emulated.close()
