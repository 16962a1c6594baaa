"""The Pump 11 Elite driver held byte for byte against docs/pumps.md ("Harvard Apparatus
Pump 11 Elite / PHD Ultra"): every command it sends, with the prompts and the error texts.

docs/pumps.md gives the command names, the CR-ended lower-case requests, the address form, the
prompts and the error texts. What it does not give is marked ASSUMED where used: the unit
spellings (ml/hr, ul), the CRLF before a reply, the value formats of queries, and that a
successful set prints nothing but the prompt.
"""

from __future__ import annotations

import pytest
from protocol_script import SCRIPT_URL, Exchange, scripted
from pump_fixtures import SYRINGE

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.harvard import HarvardPump, HarvardRefusedError
from drivers.pump.harvard_codec import HarvardError
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import PumpRefusedError, UncertainDeliveryError
from vasopilot.core.types import PumpState

LINE = "Harvard: line-oriented lower-case ASCII ending in CR; each reply ends with a prompt line"
PROMPT = "Harvard: prompt ':' idle, '>' infusing, '<' withdrawing, '*' stalled, 'T*' target reached"
ADDRESS = "Harvard: a non-zero address is written '12:irat 3.2 ul/min'"
VER = "Harvard: commands include ver"
DIAMETER = "Harvard: commands include diameter [mm]"
IRATE = "Harvard: irate [value unit | max | min | lim]; ASSUMED: unit ml/hr, 4 digits"
WRATE = "Harvard: wrate ...; ASSUMED: unit ml/hr"
RUN = "Harvard: commands include irun, wrun, stp"
VOLUME = "Harvard: ivolume, civolume, tvolume, ctvolume; ASSUMED: wvolume, unit ml|ul"
ERRORS = ("Harvard: errors come back as text (Command error, Unknown command, Argument error, "
          "Out of range)")
STALL = "Harvard: '*' stalled (persists until cleared at the pump)"
FIRMWARE = b"\r\nELITE I/W Single 3.0.6\r\n"


def _reply(*lines: bytes, prompt: bytes = b":") -> bytes:
    """ASSUMED framing: CRLF, each text line with its CRLF, then the prompt."""
    return b"\r\n" + b"".join(line + b"\r\n" for line in lines) + prompt


CONNECT = [
    Exchange(b"ver\r", _reply(b"ELITE I/W Single 3.0.6"), VER),
    Exchange(b"diameter\r", _reply(b"26.70 mm"), DIAMETER),
]
START = [
    Exchange(b"\r", _reply(), PROMPT),
    Exchange(b"irate 7.500 ml/hr\r", _reply(), IRATE),
    Exchange(b"irun\r", _reply(prompt=b">"), RUN),
    Exchange(b"irate\r", _reply(b"7.500 ml/hr", prompt=b">"), IRATE),
]


def _status(infused: bytes, withdrawn: bytes, rate: bytes, prompt: bytes) -> list[Exchange]:
    return [
        Exchange(b"ivolume\r", _reply(infused, prompt=prompt), VOLUME),
        Exchange(b"wvolume\r", _reply(withdrawn, prompt=prompt), VOLUME),
        Exchange(b"irate\r", _reply(rate, prompt=prompt), IRATE),
    ]


# Back off 300 µL from idle, and the status read while withdrawing.
BACK_OFF = [
    Exchange(b"stp\r", _reply(), RUN),
    Exchange(b"wrate 60.00 ml/hr\r", _reply(), WRATE),
    Exchange(b"tvolume 300.0 ul\r", _reply(), VOLUME),
    Exchange(b"wrun\r", _reply(prompt=b"<"), RUN),
    *_status(b"2.000 ml", b"100.0 ul", b"7.500 ml/hr", b"<"),
]


def _harvard(clock: VirtualClock, address: int = 0) -> HarvardPump:
    return HarvardPump(SCRIPT_URL, clock=clock, syringe=SYRINGE, address=address)


def test_connect_reads_the_firmware_and_keeps_a_matching_diameter(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, CONNECT):
        pump = _harvard(clock)
    assert pump.firmware == "ELITE I/W Single 3.0.6"


