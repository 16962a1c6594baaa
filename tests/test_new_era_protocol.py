"""The NE-1000 driver held byte for byte against the manual (docs/pumps.md, "New Era Pump
Systems NE-1000 family"): every command it sends, in basic and in safe mode, with the error and
alarm replies the manual lists. Each exchange names its section of docs/pumps.md."""

from __future__ import annotations

import pytest
from protocol_script import SCRIPT_URL, Exchange, basic, safe, scripted
from pump_fixtures import SYRINGE

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.new_era import NewEraAlarmError, NewEraPump, NewEraRefusedError
from drivers.pump.new_era_codec import NewEraAlarm, NewEraError
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import PumpRefusedError, UncertainDeliveryError
from vasopilot.core.types import PumpState

# Where docs/pumps.md states each exchange.
BASIC = "NE-1000, Basic mode: [address]COMMAND[parameters]\\r; reply STX addr(2) status data ETX"
STATUS = "NE-1000, Basic mode: an empty command is a status query"
SAFE = "NE-1000, Safe mode: STX LEN data CRC_hi CRC_lo ETX, CRC-16/XMODEM over the data"
SAF = ("NE-1000, Safe mode: SAF n selects safe mode, SAF0 basic; a pump in basic mode still "
       "accepts a safe-mode packet; the reply to SAF is framed in the mode it selects")
POWER_UP = ("NE-1000, Status characters: the first command after power-up is answered A?R, "
            "and answering it acknowledges it; an alarm blocks changes and starting")
ALARMS = "NE-1000, Status characters: an alarm replaces the status with A? + code (R S T E O)"
UNSOLICITED = ("NE-1000, Safe mode: the pump sends alarm packets on its own; they do not clear "
               "the alarm, only the alarm status sent in reply to a valid command does")
TIMEOUT = "NE-1000, Safe mode: no valid packet within n seconds: the pump stops, alarm T"
ERRORS = "NE-1000, Errors: ? unknown, ?NA not applicable, ?OOR out of range, ?COM, ?IGN"
DIA = "NE-1000, Commands: DIA [mm]; a query is answered in the setter's format, a set with status"
RAT = ("NE-1000, Commands: RAT [value [UM|MM|UH|MH]]; numbers in replies carry the point "
       "(7.500MH)")
RAT_RUNNING = ("NE-1000, Commands: RAT while pumping: the rate changes at once, the units "
               "cannot (?NA); send the bare number while running")
RUN_STP = "NE-1000, Commands: RUN; STP (the first pauses, status P; a second stops, status S)"
DIR = "NE-1000, Commands: DIR [INF|WDR|REV|STK]"
VOL = "NE-1000, Commands: VOL [value | UL | ML] (0 = no limit); µL up to 14.00 mm, mL above"
DIS = "NE-1000, Commands: DIS -> I<infused>W<withdrawn><UL|ML>"
LIMITS = "NE-1000, Rate limits: 23 µL/h-28.3 mL/min with a 26.59 mm bore; outside: ?OOR"


def _ne(clock: VirtualClock, *, safe_mode_timeout_s: int = 0, address: int = 0) -> NewEraPump:
    return NewEraPump(SCRIPT_URL, clock=clock, syringe=SYRINGE, address=address,
                      safe_mode_timeout_s=safe_mode_timeout_s)


# The pump just switched on, in basic mode, with the BD 50 mL bore and 7.5 mL/h stored.
CONNECT_BASIC = [
    Exchange(safe(b"0SAF0"), basic(b"00A?R"), POWER_UP),
    Exchange(safe(b"0SAF0"), basic(b"00S"), SAF),
    Exchange(b"0DIA\r", basic(b"00S26.70"), DIA),
    Exchange(b"0RAT\r", basic(b"00S7.500MH"), RAT),
]
# The same pump (it was in basic mode, so A?R comes unframed) put into safe mode, 10 s.
CONNECT_SAFE = [
    Exchange(safe(b"0SAF10"), basic(b"00A?R"), POWER_UP),
    Exchange(safe(b"0SAF10"), safe(b"00S"), SAF),
    Exchange(safe(b"0DIA"), safe(b"00S26.70"), DIA),
    Exchange(safe(b"0RAT"), safe(b"00S7.500MH"), RAT),
]
START_BASIC = [
    Exchange(b"0\r", basic(b"00S"), STATUS),
    Exchange(b"0RAT 7.500 MH\r", basic(b"00S"), RAT),
    Exchange(b"0RUN\r", basic(b"00I"), RUN_STP),
    Exchange(b"0RAT\r", basic(b"00I7.500MH"), RAT),
]


