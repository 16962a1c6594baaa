"""NE-1000 codec, sans-I/O: framing, CRC, numbers and units, with hypothesis fuzzing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.pump.frames import FrameFault, Garbage
from drivers.pump.new_era_codec import (
    BadPacket,
    CodecError,
    Framing,
    NewEraAlarm,
    NewEraError,
    NewEraReply,
    NewEraRequest,
    NewEraStatus,
    RateUnit,
    ReplyDecoder,
    RequestDecoder,
    best_rate_unit,
    crc16_xmodem,
    encode_request,
    encode_safe,
    format_number,
    parse_number,
    rate_in_unit,
    rate_limits_ml_h,
    resolution_in_unit,
)


def test_safe_packet_matches_the_manual_check_value() -> None:
    assert encode_safe(b"SAF0") == bytes.fromhex("02 08 53 41 46 30 55 43 03")
    assert crc16_xmodem(b"SAF0") == 0x5543


def test_basic_request_carries_the_address_and_ends_in_cr() -> None:
    assert encode_request(7, "RAT 7.500 MH", safe=False) == b"7RAT 7.500 MH\r"
    with pytest.raises(CodecError):
        encode_request(100, "RUN", safe=False)


def test_replies_parse_status_data_alarms_and_errors() -> None:
    items = ReplyDecoder(framing=Framing.BASIC).feed(
        b"\x0200S\x03\x0201I7.500MH\x03\x0200A?S\x03\x0203P?OOR\x03\x0200S?\x03")
    assert items == [
        NewEraReply(0, NewEraStatus.STOPPED),
        NewEraReply(1, NewEraStatus.INFUSING, "7.500MH"),
        NewEraReply(0, NewEraStatus.ALARM, alarm=NewEraAlarm.STALL),
        NewEraReply(3, NewEraStatus.PAUSED, error=NewEraError.OUT_OF_RANGE),
        NewEraReply(0, NewEraStatus.STOPPED, error=NewEraError.UNKNOWN_COMMAND),
    ]


def test_decoder_reports_noise_and_a_bad_crc_as_garbage() -> None:
    good = NewEraReply(0, NewEraStatus.STOPPED, safe=True).encode()
    bad = good[:-3] + bytes([good[-3] ^ 0xFF]) + good[-2:]
    items = ReplyDecoder(framing=Framing.SAFE).feed(b"noise" + bad + good)
    assert isinstance(items[0], Garbage)
    assert isinstance(items[1], Garbage)
    assert items[1].fault is FrameFault.BAD_CRC
    assert items[2] == NewEraReply(0, NewEraStatus.STOPPED, safe=True)


def test_each_framing_takes_only_its_own_frames() -> None:
    basic = b"\x0200A?S\x03"
    safe = NewEraReply(0, NewEraStatus.INFUSING, safe=True).encode()
    on_safe = ReplyDecoder(framing=Framing.SAFE).feed(basic + safe)
    assert [getattr(i, "fault", i) for i in on_safe] == [
        FrameFault.UNCHECKED_FRAME, NewEraReply(0, NewEraStatus.INFUSING, safe=True)]
    on_basic = ReplyDecoder(framing=Framing.BASIC).feed(safe + basic)
    assert [getattr(i, "fault", i) for i in on_basic] == [
        FrameFault.NOT_BASIC, NewEraReply(0, NewEraStatus.ALARM, alarm=NewEraAlarm.STALL)]
    either = ReplyDecoder(framing=Framing.EITHER).feed(basic + safe)
    assert all(isinstance(i, NewEraReply) for i in either)


def test_a_basic_frame_cut_short_or_with_a_control_byte_is_garbage() -> None:
    items = ReplyDecoder(framing=Framing.BASIC).feed(
        b"\x0200I7.5\x0200S\x03\x0200S7.\x005MH\x03")
    assert [getattr(i, "fault", i) for i in items] == [
        FrameFault.CUT_SHORT, NewEraReply(0, NewEraStatus.STOPPED), FrameFault.MALFORMED]


def test_half_frame_stays_pending_until_the_rest_arrives() -> None:
    decoder = ReplyDecoder(framing=Framing.SAFE)
    frame = NewEraReply(0, NewEraStatus.INFUSING, "I1.000W0.000ML", safe=True).encode()
    assert decoder.feed(frame[:5]) == []
    assert decoder.pending == frame[:5]
    assert decoder.feed(frame[5:]) == [
        NewEraReply(0, NewEraStatus.INFUSING, "I1.000W0.000ML", safe=True)]


def test_pump_normalises_requests_like_the_real_one() -> None:
    assert RequestDecoder().feed(b"0rat 7.5 mh\r\r", 0.0) == [
        NewEraRequest(0, "RAT", "7.5MH", safe=False),
        NewEraRequest(None, "", "", safe=False),
    ]


def test_pump_answers_a_bad_crc_as_bad_packet() -> None:
    packet = bytearray(encode_safe(b"0RUN"))
    packet[3] ^= 0x01
    (item,) = RequestDecoder().feed(bytes(packet), 0.0)
    assert isinstance(item, BadPacket)


def test_pump_forgets_a_partial_packet_after_half_a_second_of_silence() -> None:
    decoder = RequestDecoder()
    packet = encode_safe(b"0RUN")
    assert decoder.feed(packet[:4], 0.0) == []
    assert decoder.feed(encode_safe(b"0STP"), 0.6) == [
        NewEraRequest(0, "STP", "", safe=True)]


@pytest.mark.parametrize(("value", "text"), [
    (7.5, "7.500"), (26.7, "26.70"), (0.125, "0.125"), (1234.0, "1234."), (99.99, "99.99"),
])
def test_numbers_carry_four_digits_and_a_point(value: float, text: str) -> None:
    assert format_number(value) == text
    assert parse_number(text) == value


def test_parse_number_refuses_more_digits_than_the_pump_keeps() -> None:
    for text in ("12345", "1.2345", "", ".", "1.2.3", "-1"):
        with pytest.raises(CodecError):
            parse_number(text)


@given(st.floats(min_value=0.0, max_value=9999.0, allow_nan=False))
def test_rounded_down_numbers_never_exceed_the_value_and_lose_less_than_a_step(
    value: float,
) -> None:
    text = format_number(value, round_down=True)
    shown = parse_number(text)
    assert shown <= value
    assert value - shown < resolution_in_unit(value) + 1e-9
    assert len(text.replace(".", "")) <= 4


@given(st.floats(min_value=0.03, max_value=1700.0, allow_nan=False))
def test_best_unit_has_the_finest_step_of_all_units_that_fit(rate_ml_h: float) -> None:
    def step(unit: RateUnit) -> float:
        return resolution_in_unit(rate_ml_h / unit.ml_h) * unit.ml_h

    fitting = [u for u in RateUnit if rate_ml_h / u.ml_h < 9999
               and parse_number(rate_in_unit(rate_ml_h, u)) > 0]
    best = best_rate_unit(rate_ml_h)
    assert best in fitting
    assert step(best) <= min(step(u) for u in fitting) * (1 + 1e-9)


def test_rate_limits_follow_the_plunger_speeds_and_bore() -> None:
    low_ml_h, high_ml_h = rate_limits_ml_h(14.43)
    assert low_ml_h == pytest.approx(0.0069, abs=0.0001)
    assert high_ml_h / 60 == pytest.approx(8.34, abs=0.01)
    low_ml_h, high_ml_h = rate_limits_ml_h(26.59)
    assert low_ml_h == pytest.approx(0.023, abs=0.001)
    assert high_ml_h / 60 == pytest.approx(28.3, abs=0.05)


_REPLIES = st.builds(
    NewEraReply,
    address=st.integers(0, 99),
    status=st.sampled_from([s for s in NewEraStatus if s is not NewEraStatus.ALARM]),
    data=st.text(alphabet="0123456789.IWUMLH", max_size=20).filter(lambda d: "?" not in d),
    safe=st.booleans(),
) | st.builds(
    NewEraReply,
    address=st.integers(0, 99),
    status=st.just(NewEraStatus.ALARM),
    alarm=st.sampled_from(list(NewEraAlarm)),
    safe=st.booleans(),
)


@given(st.lists(_REPLIES, max_size=5), st.integers(1, 7), st.sampled_from(list(Framing)))
def test_replies_survive_encoding_and_any_chunking(replies: list[NewEraReply], size: int,
                                                   framing: Framing) -> None:
    if framing is not Framing.EITHER:
        replies = [replace(r, safe=framing is Framing.SAFE) for r in replies]
    stream = b"".join(r.encode() for r in replies)
    decoder = ReplyDecoder(framing=framing)
    out: list[NewEraReply | Garbage] = []
    for i in range(0, len(stream), size):
        out += decoder.feed(stream[i:i + size])
    assert out == replies
    assert decoder.pending == b""


@given(st.binary(max_size=300), st.sampled_from(list(Framing)))
def test_reply_decoder_never_crashes_and_never_grows_without_bound(data: bytes,
                                                                   framing: Framing) -> None:
    decoder = ReplyDecoder(framing=framing)
    for item in decoder.feed(data):
        assert isinstance(item, NewEraReply | Garbage)
    assert len(decoder.pending) <= 300


@given(st.binary(max_size=300), st.floats(min_value=0, max_value=10))
def test_request_decoder_never_crashes_on_noise(data: bytes, t_s: float) -> None:
    for item in RequestDecoder().feed(data, t_s):
        assert isinstance(item, NewEraRequest | BadPacket)


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabc. *", max_size=20))
def test_safe_and_basic_framing_carry_the_same_command(text: str) -> None:
    (framed,) = RequestDecoder().feed(encode_safe(text.encode()), 0.0)
    (bare,) = RequestDecoder().feed(text.encode() + b"\r", 0.0)
    assert isinstance(framed, NewEraRequest)
    assert isinstance(bare, NewEraRequest)
    assert framed.safe
    assert not bare.safe
    assert (framed.address, framed.command, framed.params, framed.system) == (
        bare.address, bare.command, bare.params, bare.system)