def test_connect_sets_another_diameter_on_an_idle_pump(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        CONNECT[0],
        Exchange(b"diameter\r", _reply(b"14.43 mm"), DIAMETER),
        Exchange(b"diameter 26.70\r", _reply(), DIAMETER),
    ]):
        _harvard(clock)


def test_connect_never_changes_the_diameter_of_a_running_pump(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(b"ver\r", _reply(b"ELITE I/W Single 3.0.6", prompt=b">"), VER),
        Exchange(b"diameter\r", _reply(b"14.43 mm", prompt=b">"), DIAMETER),
    ]), pytest.raises(PumpRefusedError, match="stop it at the pump"):
        _harvard(clock)


def test_an_addressed_pump_is_asked_and_answers_with_its_address(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(b"12:ver\r", _reply(b"ELITE I/W Single 3.0.6", prompt=b"12:"), ADDRESS),
        Exchange(b"12:diameter\r", _reply(b"26.70 mm", prompt=b"12:"), ADDRESS),
        Exchange(b"12:stp\r", _reply(prompt=b"12:"), ADDRESS),
        Exchange(b"12:ivolume\r", _reply(b"0.000 ul", prompt=b"12:"), ADDRESS),
        Exchange(b"12:wvolume\r", _reply(b"0.000 ul", prompt=b"12:"), ADDRESS),
        Exchange(b"12:irate\r", _reply(b"0.000 ml/hr", prompt=b"12:"), ADDRESS),
    ]):
        assert _harvard(clock, address=12).stop().state is PumpState.STOPPED


def test_a_reply_from_another_address_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        Exchange(b"12:ver\r", _reply(b"ELITE I/W Single 3.0.6", prompt=b"13:"), ADDRESS),
    ]), pytest.raises(FrameError) as raised:
        _harvard(clock, address=12)
    assert raised.value.fault is FrameFault.OTHER_ADDRESS


def test_start_sets_the_rate_runs_and_reads_it_back(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT, *START, *_status(b"0.000 ul", b"0.000 ul", b"7.500 ml/hr", b">"),
    ]):
        status = _harvard(clock).set_rate(7.5)
    assert status.state is PumpState.INFUSING
    assert status.rate_ml_h == pytest.approx(7.5)


def test_a_rate_change_while_infusing_does_not_run_again(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT, *START, *_status(b"0.000 ul", b"0.000 ul", b"7.500 ml/hr", b">"),
        Exchange(b"\r", _reply(prompt=b">"), PROMPT),
        Exchange(b"irate 9.000 ml/hr\r", _reply(prompt=b">"), IRATE),
        Exchange(b"irate\r", _reply(b"9.000 ml/hr", prompt=b">"), IRATE),
        *_status(b"125.0 ul", b"0.000 ul", b"9.000 ml/hr", b">"),
    ]):
        pump = _harvard(clock)
        pump.set_rate(7.5)
        status = pump.set_rate(9.0)
    assert status.rate_ml_h == pytest.approx(9.0)
    assert status.delivered_ml == pytest.approx(0.125)


def test_a_rate_outside_the_limits_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, CONNECT):
        pump = _harvard(clock)
        with pytest.raises(HarvardRefusedError) as raised:
            pump.set_rate(1e6)
    assert raised.value.error is HarvardError.OUT_OF_RANGE


@pytest.mark.parametrize(("step", "error"), [
    (1, HarvardError.OUT_OF_RANGE), (1, HarvardError.ARGUMENT_ERROR),
    (2, HarvardError.COMMAND_ERROR), (2, HarvardError.UNKNOWN_COMMAND),
])
def test_error_text_is_a_refusal_with_its_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock, step: int, error: HarvardError,
) -> None:
    refused = Exchange(START[step].sent, _reply(error.value.encode()), ERRORS)
    with scripted(monkeypatch, [*CONNECT, *START[:step], refused]), \
            pytest.raises(HarvardRefusedError) as raised:
        _harvard(clock).set_rate(7.5)
    assert raised.value.error is error


