"""A gravimetric bench: the profile's pump under a supervisor, and the balance weighing it.

An ``emulated`` balance is the MT-SICS emulator on a pty (read by the production driver) whose
beaker fills with a simulated pump's outflow, or, beside a real pump, with what that pump
reports delivered. The pump goes to the supervisor only (docs/architecture.md, invariant 1);
the balance emulator keeps the pump twin's read-only readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drivers.balance.mt_sics_balance import MtSicsBalance, SerialSettings
from drivers.sim.balance_emulator import BalanceEmulator
from drivers.sim.bedside import Outflow
from drivers.sim.pty_port import PtyPort
from drivers.sim.syringe_pump import SimSyringePump
from safety.supervisor import EventSink, Supervisor
from vasopilot.core.clock import Clock
from vasopilot.core.config import BalanceEmulatorSettings, MechanicsSettings, SyringeSpec
from vasopilot.core.errors import ConfigError
from vasopilot.core.interfaces import Pump
from vasopilot.rig import _SupervisedDelivery, open_pump
from vasopilot.rig.sim import open_sim_pump
from vasopilot.settings import RigConfig


@dataclass
class BenchRig:
    """The supervisor holding the pump, the balance, and the emulated balance's fault levers
    and physics (``emulator``), if the balance is emulated."""

    config: RigConfig
    clock: Clock
    supervisor: Supervisor
    balance: MtSicsBalance
    emulator: BalanceEmulator | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


def open_balance(
    config: RigConfig, clock: Clock, weighs: Outflow
) -> tuple[MtSicsBalance, BalanceEmulator | None, Callable[[], None]]:
    """The profile's balance, connected, and its closer; an emulated one weighs ``weighs``."""
    settings = config.profile.balance
    where = config.source or "<embedded defaults>"
    if settings is None:
        raise ConfigError(f"{where}: the profile has no [balance] table")
    serial_settings = SerialSettings(settings.baud, settings.bytesize, settings.parity,
                                     settings.stopbits, settings.handshake)
    if settings.driver == "mt-sics":
        assert settings.port is not None
        balance = MtSicsBalance(settings.port, clock=clock, serial_settings=serial_settings,
                                timeout_s=settings.timeout_s)
        return balance, None, balance.close
    emulator = BalanceEmulator(clock, weighs, settings.emulator,
                               density_g_ml=settings.density_g_ml)
    port = PtyPort(emulator)
    try:
        balance = MtSicsBalance(port.path, clock=clock, serial_settings=serial_settings,
                                timeout_s=settings.timeout_s)
    except BaseException:
        port.close()
        raise

    def close() -> None:
        balance.close()
        port.close()

    return balance, emulator, close


def bench_around(config: RigConfig, clock: Clock, supervisor: Supervisor,
                 weighed: Outflow | None = None) -> BenchRig:
    """The profile's balance beside a supervisor that already holds the pump. An emulated
    balance weighs ``weighed`` (a pump twin's outflow) or else what the pump reports
    delivered; closing the bench closes the balance only."""
    balance, emulator, close = open_balance(
        config, clock, weighed if weighed is not None else _SupervisedDelivery(supervisor))
    return BenchRig(config, clock, supervisor, balance, emulator, [close])


def build_bench(
    config: RigConfig,
    *,
    clock: Clock,
    sink: EventSink,
    emulated_pump: str | None = None,
) -> BenchRig:
    """The profile's pump (or, with ``emulated_pump`` = ``new-era``/``harvard``, that pump's
    emulator behind its production driver) handed to a new supervisor, and the profile's
    balance."""
    closers: list[Callable[[], None]] = []
    pump: Pump
    weighed: Outflow | None = None
    if emulated_pump in ("new-era", "harvard"):
        pump, twin, close_port = open_sim_pump(emulated_pump, clock, config)  # type: ignore[arg-type]
        closers.append(close_port)
        weighed = twin.readings
    elif emulated_pump is not None:
        raise ConfigError(f"no emulator for pump {emulated_pump!r} (new-era, harvard)")
    else:
        pump = open_pump(config, clock)
        weighed = pump.readings if isinstance(pump, SimSyringePump) else None
    supervisor = Supervisor(pump, drug=config.drug, patient=config.profile.patient,
                            safety=config.profile.safety, syringe=config.syringe, sink=sink)
    del pump
    closers.append(supervisor.close)
    try:
        bench = bench_around(config, clock, supervisor, weighed)
    except BaseException:
        while closers:
            closers.pop()()
        raise
    bench.closers[:0] = closers
    return bench


def balance_emulator_port(clock: Clock, syringe: SyringeSpec, *, rate_ml_h: float,
                          settings: BalanceEmulatorSettings, link: Path | None) -> PtyPort:
    """A stand-alone balance emulator on a pty weighing a pump twin that runs at
    ``rate_ml_h``, for ``vasopilot emulate balance``."""
    physics = SimSyringePump(clock, syringe, MechanicsSettings())
    if rate_ml_h > 0:
        physics.set_rate(rate_ml_h)
    return PtyPort(BalanceEmulator(clock, physics.readings, settings), link=link)
