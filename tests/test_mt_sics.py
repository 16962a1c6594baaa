"""MT-SICS codec: the manual's reply lines byte for byte, and the known dialects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.balance.mt_sics import (
    CommandListDecoder,
    LineDecoder,
    Stability,
    encode,
    format_command_list,
    format_weight,
    parse_identity,
    parse_weight,
)
from vasopilot.core.errors import (
    BalanceBusyError,
    BalanceCommunicationError,
    BalanceLogicalError,
    BalanceRangeError,
    BalanceSyntaxError,
    BalanceTransmissionError,
    BalanceWeightError,
)


def test_commands_are_ascii_lines_ending_in_cr_lf() -> None:
    assert encode("SI") == b"SI\r\n"
    assert encode("@") == b"@\r\n"
    assert encode("I4") == b"I4\r\n"


@pytest.mark.parametrize("bad", ["si", "", "S\r", "SI\nZ"])
def test_a_command_that_is_not_mt_sics_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an MT-SICS command"):
        encode(bad)


# The reply lines of the MT-SICS reference manual (S, SI, @, I4 sections), byte for byte.
@pytest.mark.parametrize(("raw", "command", "mass_g", "stability"), [
    (b"S S     100.00 g\r\n", "S", 100.0, Stability.STABLE),
    (b"S D     129.07 g\r\n", "SI", 129.07, Stability.DYNAMIC),
    (b"S S      0.00010 g\r\n", "SI", 0.0001, Stability.STABLE),
    (b"S S    -12.3456 g\r\n", "SI", -12.3456, Stability.STABLE),
    (b"S S     250.5 mg\r\n", "SI", 0.2505, Stability.STABLE),
])
def test_weight_replies_of_the_manual(raw: bytes, command: str, mass_g: float,
                                      stability: Stability) -> None:
    (line,) = LineDecoder().feed(raw)
    weight = parse_weight(line, command)
    assert weight.mass_g == pytest.approx(mass_g, abs=1e-12)
    assert weight.stability is stability


@pytest.mark.parametrize(("raw", "error", "message"), [
    (b"S I\r\n", BalanceBusyError, "busy"),
    (b"S +\r\n", BalanceRangeError, "overloaded"),
    (b"S -\r\n", BalanceRangeError, "underloaded"),
    (b"ES\r\n", BalanceSyntaxError, "syntax error"),
    (b"ET\r\n", BalanceTransmissionError, "transmission error"),
    (b"EL\r\n", BalanceLogicalError, "logical error"),
    (b"S L\r\n", BalanceLogicalError, "wrong parameter"),
    (b"S S Error 10b\r\n", BalanceWeightError, "error 10b"),
])
def test_each_failure_reply_raises_its_typed_error(raw: bytes, error: type[Exception],
                                                   message: str) -> None:
    (line,) = LineDecoder().feed(raw)
    with pytest.raises(error, match=message):
        parse_weight(line, "SI")


def test_the_reset_and_serial_number_replies_give_the_serial() -> None:
    (line,) = LineDecoder().feed(b'I4 A "B021002593"\r\n')
    assert parse_identity(line) == "B021002593"


def test_the_command_list_ends_at_its_a_line() -> None:
    raw = b'I0 B 0 "I0"\r\nI0 B 0 "SI"\r\nI0 B 0 "@"\r\nI0 A 1 "SIR"\r\n'
    listing = CommandListDecoder()
    for line in LineDecoder().feed(raw):
        assert not listing.done
        listing.add(line)
    assert listing.done
    assert listing.result.levels == {"I0": 0, "SI": 0, "@": 0, "SIR": 1}
    assert "SIR" in listing.result and "SIU" not in listing.result


def test_the_emulator_formats_what_the_manual_shows() -> None:
    assert format_weight(100.0, Stability.STABLE, 2) == b"S S     100.00 g\r\n"
    assert format_weight(129.07, Stability.DYNAMIC, 2) == b"S D     129.07 g\r\n"
    assert format_weight(0.0, Stability.STABLE, 2, busy=True) == b"S I\r\n"
    assert format_weight(0.0, Stability.STABLE, 2, overload=True) == b"S +\r\n"
    assert format_weight(0.0, Stability.STABLE, 2, underload=True) == b"S -\r\n"
    assert format_command_list([(0, "I0"), (1, "SIR")]) == b'I0 B 0 "I0"\r\nI0 A 1 "SIR"\r\n'


def test_a_reply_to_another_command_is_not_taken_for_a_weight() -> None:
    with pytest.raises(BalanceCommunicationError, match="not a reply"):
        parse_weight('I4 A "B021002593"', "SI")
    with pytest.raises(BalanceCommunicationError, match="no value and unit"):
        parse_weight("S S 12.0", "SI")
    with pytest.raises(BalanceCommunicationError, match="unknown status"):
        parse_weight("S X 12.0 g", "SI")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e3", "1_000.0", "12.0.1", "."])
def test_a_value_no_balance_prints_is_not_a_weight(value: str) -> None:
    with pytest.raises(BalanceCommunicationError, match="no value and unit"):
        parse_weight(f"S S {value} g", "SI")


@pytest.mark.parametrize("line", ["S D     100.00 g", "S ?     100.00 g"])
def test_a_dynamic_weight_is_no_answer_to_the_stable_weight_command(line: str) -> None:
    with pytest.raises(BalanceCommunicationError, match="stable only"):
        parse_weight(line, "S")
    assert parse_weight(line, "SI").stability is Stability.DYNAMIC


def test_lines_split_across_reads_are_joined() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"S S   ") == []
    assert decoder.pending == b"S S   "
    assert decoder.feed(b"  1.0 g\r\nS D") == ["S S     1.0 g"]
    assert decoder.pending == b"S D"


def test_a_line_without_end_is_dropped_as_babble() -> None:
    decoder = LineDecoder()
    with pytest.raises(BalanceCommunicationError, match="without a line end"):
        decoder.feed(b"S" * 300)
    assert decoder.pending == b""


@given(st.binary(max_size=400))
def test_any_bytes_give_lines_or_a_typed_error(data: bytes) -> None:
    decoder = LineDecoder()
    try:
        lines = decoder.feed(data)
    except BalanceCommunicationError:
        return
    for line in lines:
        try:
            weight = parse_weight(line, "SI")
        except (BalanceCommunicationError, BalanceBusyError, BalanceRangeError,
                BalanceLogicalError, BalanceWeightError):
            continue
        assert weight.stability in (Stability.STABLE, Stability.DYNAMIC)


# Known dialects (docs/bench-method.md): accepted by the same parser, kept apart from the
# manual's forms so they can be deselected with -m "not dialect".
@pytest.mark.dialect
@pytest.mark.parametrize(("line", "mass_g", "stability"), [
    ("SI S     100.00 g", 100.0, Stability.STABLE),     # echo of the command itself
    ("SI D     100.00 g", 100.0, Stability.DYNAMIC),
    ("S A     100.00 g", 100.0, Stability.STABLE),      # "done" status of some emulators
    ("SI ?     100.00 g", 100.0, Stability.DYNAMIC),    # Radwag: '?' unstable
    ("SI       100.00 g", 100.0, Stability.STABLE),     # Radwag: blank stable marker
    ("S S 100.00 g", 100.0, Stability.STABLE),          # no padding
    ("S S\t100.00\tg", 100.0, Stability.STABLE),        # tabs
])
def test_known_dialects_are_read(line: str, mass_g: float, stability: Stability) -> None:
    weight = parse_weight(line, "SI")
    assert weight.mass_g == pytest.approx(mass_g)
    assert weight.stability is stability


@pytest.mark.dialect
def test_a_lone_line_feed_ends_a_line() -> None:
    assert LineDecoder().feed(b"S S 1.0 g\nS D 2.0 g\r\n") == ["S S 1.0 g", "S D 2.0 g"]
