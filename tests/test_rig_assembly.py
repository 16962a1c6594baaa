"""Every rig profile in config/ builds, and its pump is reachable only through the supervisor.

DESIGN invariant 1: the controller, the pressure path, the loop and the sink must not be able
to reach the pump object; the simulation's patient and line sensors may only hold the pump
twin's read-only readings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.sim.ads1115_emulator import ADS1115Emulator
from drivers.sim.harvard_emulator import HarvardEmulator
from drivers.sim.new_era_emulator import NewEraEmulator
from drivers.sim.pty_port import PtyPort
from drivers.sim.syringe_pump import SimPumpReadings, SimSyringePump
from vasopilot.control.protocol import NurseProtocol
from vasopilot.core.clock import MonotonicClock
from vasopilot.core.errors import ConfigError
from vasopilot.core.interfaces import Pump
from vasopilot.rig import Rig, build_rig
from vasopilot.runtime import MemorySink
from vasopilot.settings import RigConfig, load_rig

CONFIG = Path(__file__).resolve().parents[1] / "config"
PROFILES = sorted(p.name for p in CONFIG.glob("*.toml") if p.name.startswith(("sim", "bench")))


def reachable(root: object, *, skip: set[int], limit: int = 5000) -> Iterator[object]:
    """Objects reachable from ``root`` through attributes and containers, minus ``skip``."""
    seen = set(skip)
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, SimPumpReadings):
            continue  # read-only by construction: it exposes no command
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            stack.extend(getattr(obj, "__dict__", {}).values())
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
            owner = getattr(obj, "__self__", None)
            if owner is not None:
                stack.append(owner)


@contextmanager
def built(name: str) -> Iterator[Rig]:
    config = load_rig(CONFIG / name)
    clock = MonotonicClock()
    port: PtyPort | None = None
    driver = config.profile.pump.driver
    if driver in ("new-era", "harvard"):
        physics = SimSyringePump(clock, config.syringe, config.profile.pump.mechanics)
        emulator = NewEraEmulator(clock, {0: physics}) if driver == "new-era" else \
            HarvardEmulator(clock, {0: physics})
        port = PtyPort(emulator)
        pump = config.profile.pump.model_copy(update={"port": port.path})
        config = RigConfig(config.profile.model_copy(update={"pump": pump}), config.drug,
                           config.syringe, config.source, config.journal_path)
    bus = ADS1115Emulator(lambda t: 70.0 + 20.0 * math.sin(2 * math.pi * 1.2 * t), clock)
    rig = build_rig(config, clock=clock, sink=MemorySink().append, controller=NurseProtocol(),
                    pin_factory=MockFactory(), i2c_bus=bus)
    try:
        yield rig
    finally:
        rig.close()
        if port is not None:
            port.close()


@pytest.mark.parametrize("name", PROFILES)
def test_profile_builds_and_only_the_supervisor_holds_the_pump(name: str) -> None:
    with built(name) as rig:
        pump: Any = rig.supervisor._pump
        assert isinstance(pump, Pump)
        outside = list(reachable(rig, skip={id(rig.supervisor)}))
        assert all(obj is not pump for obj in outside), f"{name}: the pump leaks"
        view = rig.loop.step(rig.clock.now_s())
        assert not view.running


def test_profiles_cover_every_pump_driver_but_the_bridge() -> None:
    drivers = {load_rig(CONFIG / name).profile.pump.driver for name in PROFILES}
    assert drivers == {"sim", "new-era", "harvard", "gpio-stepper"}


def test_bridge_driver_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text("[pump]\ndriver = 'bridge'\nport = 'loop://'\n")
    with pytest.raises(ConfigError, match="firmware-bridge pump is not part of this version"):
        build_rig(load_rig(path), clock=MonotonicClock(), sink=MemorySink().append,
                  controller=NurseProtocol())


def test_the_reachability_check_can_fail() -> None:
    # a controller that kept the pump would be caught
    with built("sim.toml") as rig:
        leaky = NurseProtocol()
        leaky.__dict__["pump"] = rig.supervisor._pump
        rig.loop.set_controller(leaky)
        outside = list(reachable(rig, skip={id(rig.supervisor)}))
        assert any(obj is rig.supervisor._pump for obj in outside)