def _status_basic(motion: bytes, dis: bytes, rat: bytes) -> list[Exchange]:
    return [Exchange(b"0DIS\r", basic(b"00" + motion + dis), DIS),
            Exchange(b"0RAT\r", basic(b"00" + motion + rat), RAT)]


def _status_safe(motion: bytes, dis: bytes, rat: bytes) -> list[Exchange]:
    return [Exchange(safe(b"0DIS"), safe(b"00" + motion + dis), DIS),
            Exchange(safe(b"0RAT"), safe(b"00" + motion + rat), RAT)]


def test_connect_acknowledges_the_power_up_alarm_and_selects_basic_mode(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, CONNECT_BASIC):
        pump = _ne(clock)
    assert pump.alarm is None
    assert pump.capabilities.resolution_ml_h == pytest.approx(0.001)


def test_connect_sets_another_diameter_on_a_stopped_pump(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(safe(b"0SAF0"), basic(b"00S"), SAF),
        Exchange(b"0DIA\r", basic(b"00S14.43"), DIA),
        Exchange(b"0DIA 26.70\r", basic(b"00S"), DIA),
        Exchange(b"0RAT\r", basic(b"00S125.0UM"), RAT),
    ]):
        pump = _ne(clock)
    assert pump.capabilities.resolution_ml_h == pytest.approx(0.1 * 0.06)


def test_connect_never_changes_the_diameter_of_a_running_pump(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(safe(b"0SAF0"), basic(b"00I"), SAF),
        Exchange(b"0DIA\r", basic(b"00I14.43"), DIA),
    ]), pytest.raises(PumpRefusedError, match="stop it at the pump"):
        _ne(clock)


def test_connect_in_safe_mode_and_a_two_digit_address(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        # Already in safe mode (kept in non-volatile memory): A?R comes framed.
        Exchange(safe(b"12SAF10"), safe(b"12A?R"), POWER_UP),
        Exchange(safe(b"12SAF10"), safe(b"12S"), SAF),
        Exchange(safe(b"12DIA"), safe(b"12S26.70"), DIA),
        Exchange(safe(b"12RAT"), safe(b"12S7.500MH"), RAT),
    ]):
        pump = _ne(clock, safe_mode_timeout_s=10, address=12)
    assert pump.alarm is None


def test_a_saf_answer_in_the_mode_it_did_not_select_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [Exchange(safe(b"0SAF10"), basic(b"00S"), SAF)]), \
            pytest.raises(FrameError) as raised:
        _ne(clock, safe_mode_timeout_s=10)
    assert raised.value.fault is FrameFault.WRONG_MODE


def test_an_alarm_met_at_connect_other_than_power_up_is_kept(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(safe(b"0SAF10"), safe(b"00A?T"), TIMEOUT),
        *CONNECT_SAFE[1:],
    ]):
        pump = _ne(clock, safe_mode_timeout_s=10)
    assert pump.alarm is NewEraAlarm.SAFE_MODE_TIMEOUT


def test_start_sets_the_rate_with_its_unit_runs_and_reads_it_back(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC,
        *_status_basic(b"I", b"I0.000W0.000ML", b"7.500MH"),
    ]):
        status = _ne(clock).set_rate(7.5)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)


def test_a_rate_change_while_running_sends_the_bare_number(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC, *_status_basic(b"I", b"I0.000W0.000ML", b"7.500MH"),
        Exchange(b"0\r", basic(b"00I"), STATUS),
        Exchange(b"0RAT 9.000\r", basic(b"00I"), RAT_RUNNING),
        Exchange(b"0RAT\r", basic(b"00I9.000MH"), RAT),
        *_status_basic(b"I", b"I0.125W0.000ML", b"9.000MH"),
    ]):
        pump = _ne(clock)
        pump.set_rate(7.5)
        status = pump.set_rate(9.0)
    assert status.rate_ml_h == pytest.approx(9.0)
    assert status.delivered_ml == pytest.approx(0.125)


