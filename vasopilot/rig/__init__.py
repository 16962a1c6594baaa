"""Assembling one rig from a validated profile.

The pump object goes to the supervisor and nowhere else (DESIGN invariant 1): the rig keeps no
reference to it, the pressure path and the control mode get read-only views, and
``tests/test_rig_assembly.py`` builds every profile in ``config/`` and checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safety.supervisor import Supervisor
from vasopilot.control.base import Controller
from vasopilot.core.clock import Clock
from vasopilot.core.config import GpioSettings, PressureSettings
from vasopilot.core.errors import ConfigError
from vasopilot.core.events import Event
from vasopilot.core.interfaces import BeatSource, LineSignalSource, PressureSource, Pump
from vasopilot.runtime import LoopTimings, RigLoop
from vasopilot.settings import RigConfig


@dataclass
class Rig:
    config: RigConfig
    clock: Clock
    supervisor: Supervisor
    loop: RigLoop
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Sources that must be polled at their sample rate from an acquisition thread (ADS1115).
    pollers: list[tuple[Callable[[], object], float]] = field(default_factory=list)

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
        from drivers.sim.syringe_pump import SimSyringePump

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
    raise ConfigError(
        f"{where}: key pump.driver = {settings.driver!r}: the firmware-bridge pump is not "
        "part of this version; use sim, new-era, harvard or gpio-stepper"
    )


def _pressure_source(settings: PressureSettings, clock: Clock, i2c_bus: Any) -> PressureSource:
    if settings.source == "replay":
        from drivers.pressure.replay import WfdbReplaySource

        assert settings.record is not None
        return WfdbReplaySource(settings.record, clock, channel=settings.channel)
    from drivers.pressure.ads1115 import ADS1115Transducer, TransducerCalibration

    if i2c_bus is None:
        from smbus2 import SMBus

        i2c_bus = SMBus(settings.i2c_bus)
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
    sink: Callable[[Event], Event],
    controller: Controller,
    patient_seed: int = 1,
    pin_factory: Any = None,
    i2c_bus: Any = None,
    timings: LoopTimings | None = None,
) -> Rig:
    """Connect the profile's devices and hand the pump to a new supervisor.

    A ``sim`` pressure source is a seeded virtual patient on the pump's line (``patient_seed``);
    with a real pump it receives the volume the pump reports delivered.
    """
    from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump

    profile = config.profile
    pump = open_pump(config, clock, pin_factory=pin_factory)
    sim_readings = pump.readings if isinstance(pump, SimSyringePump) else None
    supervisor = Supervisor(pump, drug=config.drug, patient=profile.patient,
                            safety=profile.safety, syringe=config.syringe,
                            sink=_SinkAdapter(sink))
    del pump
    closers: list[Callable[[], None]] = [supervisor.close]
    beats: BeatSource
    line: LineSignalSource | None = None
    pollers: list[tuple[Callable[[], object], float]] = []
    if profile.pressure.source == "sim":
        from drivers.sim.bedside import Outflow, SimBedside
        from drivers.sim.patient import VirtualPatient, draw_patient

        params = draw_patient(patient_seed)
        patient = VirtualPatient(params, "resuscitate", patient_seed,
                                 start_t_s=clock.now_s(), conc_mcg_ml=config.drug.conc_mcg_ml)
        outflow: Outflow = sim_readings if sim_readings is not None else \
            _SupervisedDelivery(supervisor)
        beats = SimBedside(patient, outflow, clock, config.drug.conc_mcg_ml)
    else:
        from drivers.pressure.beats import BeatDetector, DetectedBeatSource

        source = _pressure_source(profile.pressure, clock, i2c_bus)
        closers.append(source.close)
        beats = DetectedBeatSource(source, BeatDetector(source.fs_hz))
        poll = getattr(source, "poll", None)
        if poll is not None:
            pollers.append((poll, 1.0 / source.fs_hz))
    if sim_readings is not None:
        line = SimLineSignals(sim_readings)
    loop = RigLoop(supervisor, beats, controller, sink, line=line, timings=timings)
    return Rig(config, clock, supervisor, loop, closers, pollers)


class _SinkAdapter:
    def __init__(self, record: Callable[[Event], Event]) -> None:
        self._record = record

    def append(self, event: Event) -> Event:
        return self._record(event)