def test_a_rate_read_back_other_than_the_one_set_makes_delivery_uncertain(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT, *START[:3], Exchange(b"irate\r", _reply(b"3.000 ml/hr", prompt=b">"), IRATE),
    ]), pytest.raises(UncertainDeliveryError, match="reads back"):
        _harvard(clock).set_rate(7.5)


def test_an_error_line_bent_by_noise_is_a_link_error_not_a_success(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    """No checksum: text where a set prints only its prompt is all that shows the damage."""
    with scripted(monkeypatch, [
        *CONNECT, START[0], Exchange(START[1].sent, _reply(b"Out of rbnge"), ERRORS),
    ]), pytest.raises(UncertainDeliveryError) as raised:
        _harvard(clock).set_rate(7.5)
    assert isinstance(raised.value.__cause__, FrameError)
    assert raised.value.__cause__.fault is FrameFault.UNEXPECTED_TEXT


def test_a_control_byte_in_reply_text_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT, Exchange(b"ivolume\r", _reply(b"1.0\x0100 ml"), LINE),
    ]), pytest.raises(FrameError) as raised:
        _harvard(clock).status()
    assert raised.value.fault is FrameFault.MALFORMED


def test_a_query_answered_without_its_value_is_a_link_error(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [*CONNECT, Exchange(b"ivolume\r", _reply(), VOLUME)]), \
            pytest.raises(FrameError) as raised:
        _harvard(clock).status()
    assert raised.value.fault is FrameFault.UNEXPECTED_TEXT


def test_stop(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> None:
    with scripted(monkeypatch, [
        *CONNECT, *START, *_status(b"0.000 ul", b"0.000 ul", b"7.500 ml/hr", b">"),
        Exchange(b"stp\r", _reply(), RUN),
        *_status(b"500.0 ul", b"0.000 ul", b"7.500 ml/hr", b":"),
    ]):
        pump = _harvard(clock)
        pump.set_rate(7.5)
        status = pump.stop()
    assert status.state is PumpState.STOPPED
    assert status.rate_ml_h == 0.0
    assert status.delivered_ml == pytest.approx(0.5)


def test_back_off_withdraws_to_a_target_then_clears_it(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT,
        *BACK_OFF,
        *_status(b"2.000 ml", b"300.0 ul", b"7.500 ml/hr", b"T*"),
        Exchange(b"ctvolume\r", _reply(), VOLUME),
    ]):
        pump = _harvard(clock)
        assert pump.back_off(300.0).state is PumpState.BACKING_OFF
        status = pump.status()
    assert status.state is PumpState.STOPPED
    assert status.delivered_ml == pytest.approx(1.7)


def test_a_start_after_a_back_off_clears_the_target_first(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT,
        *BACK_OFF,
        Exchange(b"\r", _reply(prompt=b"T*"), PROMPT),
        Exchange(b"stp\r", _reply(), RUN),
        Exchange(b"ctvolume\r", _reply(), VOLUME),
        *START[1:],
        *_status(b"2.000 ml", b"300.0 ul", b"7.500 ml/hr", b">"),
    ]):
        pump = _harvard(clock)
        pump.back_off(300.0)
        assert pump.set_rate(7.5).state is PumpState.INFUSING


def test_a_stalled_pump_reports_the_stall_and_is_not_started(
    monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
) -> None:
    with scripted(monkeypatch, [
        *CONNECT,
        *_status(b"3.000 ml", b"0.000 ul", b"7.500 ml/hr", b"*"),
        Exchange(b"\r", _reply(prompt=b"*"), STALL),
    ]):
        pump = _harvard(clock)
        status = pump.status()
        with pytest.raises(HarvardRefusedError, match="stall"):
            pump.set_rate(7.5)
    assert status.state is PumpState.ALARM
    assert status.stalled


def test_the_pump_has_no_heartbeat(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> None:
    with scripted(monkeypatch, CONNECT):
        pump = _harvard(clock)
        clock.advance(3600)
        pump.heartbeat()