def _running_in_uh() -> list[Exchange]:
    """A pump found infusing 7.5 mL/h written in µL/h, a unit that cannot hold 15 mL/h (15000
    needs 5 digits); µL/min writes 15 mL/h with the finest step (0.1 µL/min)."""
    return [
        Exchange(safe(b"0SAF0"), basic(b"00I"), SAF),
        Exchange(b"0DIA\r", basic(b"00I26.70"), DIA),
        Exchange(b"0RAT\r", basic(b"00I7500.UH"), RAT),
        Exchange(b"0\r", basic(b"00I"), STATUS),
    ]


def test_a_rate_past_the_running_unit_pauses_changes_unit_and_runs_on(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *_running_in_uh(),
        Exchange(b"0STP\r", basic(b"00P"), RUN_STP),
        Exchange(b"0RAT 250.0 UM\r", basic(b"00P"), RAT_RUNNING),
        Exchange(b"0RUN\r", basic(b"00I"), RUN_STP),
        Exchange(b"0RAT\r", basic(b"00I250.0UM"), RAT),
        *_status_basic(b"I", b"I1.000W0.000ML", b"250.0UM"),
    ]):
        status = _ne(clock).set_rate(15.0)
    assert status.rate_ml_h == pytest.approx(15.0)


@pytest.mark.parametrize("error", [b"?OOR", b"?NA"])
def test_a_refused_unit_change_runs_on_at_the_old_rate(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock, error: bytes,
) -> None:
    with scripted(monkeypatch, [
        *_running_in_uh(),
        Exchange(b"0STP\r", basic(b"00P"), RUN_STP),
        Exchange(b"0RAT 250.0 UM\r", basic(b"00P" + error), ERRORS),
        Exchange(b"0RUN\r", basic(b"00I"), RUN_STP),
    ]), pytest.raises(NewEraRefusedError) as raised:
        _ne(clock).set_rate(15.0)
    assert raised.value.error is NewEraError(error[1:].decode())


def test_a_rate_outside_the_plunger_limits_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, CONNECT_BASIC):
        pump = _ne(clock)
        with pytest.raises(NewEraRefusedError) as raised:
            pump.set_rate(28.4 * 60 * 1.01)
    assert raised.value.error is NewEraError.OUT_OF_RANGE


@pytest.mark.parametrize(("reply", "error"), [
    (b"00S?NA", NewEraError.NOT_APPLICABLE),
    (b"00S?", NewEraError.UNKNOWN_COMMAND),
    (b"00S?IGN", NewEraError.IGNORED),
])
def test_a_refused_run_is_reported_with_its_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock, reply: bytes, error: NewEraError,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC[:2], Exchange(b"0RUN\r", basic(reply), ERRORS),
    ]), pytest.raises(NewEraRefusedError) as raised:
        _ne(clock).set_rate(7.5)
    assert raised.value.error is error


def test_a_rate_read_back_other_than_the_one_set_makes_delivery_uncertain(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC[:3], Exchange(b"0RAT\r", basic(b"00I3.000MH"), RAT),
    ]), pytest.raises(UncertainDeliveryError, match="reads back"):
        _ne(clock).set_rate(7.5)


def test_a_start_that_meets_an_alarm_reports_it_and_sends_nothing_more(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT_BASIC, Exchange(b"0\r", basic(b"00A?S"), ALARMS)]):
        pump = _ne(clock)
        with pytest.raises(NewEraAlarmError) as raised:
            pump.set_rate(7.5)
    assert raised.value.alarm is NewEraAlarm.STALL
    assert pump.alarm is NewEraAlarm.STALL


