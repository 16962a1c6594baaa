"""NE-1000 driver and emulator: what the conformance suite does not cover (safe mode, alarms,
units, several pumps on one line, and the emulator seen by a third-party program)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from pump_fixtures import MECHANICS, SYRINGE, emulate_process, next_reply, raw_port

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.new_era import NewEraAlarmError, NewEraLine, NewEraPump, NewEraRefusedError
from drivers.pump.new_era_codec import (
    Framing,
    NewEraAlarm,
    NewEraError,
    NewEraReply,
    NewEraRequest,
    NewEraStatus,
    RateUnit,
    ReplyDecoder,
    encode_safe,
)
from drivers.sim.emulated import EmulatedPump, start_emulated_pump
from drivers.sim.new_era_emulator import NewEraEmulator
from drivers.sim.pty_port import PtyPort
from drivers.sim.syringe_pump import SimSyringePump
from vasopilot.core.clock import VirtualClock
from vasopilot.core.types import HostLossBehaviour, PumpAlarm, PumpState


@pytest.fixture
def safe_rig(clock: VirtualClock) -> Iterator[EmulatedPump]:
    rig = start_emulated_pump("new-era", clock, SYRINGE, MECHANICS, safe_mode_timeout_s=10,
                              timeout_s=0.2)
    yield rig
    rig.close()


@pytest.fixture
def raw(clock: VirtualClock) -> Iterator[tuple[serial.Serial, NewEraEmulator]]:
    """A bare pyserial port on the emulator, as a third-party program would open it."""
    emulator = NewEraEmulator(clock, {0: SimSyringePump(clock, SYRINGE, MECHANICS)})
    with raw_port(emulator, 19200) as link:
        yield link, emulator


def _ask(link: serial.Serial, request: bytes) -> NewEraReply:
    link.write(request)
    return _next_reply(link, request)


def _next_reply(link: serial.Serial, request: bytes = b"") -> NewEraReply:
    return next_reply(link, ReplyDecoder(framing=Framing.EITHER), NewEraReply, request)


def test_first_command_after_power_up_is_answered_with_the_reset_alarm(
    raw: tuple[serial.Serial, NewEraEmulator],
) -> None:
    link, _ = raw
    assert _ask(link, b"VER\r") == NewEraReply(0, NewEraStatus.ALARM, alarm=NewEraAlarm.RESET)
    assert _ask(link, b"VER\r") == NewEraReply(0, NewEraStatus.STOPPED, "NE1000V3.928")


def test_emulator_speaks_basic_mode_like_the_pump(
    raw: tuple[serial.Serial, NewEraEmulator],
) -> None:
    link, _ = raw
    _ask(link, b"\r")
    assert _ask(link, b"dia 26.7\r").error is None
    assert _ask(link, b"DIA\r").data == "26.70"
    assert _ask(link, b"rat 7.5 mh\r").status is NewEraStatus.STOPPED
    assert _ask(link, b"RUN\r").status is NewEraStatus.INFUSING
    assert _ask(link, b"RAT\r").data == "7.500MH"
    # Units cannot change while pumping; the bare number can.
    assert _ask(link, b"RAT 5 UH\r").error is NewEraError.NOT_APPLICABLE
    assert _ask(link, b"RAT 6\r").error is None
    assert _ask(link, b"RAT 9999 MM\r").error is NewEraError.NOT_APPLICABLE
    assert _ask(link, b"FOO\r").error is NewEraError.UNKNOWN_COMMAND
    assert _ask(link, b"STP\r").status is NewEraStatus.PAUSED
    assert _ask(link, b"STP\r").status is NewEraStatus.STOPPED
    assert _ask(link, b"RAT 99999 MH\r").error is NewEraError.OUT_OF_RANGE
    assert _ask(link, b"DIS\r").data == "I0.000W0.000ML"


def test_emulator_answers_saf_in_the_mode_it_selects_and_bad_crc_with_com(
    raw: tuple[serial.Serial, NewEraEmulator],
) -> None:
    link, _ = raw
    _ask(link, b"\r")
    assert _ask(link, encode_safe(b"SAF5")) == NewEraReply(0, NewEraStatus.STOPPED, safe=True)
    corrupt = bytearray(encode_safe(b"0VER"))
    corrupt[-2] ^= 0xFF
    reply = _ask(link, bytes(corrupt))
    assert reply.error is NewEraError.COMMUNICATION
    assert reply.safe
    assert _ask(link, b"VER\r").error is NewEraError.COMMUNICATION
    assert _ask(link, encode_safe(b"SAF0")) == NewEraReply(0, NewEraStatus.STOPPED)


def test_safe_mode_timeout_stops_the_pump_and_sends_an_unsolicited_alarm(
    raw: tuple[serial.Serial, NewEraEmulator], clock: VirtualClock,
) -> None:
    link, emulator = raw
    _ask(link, b"\r")
    _ask(link, encode_safe(b"SAF5"))
    _ask(link, encode_safe(b"RAT7.5MH"))
    assert _ask(link, encode_safe(b"RUN")).status is NewEraStatus.INFUSING
    clock.advance(6)
    # The emulator's own thread notices the silence and speaks first.
    assert _next_reply(link) == NewEraReply(0, NewEraStatus.ALARM,
                                            alarm=NewEraAlarm.SAFE_MODE_TIMEOUT, safe=True)
    assert emulator.state()[0] is NewEraStatus.STOPPED
    # The unsolicited packet did not acknowledge: the next reply carries the alarm.
    assert _ask(link, encode_safe(b"DIS")).alarm is NewEraAlarm.SAFE_MODE_TIMEOUT
    assert _ask(link, encode_safe(b"DIS")).alarm is None


def test_a_forged_basic_stall_on_the_safe_link_is_a_link_error_and_the_pump_runs_on(
    safe_rig: EmulatedPump,
) -> None:
    """Issue 11, case 5, on the pty: a CRC-less ``A?S`` slipped in before the real reply made
    the driver report a stall (and the supervisor stop the pump); now it is a link error."""
    safe_rig.pump.set_rate(7.5)
    safe_rig.emulator.faults.garbage_before_reply = b"\x0200A?S\x03"
    with pytest.raises(FrameError) as raised:
        safe_rig.pump.status()
    assert raised.value.fault is FrameFault.UNCHECKED_FRAME
    status = safe_rig.pump.status()
    assert status.state is PumpState.INFUSING
    assert not status.stalled
    assert status.alarm is None


def test_heartbeat_keeps_a_safe_mode_pump_running_at_half_the_timeout(
    safe_rig: EmulatedPump, clock: VirtualClock,
) -> None:
    pump = safe_rig.pump
    assert pump.capabilities.host_loss is HostLossBehaviour.STOPS_AND_ALARMS
    pump.set_rate(7.5)
    before = len(safe_rig.emulator.received)
    for _ in range(60):
        clock.advance(1)
        pump.heartbeat()
    # 60 s at a 10 s timeout: one status query every 5 s, no more.
    assert len(safe_rig.emulator.received) - before == 12
    status = pump.status()
    assert status.state is PumpState.INFUSING
    assert status.delivered_ml == pytest.approx(7.5 / 60, abs=0.002)


def test_silent_host_stops_a_safe_mode_pump_with_a_host_timeout_alarm(
    safe_rig: EmulatedPump, clock: VirtualClock,
) -> None:
    safe_rig.pump.set_rate(7.5)
    clock.advance(11)
    status = safe_rig.pump.status()
    assert status.state is PumpState.ALARM
    assert status.alarm is PumpAlarm.HOST_TIMEOUT
    assert safe_rig.physics.status().state is PumpState.STOPPED


def test_basic_mode_pump_keeps_its_rate_when_the_host_goes_quiet(clock: VirtualClock) -> None:
    rig = start_emulated_pump("new-era", clock, SYRINGE, MECHANICS)
    try:
        assert rig.pump.capabilities.host_loss is HostLossBehaviour.KEEPS_RATE
        rig.pump.set_rate(7.5)
        clock.advance(600)
        assert rig.pump.status().state is PumpState.INFUSING
    finally:
        rig.close()


def test_alarm_met_by_a_rate_change_is_reported_not_overridden(
    safe_rig: EmulatedPump, clock: VirtualClock,
) -> None:
    safe_rig.pump.set_rate(7.5)
    clock.advance(1)
    safe_rig.physics.faults.stall()
    with pytest.raises(NewEraAlarmError) as caught:
        safe_rig.pump.set_rate(9.0)
    assert caught.value.alarm is NewEraAlarm.STALL
    pump = safe_rig.pump
    assert isinstance(pump, NewEraPump)
    assert pump.alarm is NewEraAlarm.STALL
    status = safe_rig.pump.status()
    assert status.stalled
    assert status.state is PumpState.ALARM


def test_jammed_pump_is_not_restarted(safe_rig: EmulatedPump, clock: VirtualClock) -> None:
    safe_rig.pump.set_rate(7.5)
    safe_rig.physics.faults.stall()
    assert safe_rig.pump.status().stalled
    with pytest.raises(NewEraRefusedError) as caught:
        safe_rig.pump.set_rate(7.5)
    assert caught.value.error is NewEraError.NOT_APPLICABLE
    assert safe_rig.physics.status().state is not PumpState.INFUSING


def test_power_loss_is_reported_as_an_alarm(safe_rig: EmulatedPump) -> None:
    safe_rig.pump.set_rate(7.5)
    emulator = safe_rig.emulator
    assert isinstance(emulator, NewEraEmulator)
    emulator.power_cycle()
    status = safe_rig.pump.status()
    assert status.state is PumpState.ALARM
    assert status.alarm is PumpAlarm.POWER_LOSS
    assert safe_rig.pump.set_rate(7.5).state is PumpState.INFUSING


def test_rate_past_the_unit_range_while_running_pauses_and_changes_unit(
    safe_rig: EmulatedPump,
) -> None:
    pump = safe_rig.pump
    assert isinstance(pump, NewEraPump)
    pump.set_rate(0.08)
    assert pump.capabilities.resolution_ml_h == pytest.approx(1e-5)
    status = pump.set_rate(12.0)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(12.0)
    emulator = safe_rig.emulator
    assert isinstance(emulator, NewEraEmulator)
    commands = [r.command for r in emulator.received[-8:] if isinstance(r, NewEraRequest)]
    assert "STP" in commands
    assert "RUN" in commands


def test_rate_is_written_in_the_unit_with_the_best_resolution(safe_rig: EmulatedPump) -> None:
    pump = safe_rig.pump
    assert isinstance(pump, NewEraPump)
    pump.set_rate(22.5)
    emulator = safe_rig.emulator
    assert isinstance(emulator, NewEraEmulator)
    sent = [r for r in emulator.received
            if isinstance(r, NewEraRequest) and r.command == "RAT" and r.params]
    assert sent[-1].params == "375.0" + RateUnit.UL_MIN.value


def test_several_pumps_share_one_line(clock: VirtualClock) -> None:
    physics = {0: SimSyringePump(clock, SYRINGE, MECHANICS),
               7: SimSyringePump(clock, SYRINGE, MECHANICS)}
    with PtyPort(NewEraEmulator(clock, physics)) as port:
        line = NewEraLine(port.path, timeout_s=0.2)
        first = NewEraPump(port.path, clock=clock, syringe=SYRINGE, address=0, line=line,
                           safe_mode_timeout_s=5)
        second = NewEraPump(port.path, clock=clock, syringe=SYRINGE, address=7, line=line,
                            safe_mode_timeout_s=5)
        first.set_rate(3.0)
        second.set_rate(6.0)
        clock.advance(1)
        assert first.status().rate_ml_h == pytest.approx(3.0)
        assert second.status().rate_ml_h == pytest.approx(6.0)
        assert physics[7].status().rate_ml_h == pytest.approx(6.0, rel=1e-3)
        line.close()


def test_vasopilot_emulate_serves_a_third_party_program(tmp_path: Path) -> None:
    link_path = tmp_path / "ne1000"
    with emulate_process("new-era", link_path) as device:
        assert device.startswith("/dev/")
        assert os.path.realpath(link_path) == device
        with serial.Serial(str(link_path), 19200, timeout=2.0) as link:
            assert _ask(link, b"VER\r").alarm is NewEraAlarm.RESET
            assert _ask(link, b"VER\r").data == "NE1000V3.928"
    assert not link_path.exists()
