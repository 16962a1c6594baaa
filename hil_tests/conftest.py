"""The hardware-in-the-loop suite: the same tests on emulated devices (CI) or a real rig.

Without options every test runs against the emulated rig: the NE-1000 and Pump 11 Elite
production drivers on a pty to their emulators, and the GPIO stepper on gpiozero's
MockFactory, all on a virtual clock (no wall-clock waits), with an emulated MT-SICS balance
weighing what the pump delivers. Drug, syringe and balance come from ``config/sim.toml``.

With ``--rig config/bench-<name>.toml`` the pump (and the balance, if the profile has one) of
that profile is opened for real, on the monotonic clock: fill the syringe with water, put the
line's end in a beaker (on the balance, outlet under the surface) and keep a hand near the
pump's stop key. A test that needs what the rig lacks is skipped with the reason. A test that
needs a clamp on the line asks for it only with ``--operator -s`` (a person at the bench
answers the prompts); a pinch valve on a GPIO is not supported yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from safety.supervisor import Supervisor
from vasopilot.core.clock import Clock, MonotonicClock, VirtualClock
from vasopilot.core.events import Event
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import Beat
from vasopilot.rig import open_pump
from vasopilot.rig.bench import BenchRig, bench_around
from vasopilot.runtime import MemorySink
from vasopilot.settings import RigConfig, load_rig

SIM_PROFILE = Path(__file__).resolve().parents[1] / "config" / "sim.toml"
EMULATED = ("new-era", "harvard", "gpio-stepper", "bridge")
TICK_S = 1.0
# The mock stepper's stall input (a TMC2209's DIAG), where the profile names none.
MOCK_STALL_PIN = 21


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rig", type=Path, default=None,
                     help="run the HIL suite against the devices of this rig profile (real "
                     "hardware)")
    parser.addoption("--operator", action="store_true",
                     help="a person at the bench applies and releases a clamp when asked")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hil" in metafunc.fixturenames:
        rig = metafunc.config.getoption("--rig")
        kinds = [str(rig)] if rig is not None else list(EMULATED)
        metafunc.parametrize("hil", kinds, indirect=True)


class HilClock(VirtualClock):
    """A virtual clock that lets the mock-pin stepper issue the steps due at every jump."""

    def __init__(self) -> None:
        super().__init__()
        self.on_advance: list[Callable[[float], object]] = []

    def advance(self, seconds: float) -> float:
        t_s = super().advance(seconds)
        for hook in self.on_advance:
            hook(t_s)
        return t_s

    def advance_to(self, t_s: float) -> float:
        return self.advance(t_s - self.now_s())


@dataclass
class Opened:
    """A pump under test, how to open it again (a restarted host), and its physics levers.

    ``kill`` is what the host's death does to the pump beyond silence: a step generator in the
    host process stops issuing steps.
    """

    pump: Pump
    reopen: Callable[[], Pump]
    physics: Any = None  # a SimSyringePump behind an emulator: fault levers, outflow
    closers: list[Callable[[], None]] = field(default_factory=list)
    kill: Callable[[], None] = lambda: None
    stall_pin: Any = None  # a mock pin the stepper reads as its driver's stall output
    # mock pins only: a new driver on a syringe holding this many mL (no plunger to move)
    loaded: Callable[[float], Pump] | None = None


def _open_emulated(kind: str, config: RigConfig, clock: HilClock) -> Opened:
    if kind == "gpio-stepper":
        from gpiozero.pins.mock import MockFactory

        from drivers.pump.gpio_stepper import GpioStepperPump

        factory = MockFactory()
        gpio = config.profile.pump.gpio
        stall = gpio.stall_pin if gpio.stall_pin is not None else MOCK_STALL_PIN
        holder: list[GpioStepperPump] = []

        def stepper(fill_ml: float | None = None) -> Pump:
            if holder:
                clock.on_advance.remove(holder[-1].service)
            made = GpioStepperPump(clock, config.syringe, config.profile.pump.mechanics,
                                   step_pin=gpio.step_pin, dir_pin=gpio.dir_pin,
                                   enable_pin=gpio.enable_pin, stall_pin=stall,
                                   pin_factory=factory, run_thread=False, fill_ml=fill_ml)
            holder.append(made)
            clock.on_advance.append(made.service)
            return made

        def kill() -> None:
            clock.on_advance.remove(holder[-1].service)
            holder.clear()

        return Opened(stepper(), stepper, kill=kill, stall_pin=factory.pin(stall), loaded=stepper)
    from drivers.sim.emulated import start_emulated_pump

    emulated = start_emulated_pump(kind, clock, config.syringe, config.profile.pump.mechanics,
                                   timeout_s=0.5)

    def reopen() -> Pump:
        """The same emulator, a new driver on its port."""
        if kind == "bridge":
            from drivers.pump.bridge import BridgePump

            return BridgePump(emulated.port.path, clock=clock, syringe=config.syringe,
                              mechanics=config.profile.pump.mechanics)
        if kind == "new-era":
            from drivers.pump.new_era import NewEraPump

            return NewEraPump(emulated.port.path, clock=clock, syringe=config.syringe,
                              timeout_s=0.5)
        from drivers.pump.harvard import HarvardPump

        return HarvardPump(emulated.port.path, clock=clock, syringe=config.syringe,
                           timeout_s=0.5)

    return Opened(emulated.pump, reopen, emulated.physics, [emulated.port.close])


@dataclass
class Hil:
    """One rig under test: its clock, profile, the supervisor holding its pump, the events."""

    target: str
    config: RigConfig
    clock: Clock
    opened: Opened
    sink: MemorySink
    supervisor: Supervisor
    operator: bool
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def emulated(self) -> bool:
        return self.target in EMULATED

    def new_supervisor(self, pump: Pump) -> Supervisor:
        return Supervisor(pump, drug=self.config.drug, patient=self.config.profile.patient,
                          safety=self.config.profile.safety, syringe=self.config.syringe,
                          sink=self.sink)

    def run(self, seconds: float, *, beats: bool = False,
            until: Callable[[], bool] | None = None) -> float:
        """Tick the supervisor for ``seconds`` (virtual or real), feeding a steady MAP of 70
        mmHg with ``beats``; stop early once ``until`` holds. Returns the time run."""
        start_s = self.clock.now_s()
        while (now_s := self.clock.now_s()) - start_s < seconds:
            self.clock.sleep(min(TICK_S, start_s + seconds - now_s))
            now_s = self.clock.now_s()
            if beats:
                self.supervisor.on_beat(Beat(now_s, 100.0, 55.0, 70.0, 70.0), now_s)
            self.supervisor.tick(now_s)
            if until is not None and until():
                break
        return self.clock.now_s() - start_s

    def bench(self) -> BenchRig:
        """The rig as a gravimetric bench, or a skip if the profile has no balance."""
        if self.config.profile.balance is None:
            pytest.skip(f"{self.target}: no [balance] in the profile: gravimetric tests need "
                        "a balance")
        physics = self.opened.physics
        bench = bench_around(self.config, self.clock, self.supervisor,
                             physics.readings if physics is not None else None)
        self.closers.append(bench.close)
        return bench

    def clamp(self) -> Callable[[], None]:
        """Close the line downstream; returns how to open it again. Skips what cannot."""
        physics = self.opened.physics
        if physics is not None:
            physics.faults.occlude()
            return physics.faults.clear_occlusion  # type: ignore[no-any-return]
        if self.opened.stall_pin is not None:
            # mock pins move no fluid: the clamped line shows as the driver chip's stall output
            pin = self.opened.stall_pin
            pin.drive_high()
            return pin.drive_low  # type: ignore[no-any-return]
        if not self.operator:
            pytest.skip("needs a clamp on the line: run with --operator to be asked for one")
        input("HIL: clamp the line now, then press Enter ")
        return lambda: input("HIL: release the clamp, then press Enter ") and None


@pytest.fixture
def hil_config(request: pytest.FixtureRequest) -> RigConfig:
    rig = request.config.getoption("--rig")
    return load_rig(rig if rig is not None else SIM_PROFILE)


@pytest.fixture
def hil(request: pytest.FixtureRequest, hil_config: RigConfig) -> Iterator[Hil]:
    target: str = request.param
    clock: Clock
    if target in EMULATED:
        clock = HilClock()
        opened = _open_emulated(target, hil_config, clock)
    else:
        clock = MonotonicClock()
        opened = Opened(open_pump(hil_config, clock), lambda: open_pump(hil_config, clock))
    sink = MemorySink()
    supervisor = Supervisor(opened.pump, drug=hil_config.drug,
                            patient=hil_config.profile.patient, safety=hil_config.profile.safety,
                            syringe=hil_config.syringe, sink=sink)
    rig = Hil(target, hil_config, clock, opened, sink, supervisor,
              bool(request.config.getoption("--operator")))
    yield rig
    # a restart test leaves a new supervisor holding a new driver
    rig.supervisor.operator_stop(clock.now_s(), by="HIL teardown")
    for close in reversed(rig.closers):
        close()
    rig.supervisor.close()
    for close in reversed(opened.closers):
        close()


@pytest.fixture
def hil_pump(hil: Hil) -> Pump:
    """The bare pump of the rig under test, for tests of the driver contract only."""
    return hil.opened.pump


def events_of(hil: Hil, kind: type[Event]) -> list[Event]:
    return [e for e in hil.sink.events if isinstance(e, kind)]
