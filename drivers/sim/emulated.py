"""A pump's emulator on a pseudo-terminal, and the production driver talking to it.

:func:`start_emulated_pump` runs the emulator (in a thread, driven by a ``SimSyringePump`` on
the given clock) and returns the production driver connected over that pty, for
``vasopilot sim --pump new-era|harvard|bridge`` and the driver tests. ``bridge`` is the Pico
firmware's logic (``firmware_bridge.emulator``) and ``BridgePump``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vasopilot.core.clock import Clock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.interfaces import Pump

if TYPE_CHECKING:
    from drivers.sim.harvard_emulator import HarvardEmulator
    from drivers.sim.new_era_emulator import NewEraEmulator
    from drivers.sim.pty_port import PtyPort
    from drivers.sim.syringe_pump import SimSyringePump
    from firmware_bridge.emulator import BridgeEmulator

SerialPumpKind = Literal["new-era", "harvard"]
SERIAL_PUMP_KINDS: tuple[SerialPumpKind, ...] = ("new-era", "harvard")
EmulatedKind = Literal["new-era", "harvard", "bridge"]
EMULATED_KINDS: tuple[EmulatedKind, ...] = ("new-era", "harvard", "bridge")


@dataclass
class EmulatedPump:
    """A production driver, the emulator it talks to over a pty, and the physics behind it."""

    kind: EmulatedKind
    pump: Pump
    emulator: NewEraEmulator | HarvardEmulator | BridgeEmulator
    physics: SimSyringePump
    port: PtyPort

    def close(self) -> None:
        self.pump.close()
        self.port.close()


def start_emulated_pump(
    kind: str,
    clock: Clock,
    syringe: SyringeSpec,
    mechanics: MechanicsSettings,
    *,
    link: Path | None = None,
    address: int = 0,
    safe_mode_timeout_s: int = 0,
    timeout_s: float = 0.5,
) -> EmulatedPump:
    """Start ``kind``'s emulator on a pty (``link``: a symlink to it, so the port survives an
    unplug/replug) and connect its driver. ``safe_mode_timeout_s`` applies to the NE-1000."""
    from drivers.sim.pty_port import PtyPort
    from drivers.sim.syringe_pump import SimSyringePump

    physics = SimSyringePump(clock, syringe, mechanics)
    if kind == "new-era":
        from drivers.pump.new_era import NewEraPump
        from drivers.sim.new_era_emulator import NewEraEmulator

        new_era = NewEraEmulator(clock, {address: physics})
        port = PtyPort(new_era, link=link)
        try:
            pump: Pump = NewEraPump(port.path, clock=clock, syringe=syringe, address=address,
                                    safe_mode_timeout_s=safe_mode_timeout_s, timeout_s=timeout_s)
        except BaseException:
            port.close()
            raise
        return EmulatedPump("new-era", pump, new_era, physics, port)
    if kind == "harvard":
        from drivers.pump.harvard import HarvardPump
        from drivers.sim.harvard_emulator import HarvardEmulator

        harvard = HarvardEmulator(clock, {address: physics})
        port = PtyPort(harvard, link=link)
        try:
            pump = HarvardPump(port.path, clock=clock, syringe=syringe, address=address,
                               timeout_s=timeout_s)
        except BaseException:
            port.close()
            raise
        return EmulatedPump("harvard", pump, harvard, physics, port)
    if kind == "bridge":
        from drivers.pump.bridge import BridgePump
        from firmware_bridge.emulator import BridgeEmulator

        bridge = BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul)
        port = PtyPort(bridge, link=link)
        try:
            # USB-CDC answers in well under a millisecond: the bridge's own reply timeout.
            pump = BridgePump(port.path, clock=clock, syringe=syringe, mechanics=mechanics,
                              timeout_s=min(timeout_s, 0.05))
        except BaseException:
            port.close()
            raise
        return EmulatedPump("bridge", pump, bridge, physics, port)
    raise ValueError(f"no emulator for pump kind {kind!r} (known: {', '.join(EMULATED_KINDS)})")


def open_emulated_pump(
    kind: str, clock: Clock, syringe: SyringeSpec, mechanics: MechanicsSettings,
    *, safe_mode_timeout_s: int = 0,
) -> tuple[Pump, Callable[[], None]]:
    """The production driver of ``kind`` connected to its emulator, and the closer of both."""
    rig = start_emulated_pump(kind, clock, syringe, mechanics,
                              safe_mode_timeout_s=safe_mode_timeout_s)
    return rig.pump, rig.close
