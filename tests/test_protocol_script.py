"""The scripted port itself: it fails on the first byte the script does not expect, on a script
left unplayed, and its safe-mode packets are the manual's."""

from __future__ import annotations

import pytest
from protocol_script import SCRIPT_URL, Exchange, ScriptedPort, ScriptError, basic, safe, scripted

from drivers.pump.serial_link import SerialLink


def test_safe_packets_match_the_manuals_check_value() -> None:
    """docs/pumps.md, Safe mode: the packet that forces basic mode is 02 08 53 41 46 30 55 43 03."""
    assert safe(b"SAF0") == bytes.fromhex("02 08 53 41 46 30 55 43 03")


def test_a_byte_the_script_does_not_expect_fails_at_once_and_stays_failed() -> None:
    port = ScriptedPort([Exchange(b"0RUN\r", basic(b"00I"), "test")])
    port.write(b"0R")
    assert port.in_waiting == 0  # half a request: no reply yet
    with pytest.raises(ScriptError, match="expected b'0RUN"):
        port.write(b"X")
    with pytest.raises(ScriptError):
        port.assert_done()


def test_a_reply_comes_when_its_request_is_complete_and_unasked_bytes_between_exchanges() -> None:
    port = ScriptedPort([Exchange(b"0\r", basic(b"00S"), "test"),
                         Exchange(b"", safe(b"00A?S"), "test")])
    port.write(b"0\r")
    assert port.read(100) == basic(b"00S")
    assert port.read(100) == safe(b"00A?S")
    port.assert_done()


def test_the_driver_opens_the_script_by_url_and_must_play_all_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [Exchange(b"0\r", basic(b"00S"), "test"), Exchange(b"0RUN\r", b"", "test")]
    with pytest.raises(AssertionError, match="never sent"), scripted(monkeypatch, script):
        link = SerialLink(SCRIPT_URL, baud=19200, timeout_s=0.1)
        link.write(b"0\r")
        assert link.read_some() == basic(b"00S")
