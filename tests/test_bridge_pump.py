"""BridgePump against the firmware emulator over a real pty: the Pump contract, and the fault
tests of issue 16 (host silent, watchdog reset, power-on reset, lossy link, unplug/replug).

The emulator runs on a VirtualClock; only the driver's short reply timeouts are wall time.
In each fault test the steps of every boot stay within one step of the integral of the
commanded rate over the time the microcontroller was alive, and no request was executed twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.pump.bridge import BridgePump
from drivers.sim.emulated import EmulatedPump, start_emulated_pump
from drivers.sim.syringe_pump import SimSyringePump
from firmware_bridge import protocol as p
from firmware_bridge.emulator import BridgeEmulator
from safety.supervisor import Supervisor
from tests.bridge_fixtures import MECHANICS, SYRINGE, assert_within_one_step
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings, SafetySettings
from vasopilot.core.errors import (
    PumpConnectionError,
    PumpError,
    PumpRefusedError,
    UncertainDeliveryError,
)
from vasopilot.core.events import DoseApplied, Event, Fault, PumpContract
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import HostLossBehaviour, PumpAlarm, PumpState


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[EmulatedPump]:
    emulated = start_emulated_pump("bridge", VirtualClock(), SYRINGE, MECHANICS,
                                   link=tmp_path / "bridge")
    yield emulated
    emulated.close()


def _clock(rig: EmulatedPump) -> VirtualClock:
    clock = rig.pump._clock  # type: ignore[attr-defined]
    assert isinstance(clock, VirtualClock)
    return clock


def _emu(rig: EmulatedPump) -> BridgeEmulator:
    assert isinstance(rig.emulator, BridgeEmulator)
    return rig.emulator


def _never_twice(emu: BridgeEmulator) -> None:
    """No (link, seq) executed twice in a boot, and no setting (generation) run twice."""
    for boot in emu.boots:
        keys = [(link, seq) for link, seq, _t, _b in boot.executed]
        assert len(keys) == len(set(keys)), boot.executed
        generations = [p.decode_message(t, b).values()[0] for _l, _s, t, b in boot.executed
                       if t == p.SET_RATE]
        assert len(generations) == len(set(generations)), generations


def test_the_bridge_is_a_pump_that_keeps_the_rate_if_the_host_dies(rig: EmulatedPump) -> None:
    assert isinstance(rig.pump, Pump)
    caps = rig.pump.capabilities
    assert caps.host_loss is HostLossBehaviour.KEEPS_RATE
    assert caps.min_rate_ml_h < 0.75
    assert caps.max_rate_ml_h > 45.0
    assert caps.can_back_off


def test_set_rate_reads_back_and_delivery_follows_the_steps(rig: EmulatedPump) -> None:
    status = rig.pump.set_rate(7.5)
    assert status.state is PumpState.INFUSING
    assert 7.5 - 0.001 <= status.rate_ml_h <= 7.5
    _clock(rig).advance(1800)
    status = rig.pump.status()
    assert status.delivered_ml == pytest.approx(3.75, abs=0.001)
    assert status.syringe_remaining_ml == pytest.approx(SYRINGE.volume_ml - 3.75, abs=0.001)
    stopped = rig.pump.stop()
    assert stopped.state is PumpState.STOPPED and stopped.rate_ml_h == 0.0
    assert_within_one_step(_emu(rig), _clock(rig).now_s())


def test_out_of_range_is_refused_and_the_running_rate_kept(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    with pytest.raises(PumpRefusedError):
        rig.pump.set_rate(rig.pump.capabilities.max_rate_ml_h * 2)
    with pytest.raises(PumpRefusedError):
        rig.pump.set_rate(rig.pump.capabilities.min_rate_ml_h / 2)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(7.5, 1e-3)


def test_back_off_withdraws_the_volume_then_stops(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(600)
    before = rig.pump.status().delivered_ml
    assert rig.pump.back_off(300.0).state is PumpState.BACKING_OFF
    _clock(rig).advance(60)
    after = rig.pump.status()
    assert after.state is PumpState.STOPPED
    assert after.delivered_ml == pytest.approx(before - 0.3, abs=0.001)
    assert rig.pump.set_rate(7.5).state is PumpState.INFUSING


def test_host_silent_past_the_timeout_keeps_the_rate_and_alarms_until_acknowledged(
        rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(2.5)  # the host-loss timeout is 2 s
    assert _emu(rig).alarm_output
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert status.alarm is PumpAlarm.HOST_WAS_LOST
    pump = rig.pump
    assert isinstance(pump, BridgePump)
    assert pump.bridge_state().alarm_latched
    cleared = pump.acknowledge_alarm()
    assert cleared.alarm is None and cleared.state is PumpState.INFUSING
    assert not _emu(rig).alarm_output
    assert_within_one_step(_emu(rig), _clock(rig).now_s())
    _never_twice(_emu(rig))


def test_a_lost_reply_is_retransmitted_and_answered_from_the_cache(rig: EmulatedPump) -> None:
    _emu(rig).faults.drop_next_tx = 1
    status = rig.pump.set_rate(9.0)
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(9.0)
    assert rig.pump.retransmissions == 1  # type: ignore[attr-defined]
    _never_twice(_emu(rig))


def test_replies_lost_on_every_attempt_are_an_uncertain_delivery_then_read_back(
        rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _emu(rig).faults.drop_next_tx = 5
    with pytest.raises(UncertainDeliveryError, match="reply was lost"):
        rig.pump.set_rate(9.0)
    # It was applied, once: the read-back says so.
    status = rig.pump.status()
    assert status.rate_ml_h == pytest.approx(9.0)
    _never_twice(_emu(rig))


def test_a_stall_is_reported_for_the_supervisor_and_backing_off_still_works(
        rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(60)
    rig.physics.faults.stall()
    _clock(rig).advance(0.5)
    status = rig.pump.status()
    assert status.stalled and status.state is PumpState.ALARM and status.alarm is PumpAlarm.STALL
    with pytest.raises(PumpRefusedError, match="blocked"):
        rig.pump.set_rate(7.5)
    assert rig.pump.back_off(100.0).state is PumpState.BACKING_OFF


def test_heartbeats_keep_the_alarm_off(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    for _ in range(100):
        _clock(rig).advance(0.5)
        rig.pump.heartbeat()
    assert not _emu(rig).alarm_output
    assert rig.pump.status().alarm is None


def test_watchdog_reset_mid_infusion_resumes_and_nothing_is_sent_again(
        rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(300)
    rig.pump.status()
    _emu(rig).hang_main_loop()
    _clock(rig).advance(10)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(7.5, 1e-3)
    pump = rig.pump
    assert isinstance(pump, BridgePump)
    state = pump.bridge_state()
    assert state.resumed_after_watchdog and state.reset_cause == "watchdog"
    assert pump.resets_seen == 1
    second = _emu(rig).boots[-1]
    assert not any(t == p.SET_RATE for _l, _s, t, _b in second.executed)
    assert_within_one_step(_emu(rig), _clock(rig).now_s())
    _never_twice(_emu(rig))


def test_power_on_reset_stops_and_the_driver_re_applies_the_dose(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(120)
    before_ml = rig.pump.status().delivered_ml
    _emu(rig).power_cycle()
    _clock(rig).advance(1.0)
    assert _emu(rig).firmware_status() is not None
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(7.5, 1e-3)
    _first, second = _emu(rig).boots
    assert second.cause == p.RESET_POWER_ON
    # Delivered volume carries the first boot's count as last read across the reset (what it
    # stepped after that read died with it).
    _clock(rig).advance(60)
    ul_per_step = rig.pump.ul_per_step  # type: ignore[attr-defined]
    expected_ml = before_ml + _emu(rig).steps_now() * ul_per_step / 1000
    assert rig.pump.status().delivered_ml == pytest.approx(expected_ml, abs=1e-9)
    assert before_ml == pytest.approx(0.25, abs=0.0002)
    assert_within_one_step(_emu(rig), _clock(rig).now_s())
    _never_twice(_emu(rig))


def test_a_re_apply_cut_off_by_the_link_is_sent_at_the_next_exchange(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(60)
    rig.pump.status()
    _emu(rig).power_cycle()
    _clock(rig).advance(1.0)
    faults = _emu(rig).faults
    # status (refused: unknown link), hello and policy get through; every send of the rate
    # does not.
    faults.intact_rx_first, faults.drop_next_rx = 3, 5
    with pytest.raises(PumpConnectionError):
        rig.pump.status()
    assert _emu(rig).firmware_status().rate_q16 == 0  # type: ignore[union-attr]
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(7.5, 1e-3)
    _never_twice(_emu(rig))


def test_unplug_and_replug_keeps_the_rate_and_changes_nothing(rig: EmulatedPump) -> None:
    rig.pump.set_rate(7.5)
    _clock(rig).advance(30)
    rig.port.unplug()
    with pytest.raises(PumpConnectionError):
        rig.pump.status()
    _clock(rig).advance(30)
    rig.port.replug()
    executed_before = len(_emu(rig).boots[-1].executed)
    status = rig.pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == pytest.approx(7.5, 1e-3)
    after = _emu(rig).boots[-1].executed[executed_before:]
    assert {t for _l, _s, t, _b in after} <= {p.HELLO, p.SET_POLICY, p.GET_STATUS}
    assert_within_one_step(_emu(rig), _clock(rig).now_s())
    _never_twice(_emu(rig))


@pytest.mark.parametrize("rate", [0.01, 0.10])
@pytest.mark.parametrize("fault", ["drop", "corrupt"])
def test_a_lossy_link_applies_nothing_twice_and_keeps_the_steps(tmp_path: Path, rate: float,
                                                                fault: str) -> None:
    clock = VirtualClock()
    emulated = start_emulated_pump("bridge", clock, SYRINGE, MECHANICS)
    emu = _emu(emulated)
    if fault == "drop":
        emu.faults.drop_rate = rate
    else:
        emu.faults.corrupt_rate = rate
    pump = emulated.pump
    failures = 0
    try:
        rates = [5.0, 7.5, 10.0, 12.5, 7.5, 3.0, 9.0, 11.0]
        for i in range(60):
            try:
                if i % 3 == 0:
                    pump.set_rate(rates[(i // 3) % len(rates)])
                else:
                    pump.heartbeat()
                    pump.status()
            except PumpError:
                failures += 1
            clock.advance(0.7)
        emu.faults.drop_rate = emu.faults.corrupt_rate = 0.0
        final = pump.set_rate(6.0)
        clock.advance(30)
        assert pump.status().rate_ml_h == pytest.approx(final.rate_ml_h)
    finally:
        emulated.close()
    assert_within_one_step(emu, clock.now_s())
    _never_twice(emu)
    assert len(emu.boots) == 1
    assert isinstance(pump, BridgePump)
    # The motor only ever ran at rates the host commanded.
    commanded = {pump._q16(r) for r in [*rates, 6.0]}
    assert {seg.rate_q16 for seg in emu.boots[0].segments} <= commanded
    if rate >= 0.1:
        assert pump.retransmissions > 0, "the faults never hit the link"
    assert failures <= 60 * rate * 2 + 2


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> Event:
        self.events.append(event)
        return event


def _supervised(rig: EmulatedPump) -> tuple[Supervisor, list[Event]]:
    """A supervisor holding the bridge, infusing 10 mcg/min, and its journal."""
    sink = _Sink()
    supervisor = Supervisor(rig.pump, drug=NOREPINEPHRINE, patient=PatientSettings(),
                            safety=SafetySettings(), syringe=SYRINGE, sink=sink)
    supervisor.start(10.0, _clock(rig).now_s(), soft_limit_confirmed=True)
    return supervisor, sink.events


def test_the_supervisor_journals_the_keep_rate_contract_and_a_reset_is_no_false_stop(
        rig: EmulatedPump) -> None:
    supervisor, events = _supervised(rig)
    clock = _clock(rig)
    (contract,) = [e for e in events if isinstance(e, PumpContract)]
    assert contract.host_loss is HostLossBehaviour.KEEPS_RATE
    for _ in range(10):
        clock.advance(1.0)
        supervisor.tick(clock.now_s())
    _emu(rig).power_cycle()
    for _ in range(10):
        clock.advance(1.0)
        with contextlib.suppress(PumpError):
            supervisor.tick(clock.now_s())
    view = supervisor.view(clock.now_s())
    assert view.running and view.dose_mcg_min == pytest.approx(10.0)
    assert not any(isinstance(e, DoseApplied) and e.dose_mcg_min == 0 for e in events)
    assert rig.pump.status().state is PumpState.INFUSING
    _never_twice(_emu(rig))


def test_the_supervisor_stops_for_a_stall_the_bridge_reports(
        rig: EmulatedPump) -> None:
    """The true stop beside the false one above: a stalled motor is an occlusion (S8)."""
    supervisor, events = _supervised(rig)
    clock = _clock(rig)
    clock.advance(60)
    supervisor.tick(clock.now_s())
    rig.physics.faults.stall()
    clock.advance(1.0)
    supervisor.tick(clock.now_s())
    view = supervisor.view(clock.now_s())
    assert not view.running
    assert any(isinstance(e, DoseApplied) and e.dose_mcg_min == 0 for e in events)
    assert any(isinstance(e, Fault) and e.code == "OCCLUSION_DETECTED" for e in events)
    assert rig.pump.status().state is not PumpState.INFUSING


class _Tampered:
    """The emulator behind a line that rewrites its status replies with ``edit`` (fields by
    name), CRC and all: what a firmware fault would send."""

    def __init__(self, emu: BridgeEmulator) -> None:
        self.emu = emu
        self.edit: dict[str, int] = {}
        self._decoder = p.FrameDecoder()

    def on_bytes(self, data: bytes) -> bytes:
        return self._rewrite(self.emu.on_bytes(data))

    def poll(self) -> bytes:
        return self._rewrite(self.emu.poll())

    def _rewrite(self, data: bytes) -> bytes:
        if not self.edit:
            return data
        out = b""
        for frame in self._decoder.feed(data):
            message = frame.message()
            if isinstance(message, p.Status):
                fields = dict(zip(message.FIELDS, message.values(), strict=True))
                fields.update(self.edit)
                message = p.Status(**fields)
            out += p.encode_frame(frame.link, frame.seq, message, frame.version)
        return out


@pytest.mark.parametrize(("edit", "why"), [
    ({"boot_id": 12345}, "the link greeted boot"),
    ({"direction": 7}, "direction 7"),
    ({"direction": p.WITHDRAW}, "withdrawing outside a back-off"),
    ({"infused_steps": 0}, "below the"),
])
def test_a_status_that_cannot_be_true_is_not_adopted(edit: dict[str, int], why: str) -> None:
    from drivers.sim.pty_port import PtyPort

    clock = VirtualClock()
    physics = SimSyringePump(clock, SYRINGE, MECHANICS)
    line = _Tampered(BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul))
    with PtyPort(line) as port:
        pump = BridgePump(port.path, clock=clock, syringe=SYRINGE, mechanics=MECHANICS,
                          timeout_s=0.05)
        try:
            assert pump.set_rate(7.5).state is PumpState.INFUSING
            clock.advance(60.0)
            before = pump.status()
            line.edit = edit
            with pytest.raises(PumpError, match=why):
                pump.status()
            line.edit = {}
            # the real state, read again on a new link, is the one the driver keeps
            after = pump.status()
            assert after.state is PumpState.INFUSING
            assert after.delivered_ml >= before.delivered_ml
        finally:
            pump.close()
