"""Assembling one rig from a validated profile: the one builder of ``vasopilot run`` and
``vasopilot sim``.

The pump object goes to the supervisor and nowhere else (docs/architecture.md, invariant 1): the
rig keeps no reference to it, the pressure path and the control mode get read-only views, and
``tests/test_rig_assembly.py`` builds every profile in ``config/`` and every simulated rig and
checks it. This package is the only part of the application that imports :mod:`drivers.sim`
(an import contract in ``pyproject.toml``): a simulated patient, pump twin or emulator enters a
rig here, from a profile or a :class:`~vasopilot.rig.sim.SimSetup`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.sim.syringe_pump import SimSyringePump
from safety.supervisor import EventSink, Supervisor
from vasopilot.control.base import Controller
from vasopilot.core.clock import Clock
from vasopilot.core.config import GpioSettings, PressureSettings
from vasopilot.core.errors import ConfigError, SensorError
from vasopilot.core.interfaces import BeatSource, PressureSource, Pump
from vasopilot.core.types import HostLossBehaviour
from vasopilot.rig.sim import SimSetup, SimWorld, build_world, open_sim_pump
from vasopilot.runtime import LoopTimings, RigLoop
from vasopilot.settings import RigConfig


@dataclass
class Rig:
    config: RigConfig
    clock: Clock
    supervisor: Supervisor
    loop: RigLoop
    # S12, the active pump's driver's word on what it does once this process has gone: the
    # console tells the operator at start and at the end (the journal has it as pump.contract)
    host_loss: HostLossBehaviour
    host_loss_after_s: float | None
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Sources that must be polled at their sample rate from an acquisition thread (ADS1115).
    pollers: list[tuple[Callable[[], object], float]] = field(default_factory=list)
    # The simulated world (virtual patient, line, spare syringes, fault plan) of a sim rig.
    sim: SimWorld | None = None

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


class _SupervisedDelivery:
    """The volume a real pump reports delivered, read through the supervisor's view."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    @property
    def outflow_volume_ml(self) -> float:
        status = self._supervisor.view().pump
        return status.delivered_ml if status else 0.0


def _pin_factory(gpio: GpioSettings) -> Any:
    """The configured gpiozero pin factory; ``auto`` lets the driver open the real one."""
    if gpio.pin_factory == "auto":
        return None
    if gpio.pin_factory == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if gpio.pin_factory == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    from gpiozero.pins.rpigpio import RPiGPIOFactory

    return RPiGPIOFactory()


def open_pump(config: RigConfig, clock: Clock, *, pin_factory: Any = None) -> Pump:
    """The profile's pump driver, connected; nobody but the supervisor may keep it."""
    settings = config.profile.pump
    where = config.source or "<embedded defaults>"
    if settings.driver == "sim":
        return SimSyringePump(clock, config.syringe, settings.mechanics)
    if settings.driver == "new-era":
        from drivers.pump.new_era import NewEraPump

        assert settings.port is not None
        return NewEraPump(settings.port, clock=clock, syringe=config.syringe,
                          address=settings.address, baud=settings.baud,
                          safe_mode_timeout_s=settings.safe_mode_timeout_s)
    if settings.driver == "harvard":
        from drivers.pump.harvard import HarvardPump

        assert settings.port is not None
        return HarvardPump(settings.port, clock=clock, syringe=config.syringe,
                           address=settings.address, baud=settings.baud)
    if settings.driver == "gpio-stepper":
        from drivers.pump.gpio_stepper import GpioStepperPump

        gpio = settings.gpio
        return GpioStepperPump(
            clock, config.syringe, settings.mechanics,
            step_pin=gpio.step_pin, dir_pin=gpio.dir_pin, enable_pin=gpio.enable_pin,
            ms_pins=gpio.ms_pins, end_of_travel_pin=gpio.end_of_travel_pin,
            plunger_pin=gpio.plunger_pin, stall_pin=gpio.stall_pin,
            pin_factory=pin_factory if pin_factory is not None else _pin_factory(gpio),
            driver_chip=gpio.driver_chip, enable_active_low=gpio.enable_active_low,
            infuse_dir_high=gpio.infuse_dir_high,
        )
    if settings.driver == "bridge":
        from drivers.pump.bridge import BridgePump

        assert settings.port is not None
        bridge = settings.bridge
        return BridgePump(settings.port, clock=clock, syringe=config.syringe,
                          mechanics=settings.mechanics, baud=settings.baud,
                          host_loss_timeout_s=bridge.host_loss_timeout_s,
                          host_loss=bridge.host_loss, unattended_cap_ml=bridge.unattended_cap_ml,
                          timeout_s=bridge.reply_timeout_s, max_attempts=bridge.max_attempts)
    raise ConfigError(f"{where}: key pump.driver = {settings.driver!r}: no such pump driver")


