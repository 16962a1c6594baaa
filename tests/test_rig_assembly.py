"""Every rig profile in config/ builds, and its pump is reachable only through the supervisor.

docs/architecture.md, invariant 1: the controller, the pressure path, the loop and the sink must
not be able to reach the pump object; the simulation's patient and line sensors may only hold the
pump twin's read-only readings.
"""

from __future__ import annotations

import functools
import math
import types
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.sim.ads1115_emulator import ADS1115Emulator
from drivers.sim.harvard_emulator import HarvardEmulator
from drivers.sim.new_era_emulator import NewEraEmulator
from drivers.sim.pty_port import ByteDevice, PtyPort
from drivers.sim.syringe_pump import PumpFaults, SimPumpReadings, SimSyringePump
from firmware_bridge.emulator import BridgeEmulator
from vasopilot.control.protocol import NurseProtocol
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.errors import PumpConnectionError
from vasopilot.core.interfaces import Pump
from vasopilot.rig import Rig, build_rig
from vasopilot.rig.faults import parse_fault
from vasopilot.rig.sim import SimPumpKind, SimSetup
from vasopilot.runtime import MemorySink
from vasopilot.settings import RigConfig, load_rig

CONFIG = Path(__file__).resolve().parents[1] / "config"
PROFILES = sorted(p.name for p in CONFIG.glob("*.toml") if p.name.startswith(("sim", "bench")))


def reachable(root: object, *, skip: set[int], limit: int = 20000) -> Iterator[object]:
    """Objects reachable from ``root`` through attributes, containers, bound methods,
    ``functools.partial`` objects and closures (a lambda's cells, a function's defaults),
    minus ``skip``."""
    seen = set(skip)
    stack = [root]
    while stack:
        obj = stack.pop()
        # modules are the program's globals, not the rig's; a pump kept there is no attribute
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type,
                                               types.ModuleType)):
            continue
        seen.add(id(obj))
        assert len(seen) < limit, "the walk is too big to be a proof: raise the limit"
        yield obj
        if isinstance(obj, (SimPumpReadings, PumpFaults)):
            continue  # a twin's readings and its physical fault levers: no command
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, deque)):
            stack.extend(obj)
        elif isinstance(obj, functools.partial):
            stack.extend([obj.func, *obj.args, *obj.keywords.values()])
        elif isinstance(obj, types.FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or ()
                         if cell.cell_contents is not None)
            stack.extend([*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()])
        elif isinstance(obj, types.MethodType):
            stack.extend([obj.__self__, obj.__func__])
        else:
            stack.extend(getattr(obj, "__dict__", {}).values())
            for klass in type(obj).__mro__:
                for slot in getattr(klass, "__slots__", ()):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
            owner = getattr(obj, "__self__", None)
            if owner is not None:
                stack.append(owner)


def assert_only_the_supervisor_reaches_its_pumps(rig: Rig, what: str) -> None:
    supervisor: Any = rig.supervisor
    delivery = supervisor._delivery
    pumps = [p for p in (delivery._pump, delivery._standby) if p is not None]
    assert all(isinstance(p, Pump) for p in pumps)
    outside = list(reachable(rig, skip={id(rig.supervisor)}))
    assert not any(obj is p for obj in outside for p in pumps), f"{what}: the pump leaks"


@contextmanager
def built(name: str) -> Iterator[Rig]:
    config = load_rig(CONFIG / name)
    clock = MonotonicClock()
    port: PtyPort | None = None
    driver = config.profile.pump.driver
    if driver in ("new-era", "harvard", "bridge"):
        physics = SimSyringePump(clock, config.syringe, config.profile.pump.mechanics)
        emulator: ByteDevice = (
            NewEraEmulator(clock, {0: physics}) if driver == "new-era"
            else HarvardEmulator(clock, {0: physics}) if driver == "harvard"
            else BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul))
        port = PtyPort(emulator)
        pump = config.profile.pump.model_copy(update={"port": port.path})
        config = RigConfig(config.profile.model_copy(update={"pump": pump}), config.drug,
                           config.syringe, config.source, config.journal_path)
    bus = ADS1115Emulator(lambda t: 70.0 + 20.0 * math.sin(2 * math.pi * 1.2 * t), clock)
    rig = build_rig(config, clock=clock, sink=MemorySink(), controller=NurseProtocol(),
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
        assert_only_the_supervisor_reaches_its_pumps(rig, name)
        view = rig.loop.step(rig.clock.now_s())
        assert not view.running


def test_profiles_cover_every_pump_driver() -> None:
    drivers = {load_rig(CONFIG / name).profile.pump.driver for name in PROFILES}
    assert drivers == {"sim", "new-era", "harvard", "gpio-stepper", "bridge"}


def test_a_bridge_that_does_not_answer_is_a_connection_error(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text("[pump]\ndriver = 'bridge'\nport = 'loop://'\n"
                    "[pump.bridge]\nreply_timeout_s = 0.01\nmax_attempts = 1\n")
    with pytest.raises(PumpConnectionError, match="no reply from the bridge"):
        build_rig(load_rig(path), clock=MonotonicClock(), sink=MemorySink(),
                  controller=NurseProtocol())


@pytest.mark.parametrize("pump_kind", ["sim", "new-era", "harvard", "bridge"])
def test_a_simulated_rig_with_spares_and_faults_holds_its_pumps_only_in_the_supervisor(
    pump_kind: SimPumpKind,
) -> None:
    clock = VirtualClock()
    setup = SimSetup(seed=3, pump=pump_kind, spare_syringe=True, waveform=True,
                     artefacts_per_h=2.0, hours=1.0,
                     faults=(parse_fault("occlusion@600"), parse_fault("flush@300+2")))
    rig = build_rig(load_rig(None), clock=clock, sink=MemorySink(), controller=NurseProtocol(),
                    sim=setup)
    try:
        assert rig.sim is not None and rig.sim.spares is not None
        rig.sim.spares.load(0.0)
        rig.supervisor.start(5.0, 0.0, soft_limit_confirmed=True)
        rig.loop.step(clock.advance_to(1.0))
        assert_only_the_supervisor_reaches_its_pumps(rig, f"sim with {pump_kind}")
    finally:
        rig.close()


class _Holder:
    __slots__ = ("kept",)

    def __init__(self, kept: object) -> None:
        self.kept = kept


def _leaks(pump: object) -> list[object]:
    """Every way of keeping the pump that the walk must see through."""
    def closure() -> object:
        return pump

    def defaults(kept: object = pump) -> object:
        return kept

    return [
        {"pump": pump},
        functools.partial(print, pump),
        functools.partial(print, end=pump),
        lambda: pump,
        closure,
        defaults,
        _Holder(pump).__init__,
        _Holder(pump),
        deque([pump]),
    ]


@pytest.mark.parametrize("way", range(len(_leaks(object()))))
def test_the_reachability_check_sees_attributes_closures_partials_and_bound_methods(
    way: int,
) -> None:
    with built("sim.toml") as rig:
        leaky = NurseProtocol()
        leaky.__dict__["kept"] = _leaks(rig.supervisor._delivery._pump)[way]
        rig.loop.set_controller(leaky)
        with pytest.raises(AssertionError, match="the pump leaks"):
            assert_only_the_supervisor_reaches_its_pumps(rig, "leaky")