def test_stop_pauses_then_stops(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC, *_status_basic(b"I", b"I0.000W0.000ML", b"7.500MH"),
        Exchange(b"0STP\r", basic(b"00P"), RUN_STP),
        Exchange(b"0STP\r", basic(b"00S"), RUN_STP),
        *_status_basic(b"S", b"I0.500W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock)
        pump.set_rate(7.5)
        status = pump.stop()
    assert status.state is PumpState.STOPPED
    assert status.rate_ml_h == 0.0


def test_a_stop_the_pump_ignored_is_asked_again(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    """?IGN: the pump ignored the command because a new phase started at that moment; a stop
    it ignored has not happened, so it is sent again rather than reported as refused."""
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC, *_status_basic(b"I", b"I0.000W0.000ML", b"7.500MH"),
        Exchange(b"0STP\r", basic(b"00I?IGN"), ERRORS),
        Exchange(b"0STP\r", basic(b"00P"), RUN_STP),
        Exchange(b"0STP\r", basic(b"00S"), RUN_STP),
        *_status_basic(b"S", b"I0.500W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock)
        pump.set_rate(7.5)
        assert pump.stop().state is PumpState.STOPPED


def test_back_off_withdraws_a_volume_then_infusion_is_restored(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC, *_status_basic(b"I", b"I0.000W0.000ML", b"7.500MH"),
        Exchange(b"0STP\r", basic(b"00P"), RUN_STP),
        Exchange(b"0STP\r", basic(b"00S"), RUN_STP),
        Exchange(b"0DIR WDR\r", basic(b"00S"), DIR),
        Exchange(b"0VOL ML\r", basic(b"00S"), VOL),
        Exchange(b"0VOL 0.300\r", basic(b"00S"), VOL),
        Exchange(b"0RAT 60.00 MH\r", basic(b"00S"), RAT),
        Exchange(b"0RUN\r", basic(b"00W"), RUN_STP),
        *_status_basic(b"W", b"I2.000W0.100ML", b"60.00MH"),
        # The set volume is reached: the pump stopped by itself.
        *_status_basic(b"S", b"I2.000W0.300ML", b"60.00MH"),
        Exchange(b"0STP\r", basic(b"00S"), RUN_STP),
        Exchange(b"0DIR INF\r", basic(b"00S"), DIR),
        Exchange(b"0VOL 0\r", basic(b"00S"), VOL),
    ]):
        pump = _ne(clock)
        pump.set_rate(7.5)
        assert pump.back_off(300.0).state is PumpState.BACKING_OFF
        status = pump.status()
    assert status.state is PumpState.STOPPED
    assert status.delivered_ml == pytest.approx(1.7)


def test_a_stall_alarm_met_by_a_status_read_is_reported_and_the_read_asked_again(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC,
        Exchange(b"0DIS\r", basic(b"00A?S"), ALARMS),
        *_status_basic(b"S", b"I3.000W0.000ML", b"7.500MH"),
    ]):
        status = _ne(clock).status()
    assert status.state is PumpState.ALARM
    assert status.stalled
    assert status.alarm == "stall"


@pytest.mark.parametrize(("code", "alarm"), [
    (b"E", NewEraAlarm.PROGRAM_ERROR), (b"O", NewEraAlarm.PHASE_OUT_OF_RANGE),
    (b"R", NewEraAlarm.RESET),
])
def test_other_alarms_are_kept_with_their_code(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock, code: bytes, alarm: NewEraAlarm,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_BASIC,
        Exchange(b"0DIS\r", basic(b"00A?" + code), ALARMS),
        *_status_basic(b"S", b"I3.000W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock)
        assert pump.status().state is PumpState.ALARM
    assert pump.alarm is alarm


def test_an_unknown_command_reply_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT_BASIC, Exchange(b"0DIS\r", basic(b"00S?"), ERRORS)]), \
            pytest.raises(NewEraRefusedError) as raised:
        _ne(clock).status()
    assert raised.value.error is NewEraError.UNKNOWN_COMMAND


def test_data_after_a_command_that_answers_with_its_status_alone_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    """A successful set gets a status-only reply (docs/pumps.md, Commands): anything more is a
    damaged or foreign reply, and after RUN the pump's state is then unknown."""
    with scripted(monkeypatch, [
        *CONNECT_BASIC, *START_BASIC[:2], Exchange(b"0RUN\r", basic(b"00I7.500"), RUN_STP),
    ]), pytest.raises(UncertainDeliveryError) as raised:
        _ne(clock).set_rate(7.5)
    assert isinstance(raised.value.__cause__, FrameError)
    assert raised.value.__cause__.fault is FrameFault.UNEXPECTED_TEXT


def test_a_lost_reply_to_run_makes_delivery_uncertain(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT_BASIC, *START_BASIC[:2],
                                Exchange(b"0RUN\r", b"", RUN_STP)]), \
            pytest.raises(UncertainDeliveryError, match="reply was lost"):
        _ne(clock).set_rate(7.5)


# -- safe mode ----------------------------------------------------------------------------------


def test_safe_mode_frames_every_command_and_reply(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_SAFE,
        Exchange(safe(b"0"), safe(b"00S"), STATUS),
        Exchange(safe(b"0RAT 7.500 MH"), safe(b"00S"), RAT),
        Exchange(safe(b"0RUN"), safe(b"00I"), RUN_STP),
        Exchange(safe(b"0RAT"), safe(b"00I7.500MH"), RAT),
        *_status_safe(b"I", b"I0.000W0.000ML", b"7.500MH"),
        Exchange(safe(b"0STP"), safe(b"00P"), RUN_STP),
        Exchange(safe(b"0STP"), safe(b"00S"), RUN_STP),
        *_status_safe(b"S", b"I0.010W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock, safe_mode_timeout_s=10)
        assert pump.set_rate(7.5).state is PumpState.INFUSING
        assert pump.stop().state is PumpState.STOPPED


def test_the_heartbeat_asks_the_status_once_half_the_timeout_passed(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT_SAFE, Exchange(safe(b"0"), safe(b"00S"), TIMEOUT)]):
        pump = _ne(clock, safe_mode_timeout_s=10)
        clock.advance(4.9)
        pump.heartbeat()  # nothing sent yet
        clock.advance(0.1)
        pump.heartbeat()
        pump.heartbeat()  # just exchanged: nothing again


def test_basic_mode_has_no_heartbeat(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> None:
    with scripted(monkeypatch, CONNECT_BASIC):
        pump = _ne(clock)
        clock.advance(3600)
        pump.heartbeat()


def test_an_unsolicited_alarm_packet_is_kept_and_the_next_reply_acknowledges_it(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_SAFE,
        Exchange(b"", safe(b"00A?T"), UNSOLICITED),
        Exchange(safe(b"0DIS"), safe(b"00A?T"), UNSOLICITED),
        *_status_safe(b"S", b"I1.000W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock, safe_mode_timeout_s=10)
        status = pump.status()
    assert status.state is PumpState.ALARM
    assert status.alarm == "host-timeout"


def test_another_pumps_unsolicited_alarm_is_not_ours(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT_SAFE,
        Exchange(safe(b"0DIS"), safe(b"07A?S") + safe(b"00SI1.000W0.000ML"), UNSOLICITED),
        Exchange(safe(b"0RAT"), safe(b"00S7.500MH"), RAT),
    ]):
        status = _ne(clock, safe_mode_timeout_s=10).status()
    assert status.state is PumpState.STOPPED
    assert status.alarm is None


def test_a_forged_basic_alarm_on_a_safe_link_is_a_link_error_never_a_stall(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    """Issue 11, case 5: a CRC-less frame made the supervisor see a stall and stop the pump."""
    with scripted(monkeypatch, [
        *CONNECT_SAFE,
        Exchange(safe(b"0DIS"), basic(b"00A?S"), SAFE),
        Exchange(safe(b"0DIS"), basic(b"00A?S") + safe(b"00II1.000W0.000ML"), SAFE),
        # Nor does one left waiting between exchanges count as an unsolicited alarm.
        Exchange(b"", basic(b"00A?S"), UNSOLICITED),
        *_status_safe(b"I", b"I1.000W0.000ML", b"7.500MH"),
    ]):
        pump = _ne(clock, safe_mode_timeout_s=10)
        for _ in range(2):
            with pytest.raises(FrameError) as raised:
                pump.status()
            assert raised.value.fault is FrameFault.UNCHECKED_FRAME
        status = pump.status()
    assert pump.alarm is None
    assert status.state is PumpState.INFUSING
    assert not status.stalled


def test_a_reply_with_a_bad_crc_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    damaged = bytearray(safe(b"00II1.000W0.000ML"))
    damaged[-2] ^= 0x01
    with scripted(monkeypatch, [*CONNECT_SAFE, Exchange(safe(b"0DIS"), bytes(damaged), SAFE)]), \
            pytest.raises(FrameError) as raised:
        _ne(clock, safe_mode_timeout_s=10).status()
    assert raised.value.fault is FrameFault.BAD_CRC


def test_com_says_the_pump_found_our_packet_invalid(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT_SAFE,
                                Exchange(safe(b"0DIS"), safe(b"00S?COM"), ERRORS)]), \
            pytest.raises(NewEraRefusedError) as raised:
        _ne(clock, safe_mode_timeout_s=10).status()
    assert raised.value.error is NewEraError.COMMUNICATION