def _pressure_source(settings: PressureSettings, clock: Clock, i2c_bus: Any) -> PressureSource:
    if settings.source == "replay":
        from drivers.pressure.replay import WfdbReplaySource

        assert settings.record is not None
        return WfdbReplaySource(settings.record, clock, channel=settings.channel)
    from drivers.pressure.ads1115 import ADS1115Transducer, TransducerCalibration

    if i2c_bus is None:
        from smbus2 import SMBus

        try:
            i2c_bus = SMBus(settings.i2c_bus)
        except PermissionError:
            raise SensorError(
                f"I2C bus {settings.i2c_bus}: permission denied: add this user to the i2c "
                "group") from None
    calibration = TransducerCalibration(
        sensitivity_uv_per_v_mmhg=settings.sensitivity_uv_per_v_mmhg,
        excitation_v=settings.excitation_v, amplifier_gain=settings.amplifier_gain,
    )
    return ADS1115Transducer(i2c_bus, clock, address=settings.i2c_address,
                             data_rate_sps=250 if settings.fs_hz == 250.0 else 475,
                             pga_v=settings.adc_full_scale_v, calibration=calibration)


def build_rig(
    config: RigConfig,
    *,
    clock: Clock,
    sink: EventSink,
    controller: Controller,
    patient_seed: int = 1,
    pin_factory: Any = None,
    i2c_bus: Any = None,
    timings: LoopTimings | None = None,
    sim: SimSetup | None = None,
    console: Callable[[str], None] | None = None,
) -> Rig:
    """Connect the profile's devices and hand the pump to a new supervisor.

    A ``sim`` pressure source is a virtual patient on the pump's line: the one ``sim`` sets up,
    or else the ``resuscitate`` patient of ``patient_seed``; with a real pump it receives the
    volume the pump reports delivered. ``sim.pump`` may put an emulated serial pump in place of
    the profile's. ``console`` receives the loop's lines for people (a journal fault).
    """
    profile = config.profile
    if sim is None and profile.pressure.source == "sim":
        sim = SimSetup(seed=patient_seed)
    closers: list[Callable[[], None]] = []
    twin: SimSyringePump | None
    if sim is not None and sim.pump is not None:
        pump, twin, close_port = open_sim_pump(sim.pump, clock, config)
        closers.append(close_port)
    else:
        pump = open_pump(config, clock, pin_factory=pin_factory)
        twin = pump if isinstance(pump, SimSyringePump) else None
    supervisor = Supervisor(pump, drug=config.drug, patient=profile.patient,
                            safety=profile.safety, syringe=config.syringe, sink=sink)
    closers.insert(0, supervisor.close)
    beats: BeatSource
    world: SimWorld | None = None
    pollers: list[tuple[Callable[[], object], float]] = []
    if sim is not None:
        world = build_world(sim, config, clock, supervisor,
                            twin if twin is not None else _SupervisedDelivery(supervisor))
        beats = world.beats
    else:
        from drivers.pressure.beats import BeatDetector, DetectedBeatSource

        try:
            source = _pressure_source(profile.pressure, clock, i2c_bus)
        except BaseException:
            for close in closers:  # the pump's port is already open: let it go
                close()
            raise
        closers.append(source.close)
        beats = DetectedBeatSource(source, BeatDetector(source.fs_hz))
        poll = getattr(source, "poll", None)
        if poll is not None:
            pollers.append((poll, 1.0 / source.fs_hz))
    contract = pump.capabilities
    del pump, twin
    line = world.line if world is not None else None
    loop = RigLoop(supervisor, beats, controller, sink, line=line, timings=timings,
                   console=console)
    return Rig(config, clock, supervisor, loop, contract.host_loss,
               contract.host_loss_after_s, closers, pollers, world)
