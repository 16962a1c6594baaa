"""One driver conformance suite for every serial pump, run against its emulator over a real pty.

Each test body runs for the NE-1000 and the Pump 11 Elite: the production driver talks to the
emulator through a pseudo-terminal; the emulator is driven by SimSyringePump on a VirtualClock,
so no test waits on wall time except for the short reply timeouts of the error cases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.harvard_codec import HarvardRequest
from drivers.pump.new_era_codec import NewEraRequest
from drivers.sim.emulated import (
    SERIAL_PUMP_KINDS,
    EmulatedPump,
    open_emulated_pump,
    start_emulated_pump,
)
from drivers.sim.syringe_pump import SimSyringePump
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeCatalogue, SyringeSpec
from vasopilot.core.errors import (
    PumpConnectionError,
    PumpError,
    PumpRefusedError,
    UncertainDeliveryError,
)
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import PumpAlarm, PumpState

SYRINGE: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]
MECHANICS = MechanicsSettings()
TIMEOUT_S = 0.25


@dataclass
class Rig:
    clock: VirtualClock
    emulated: EmulatedPump

    @property
    def pump(self) -> Pump:
        return self.emulated.pump

    def emulator_rate_ml_h(self) -> float:
        return self.emulated.emulator.state()[1]


@pytest.fixture(params=SERIAL_PUMP_KINDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    clock = VirtualClock()
    emulated = start_emulated_pump(request.param, clock, SYRINGE, MECHANICS,
                                   link=tmp_path / "pump", timeout_s=TIMEOUT_S)
    yield Rig(clock, emulated)
    emulated.close()


def test_driver_satisfies_the_pump_protocol(rig: Rig) -> None:
    assert isinstance(rig.pump, Pump)
    caps = rig.pump.capabilities
    # Norepinephrine runs at about 0.75-45 mL/h with 80 mcg/mL.
    assert 0 < caps.min_rate_ml_h < 0.75
    assert caps.max_rate_ml_h > 45.0
    assert caps.syringe_volume_ml == SYRINGE.volume_ml


def test_set_rate_starts_and_returns_the_read_back_rate(rig: Rig) -> None:
    status = rig.pump.set_rate(7.5)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)
    assert rig.emulator_rate_ml_h() == pytest.approx(7.5)


def test_rate_changes_while_infusing_without_stopping(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.clock.advance(60)
    status = rig.pump.set_rate(11.25)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(11.25)
    assert rig.emulated.physics.status().state is PumpState.INFUSING


def test_rate_is_rounded_down_never_up(rig: Rig) -> None:
    status = rig.pump.set_rate(7.123456)
    assert 7.123456 - 0.001 <= status.rate_ml_h <= 7.123456


def test_stop_stops_the_pump(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    status = rig.pump.stop()
    assert status.state is PumpState.STOPPED
    assert status.rate_ml_h == 0.0
    assert rig.emulated.physics.status().state is PumpState.STOPPED


def test_delivered_volume_follows_the_pump_counter(rig: Rig) -> None:
    rig.pump.set_rate(6.0)
    rig.clock.advance(1800)
    status = rig.pump.status()
    assert status.delivered_ml == pytest.approx(3.0, abs=0.01)
    assert status.syringe_remaining_ml == pytest.approx(SYRINGE.volume_ml - 3.0, abs=0.01)


def test_out_of_range_rate_is_refused_and_the_running_rate_kept(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    with pytest.raises(PumpRefusedError):
        rig.pump.set_rate(50_000.0)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)


def test_rate_the_mechanism_cannot_reach_is_refused_by_the_pump(rig: Rig) -> None:
    # Within the pump's published range, above what the syringe mechanics can push.
    assert rig.pump.capabilities.max_rate_ml_h > 500.0
    assert rig.emulated.physics.capabilities.max_rate_ml_h < 500.0
    rig.pump.set_rate(7.5)
    with pytest.raises(PumpRefusedError, match=r"(?i)out of range|OOR"):
        rig.pump.set_rate(500.0)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)


def test_stall_is_reported_for_the_supervisor_to_treat_as_occlusion(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.clock.advance(60)
    rig.emulated.physics.faults.stall()
    status = rig.pump.status()
    assert status.stalled
    assert not status.end_of_travel
    assert status.state is PumpState.ALARM
    assert status.alarm is PumpAlarm.STALL


def test_empty_syringe_is_reported_as_end_of_travel(tmp_path: Path) -> None:
    for kind in SERIAL_PUMP_KINDS:
        clock = VirtualClock()
        small = SYRINGE.model_copy(update={"volume_ml": 1.0})
        emulated = start_emulated_pump(kind, clock, small, MECHANICS, timeout_s=TIMEOUT_S)
        try:
            emulated.pump.set_rate(60.0)
            clock.advance(120)
            status = emulated.pump.status()
            assert status.end_of_travel, kind
            assert not status.stalled, kind
        finally:
            emulated.close()


def test_back_off_withdraws_the_volume_then_infuses_again(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.clock.advance(600)
    before = rig.pump.status().delivered_ml
    status = rig.pump.back_off(300.0)
    assert status.state is PumpState.BACKING_OFF
    rig.clock.advance(60)
    after = rig.pump.status()
    assert after.state is PumpState.STOPPED
    assert after.delivered_ml == pytest.approx(before - 0.3, abs=0.002)
    again = rig.pump.set_rate(7.5)
    assert again.state is PumpState.INFUSING
    rig.clock.advance(60)
    assert rig.pump.status().delivered_ml > after.delivered_ml


def test_garbage_before_a_reply_is_a_communication_error_and_the_link_recovers(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.emulated.emulator.faults.garbage_before_reply = b"\xff\x00junk"
    with pytest.raises(FrameError) as raised:
        rig.pump.status()
    assert raised.value.fault is FrameFault.OUTSIDE_FRAME
    assert rig.pump.status().rate_ml_h == pytest.approx(7.5)


def test_half_a_reply_is_a_communication_error_and_the_link_recovers(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.emulated.emulator.faults.truncate_next_replies = 1
    with pytest.raises(FrameError) as raised:
        rig.pump.status()
    assert raised.value.fault is FrameFault.HALF_FRAME
    assert rig.pump.status().rate_ml_h == pytest.approx(7.5)


def test_reply_from_another_address_is_a_communication_error(rig: Rig) -> None:
    rig.emulated.emulator.faults.wrong_address_next_replies = 1
    with pytest.raises(FrameError) as raised:
        rig.pump.status()
    assert raised.value.fault is FrameFault.OTHER_ADDRESS
    assert rig.pump.status().state is PumpState.STOPPED


def test_silence_after_a_query_is_a_connection_error(rig: Rig) -> None:
    rig.emulated.emulator.faults.drop_next_replies = 1
    with pytest.raises(PumpConnectionError, match="no reply"):
        rig.pump.status()
    assert rig.pump.status().state is PumpState.STOPPED


def test_lost_reply_to_a_rate_change_is_uncertain_delivery(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    faults = rig.emulated.emulator.faults
    # The status query before the change gets through; the rate command's reply is lost.
    faults.intact_replies_first = 1
    faults.drop_next_replies = 1
    with pytest.raises(UncertainDeliveryError, match="reply was lost"):
        rig.pump.set_rate(9.0)
    # The supervisor reconciles with the read-back: the pump did act.
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(9.0)


def _changes_the_pump(request: object) -> bool:
    if isinstance(request, NewEraRequest):
        return request.command in ("RUN", "STP", "DIR", "VOL", "DIA", "PUR") or (
            request.command == "RAT" and bool(request.params))
    assert isinstance(request, HarvardRequest)
    return request.command in ("irun", "wrun", "stp", "tvolume", "ctvolume", "diameter") or (
        request.command in ("irate", "wrate") and bool(request.args))


def test_unplugged_port_is_a_connection_error_and_replug_keeps_the_rate(rig: Rig) -> None:
    rig.pump.set_rate(7.5)
    rig.emulated.port.unplug()
    with pytest.raises(PumpConnectionError):
        rig.pump.status()
    with pytest.raises(PumpConnectionError, match="cannot open"):
        rig.pump.status()
    rig.emulated.port.replug()
    seen = len(rig.emulated.emulator.received)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)
    assert not any(_changes_the_pump(r) for r in rig.emulated.emulator.received[seen:])


def test_missing_port_is_a_connection_error(tmp_path: Path) -> None:
    from drivers.pump.harvard import HarvardPump
    from drivers.pump.new_era import NewEraPump

    clock = VirtualClock()
    with pytest.raises(PumpConnectionError, match="cannot open"):
        NewEraPump(str(tmp_path / "absent"), clock=clock, syringe=SYRINGE)
    with pytest.raises(PumpConnectionError, match="cannot open"):
        HarvardPump(str(tmp_path / "absent"), clock=clock, syringe=SYRINGE)


@pytest.mark.parametrize("kind", SERIAL_PUMP_KINDS)
def test_emulated_pump_delivers_like_the_physics_over_a_virtual_hour(kind: str) -> None:
    clock = VirtualClock()
    pump, close = open_emulated_pump(kind, clock, SYRINGE, MECHANICS)
    reference = SimSyringePump(clock, SYRINGE, MECHANICS)
    try:
        pump.set_rate(7.5)
        reference.set_rate(7.5)
        for _ in range(60):
            clock.advance(60)
            pump.heartbeat()
        through_serial = pump.status().delivered_ml
        direct = reference.status().delivered_ml
    finally:
        close()
    # The pump's counters are written with 4 significant digits: 0.001 mL at this volume.
    assert through_serial == pytest.approx(direct, abs=0.0015)
    assert through_serial == pytest.approx(7.5, abs=0.01)


_OPS = st.one_of(
    st.tuples(st.just("set_rate"), st.floats(min_value=-1.0, max_value=1e6)),
    st.tuples(st.just("stop"), st.none()),
    st.tuples(st.just("status"), st.none()),
    st.tuples(st.just("heartbeat"), st.none()),
    st.tuples(st.just("back_off"), st.floats(min_value=0.0, max_value=1e7)),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=600.0)),
    st.tuples(st.just("stall"), st.none()),
    st.tuples(st.sampled_from(["garbage", "truncate", "drop", "wrong_address"]),
              st.binary(min_size=1, max_size=8)),
)


def _apply(emulated: EmulatedPump, clock: VirtualClock, op: str, arg: object) -> None:
    faults = emulated.emulator.faults
    pump = emulated.pump
    if op == "set_rate":
        assert isinstance(arg, float)
        pump.set_rate(arg)
    elif op == "back_off":
        assert isinstance(arg, float)
        pump.back_off(arg)
    elif op == "advance":
        assert isinstance(arg, float)
        clock.advance(arg)
    elif op == "stall":
        emulated.physics.faults.stall()
    elif op == "garbage":
        assert isinstance(arg, bytes)
        faults.garbage_before_reply = arg
    elif op == "truncate":
        faults.truncate_next_replies = 1
    elif op == "drop":
        faults.drop_next_replies = 1
    elif op == "wrong_address":
        faults.wrong_address_next_replies = 1
    else:
        getattr(pump, op)()


@pytest.mark.parametrize("kind", SERIAL_PUMP_KINDS)
@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_OPS, max_size=20))
def test_random_commands_never_crash_the_driver_or_desynchronise_the_link(
    kind: str, ops: list[tuple[str, object]]
) -> None:
    clock = VirtualClock()
    emulated = start_emulated_pump(kind, clock, SYRINGE, MECHANICS, timeout_s=0.1)
    try:
        for op, arg in ops:
            # Refusals and injected line faults are the pump's answers, not crashes.
            with contextlib.suppress(PumpError):
                _apply(emulated, clock, op, arg)
        faults = emulated.emulator.faults
        faults.garbage_before_reply = b""
        faults.truncate_next_replies = faults.drop_next_replies = 0
        faults.wrong_address_next_replies = 0
        status = emulated.pump.status()
        running = status.state is PumpState.INFUSING
        assert running == (emulated.physics.status().state is PumpState.INFUSING)
        if running:
            assert status.rate_ml_h == pytest.approx(emulated.emulator.state()[1])
    finally:
        emulated.close()
