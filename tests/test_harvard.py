"""Pump 11 Elite codec, emulator and driver: what the conformance suite does not cover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st
from pump_fixtures import MECHANICS, SYRINGE, next_reply, raw_port

from drivers.pump.harvard import HarvardRefusedError
from drivers.pump.harvard_codec import (
    HarvardError,
    HarvardPrompt,
    HarvardRateUnit,
    HarvardReply,
    HarvardRequest,
    ReplyDecoder,
    best_rate_unit,
    encode_request,
    format_rate,
    parse_rate,
    parse_request,
)
from drivers.pump.new_era_codec import Garbage
from drivers.sim.emulated import EmulatedPump, start_emulated_pump
from drivers.sim.harvard_emulator import HarvardEmulator
from drivers.sim.syringe_pump import SimSyringePump
from vasopilot.core.clock import VirtualClock
from vasopilot.core.types import HostLossBehaviour, PumpState


@pytest.fixture
def rig(clock: VirtualClock) -> Iterator[EmulatedPump]:
    emulated = start_emulated_pump("harvard", clock, SYRINGE, MECHANICS, timeout_s=0.2)
    yield emulated
    emulated.close()


@pytest.fixture
def raw(clock: VirtualClock) -> Iterator[serial.Serial]:
    emulator = HarvardEmulator(clock, {3: SimSyringePump(clock, SYRINGE, MECHANICS)})
    with raw_port(emulator, 115200) as link:
        yield link


def _ask(link: serial.Serial, line: bytes) -> HarvardReply:
    link.write(line)
    return next_reply(link, ReplyDecoder(), HarvardReply, line)


def test_commands_may_be_cut_to_four_letters_and_carry_an_address() -> None:
    assert parse_request("12:IRAT 3.2 ul/min") == HarvardRequest(
        12, "irate", ("3.2", "ul/min"), known=True)
    assert parse_request("stp") == HarvardRequest(0, "stp", (), known=True)
    assert parse_request("irat") == HarvardRequest(0, "irate", (), known=True)
    assert not parse_request("ir").known
    assert encode_request(12, "irun") == b"12:irun\r"
    assert encode_request(0, "irun") == b"irun\r"


def test_reply_ends_in_the_prompt_with_the_address() -> None:
    reply = HarvardReply(12, HarvardPrompt.TARGET_REACHED, ("7.500 ml/hr",))
    assert reply.encode() == b"\r\n7.500 ml/hr\r\n12T*"
    assert HarvardReply(0, HarvardPrompt.IDLE, ("Out of range",)).error is (
        HarvardError.OUT_OF_RANGE)


def test_rate_is_written_with_the_finest_unit() -> None:
    assert format_rate(7.5, best_rate_unit(7.5)) == "7.500 ml/hr"
    assert format_rate(0.5, best_rate_unit(0.5)) == "8.333 ul/min"
    assert parse_rate("8.333 ul/min") == (8.333, HarvardRateUnit.UL_MIN)


_REPLIES = st.builds(
    HarvardReply,
    address=st.integers(0, 99),
    prompt=st.sampled_from(list(HarvardPrompt)),
    lines=st.lists(st.text(alphabet="abcdefghij 0123456789./%", min_size=1, max_size=15)
                   .filter(lambda t: t.strip() == t), max_size=3).map(tuple),
)


@given(st.lists(_REPLIES, max_size=4), st.integers(1, 5))
def test_replies_survive_encoding_and_any_chunking(replies: list[HarvardReply],
                                                   size: int) -> None:
    stream = b"".join(r.encode() for r in replies)
    decoder = ReplyDecoder()
    out: list[HarvardReply | Garbage] = []
    for i in range(0, len(stream), size):
        out += decoder.feed(stream[i:i + size])
    assert out == replies


@given(st.binary(max_size=400))
def test_reply_decoder_never_crashes_and_stays_bounded(data: bytes) -> None:
    decoder = ReplyDecoder()
    for item in decoder.feed(data):
        assert isinstance(item, HarvardReply | Garbage)
    assert len(decoder.pending) <= 400


@given(st.text(max_size=40))
def test_request_parser_never_crashes(line: str) -> None:
    assert isinstance(parse_request(line), HarvardRequest)


def test_emulator_answers_like_the_pump_to_a_third_party_program(raw: serial.Serial) -> None:
    assert _ask(raw, b"3:diam 26.7\r") == HarvardReply(3, HarvardPrompt.IDLE)
    assert _ask(raw, b"3:irat 3.2 ul/min\r").error is None
    assert _ask(raw, b"3:irat\r").lines == ("3.200 ul/min",)
    assert _ask(raw, b"3:irun\r").prompt is HarvardPrompt.INFUSING
    assert _ask(raw, b"3:bogus\r").error is HarvardError.UNKNOWN_COMMAND
    assert _ask(raw, b"3:irate 3.2\r").error is HarvardError.ARGUMENT_ERROR
    assert _ask(raw, b"3:irate 9999 ml/min\r").error is HarvardError.OUT_OF_RANGE
    assert _ask(raw, b"3:stp\r").prompt is HarvardPrompt.IDLE
    # Another address on the line: this pump stays silent.
    raw.write(b"4:ver\r")
    assert _ask(raw, b"3:ver\r").address == 3


def test_pump_keeps_its_rate_when_the_host_goes_quiet(rig: EmulatedPump,
                                                       clock: VirtualClock) -> None:
    assert rig.pump.capabilities.host_loss is HostLossBehaviour.KEEPS_RATE
    rig.pump.set_rate(7.5)
    clock.advance(600)
    assert rig.pump.status().state is PumpState.INFUSING


def test_stall_persists_until_cleared_at_the_pump(rig: EmulatedPump,
                                                  clock: VirtualClock) -> None:
    rig.pump.set_rate(7.5)
    rig.physics.faults.stall()
    assert rig.pump.status().stalled
    rig.pump.stop()
    assert rig.pump.status().stalled
    with pytest.raises(HarvardRefusedError, match="stall"):
        rig.pump.set_rate(7.5)
    emulator = rig.emulator
    assert isinstance(emulator, HarvardEmulator)
    rig.physics.faults.clear_stall()
    rig.physics.stop()
    emulator.clear_stall_at_keypad()
    assert rig.pump.set_rate(7.5).state is PumpState.INFUSING


def test_target_volume_stops_the_pump_with_the_target_prompt(raw: serial.Serial,
                                                              clock: VirtualClock) -> None:
    _ask(raw, b"3:irate 60 ml/hr\r")
    _ask(raw, b"3:tvol 0.5 ml\r")
    _ask(raw, b"3:irun\r")
    # The emulator sees the target at its next look: step the clock in 1 s (16.7 µL) steps.
    prompts = []
    for _ in range(40):
        clock.advance(1)
        prompts.append(_ask(raw, b"3:\r").prompt)
    assert prompts[:29] == [HarvardPrompt.INFUSING] * 29
    assert HarvardPrompt.TARGET_REACHED in prompts
    assert prompts[-1] is HarvardPrompt.IDLE
    (volume,) = _ask(raw, b"3:ivol\r").lines
    assert 500.0 <= float(volume.split()[0]) <= 500.0 + 16.7
