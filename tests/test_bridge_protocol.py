"""The bridge codec and link: round trips, fuzzing, a differential COBS test, the common-subset
import allow-list, and a stateful property test of the link over a lossy channel."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from cobs import cobs as reference_cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p

ROOT = Path(__file__).resolve().parents[1] / "firmware_bridge"
# What MicroPython has and the shared modules may import.
ALLOWED_IMPORTS = {
    ROOT / "protocol.py": {"binascii", "struct"},
    ROOT / "firmware" / "logic.py": {"struct", "firmware_bridge.protocol",
                                     "firmware_bridge.firmware.step_pio"},
    ROOT / "firmware" / "step_pio.py": set(),
}


def _widths(cls: type[p.Message]) -> list[int]:
    return [struct.calcsize("<" + c) * 8 for c in cls.FORMAT[1:]]


def _sample(cls: type[p.Message], pick: int) -> p.Message:
    """A message whose fields are 0, 1 or the widest value each can hold."""
    return cls(*[(0, 1, (1 << w) - 1)[pick] for w in _widths(cls)])


@pytest.mark.parametrize("cls", list(p.MESSAGES.values()), ids=lambda c: c.__name__)
@pytest.mark.parametrize("pick", [0, 1, 2])
def test_every_message_round_trips_through_a_frame(cls: type[p.Message], pick: int) -> None:
    message = _sample(cls, pick)
    frame = p.encode_frame(0xBEEF, 0xFFFF, message)
    assert frame.count(0) == 1 and frame.endswith(b"\x00")
    (decoded,) = p.FrameDecoder().feed(frame)
    assert (decoded.link, decoded.seq, decoded.version) == (0xBEEF, 0xFFFF, p.VERSION)
    assert decoded.message() == message


def test_crc_is_crc32_iso_hdlc() -> None:
    assert p.crc32(b"123456789") == 0xCBF43926


def test_fields_that_do_not_fit_are_refused_not_wrapped() -> None:
    with pytest.raises(ValueError):
        p.SetRate(1, 0, 1 << 32).encode()
    with pytest.raises(TypeError):
        p.SetRate(1, 0)
    with pytest.raises(TypeError):
        p.SetRate(generation=1, direction=0, speed=3)


def test_a_body_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="bad length"):
        p.decode_message(p.SET_RATE, b"\x00" * 3)
    with pytest.raises(ValueError, match="unknown"):
        p.decode_message(0x7F, b"")


@given(st.binary(max_size=600))
def test_cobs_matches_an_independent_implementation(data: bytes) -> None:
    ours = p.cobs_encode(data)
    assert ours == reference_cobs.encode(data)
    assert 0 not in ours
    assert p.cobs_decode(ours) == data


@given(st.binary(max_size=300))
def test_cobs_decoding_of_arbitrary_bytes_agrees_with_the_reference(data: bytes) -> None:
    try:
        expected: bytes | None = reference_cobs.decode(data)
    except reference_cobs.DecodeError:
        expected = None
    try:
        ours: bytes | None = p.cobs_decode(data)
    except ValueError:
        ours = None
    assert ours == expected


def test_cobs_block_boundaries() -> None:
    for n in (253, 254, 255, 508, 509):
        data = bytes((i % 255) + 1 for i in range(n))
        for tail in (b"", b"\x00", b"\x00\x00"):
            assert p.cobs_decode(p.cobs_encode(data + tail)) == data + tail
            assert p.cobs_encode(data + tail) == reference_cobs.encode(data + tail)


@given(st.lists(st.binary(max_size=80), max_size=20))
def test_the_decoder_never_raises_on_random_streams(chunks: list[bytes]) -> None:
    decoder = p.FrameDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            assert len(frame.body) <= p.MAX_PAYLOAD


_FRAMES = st.builds(
    lambda link, seq, pick, cls: p.encode_frame(link, seq, _sample(cls, pick)),
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2),
    st.sampled_from(list(p.MESSAGES.values())))


@settings(derandomize=True, max_examples=400)
@given(_FRAMES, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1,
                         max_size=4))
def test_a_corrupted_frame_is_never_accepted(frame: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(frame)
    for index, bit in flips:
        data[index % (len(data) - 1)] ^= 1 << bit  # the delimiter itself stays
    if bytes(data) == frame:
        return  # the flips cancelled out: nothing was corrupted
    decoder = p.FrameDecoder()
    assert decoder.feed(bytes(data)) == []
    assert decoder.rejected >= 1


@settings(derandomize=True, max_examples=300)
@given(st.binary(max_size=200), _FRAMES, _FRAMES)
def test_the_decoder_resyncs_at_the_next_frame(noise: bytes, first: bytes, second: bytes) -> None:
    """Noise may swallow the frame it runs into, never the one after."""
    decoder = p.FrameDecoder()
    frames = decoder.feed(noise + first + second)
    assert frames, "the second frame was lost"
    last = frames[-1]
    (expected,) = p.FrameDecoder().feed(second)
    assert (last.link, last.seq, last.msg_type, last.body) == (
        expected.link, expected.seq, expected.msg_type, expected.body)


def test_an_overlong_frame_is_dropped_whole() -> None:
    decoder = p.FrameDecoder()
    good = p.encode_frame(1, 1, p.GetStatus())
    assert decoder.feed(b"\x01" * 5000 + b"\x00" + good)[0].msg_type == p.GET_STATUS
    assert decoder.rejected == 1


# -- the shared modules stay in MicroPython's subset --------------------------------------------

def _run_time_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (read by mypy, never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in _run_time_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.update(f"{base}.{alias.name}" if base.startswith("firmware_bridge") else base
                         for alias in node.names)
    return names


@pytest.mark.parametrize("path", list(ALLOWED_IMPORTS), ids=lambda q: q.name)
def test_shared_firmware_modules_import_only_what_micropython_has(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert _imports(tree) <= ALLOWED_IMPORTS[path]
    for node in _run_time_nodes(tree):
        # What MicroPython lacks or CPython evaluates at run time: f-strings are fine in both
        # but kept out for the oldest ports, and so are walrus, match and star displays.
        assert not isinstance(node, ast.JoinedStr | ast.NamedExpr | ast.Match), ast.dump(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            assert not any(isinstance(e, ast.Starred) for e in node.elts), ast.dump(node)
        if isinstance(node, ast.Call):
            assert not any(k.arg == "strict" for k in node.keywords), ast.dump(node)
            # MicroPython's classes have no ``|``: isinstance takes a tuple there.
            if isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                assert not isinstance(node.args[1], ast.BinOp), ast.dump(node)
        if isinstance(node, ast.AnnAssign):
            # A bare class or attribute annotation needs the typing machinery at run time.
            assert isinstance(node.target, ast.Name) and node.value is not None, ast.dump(node)


def test_the_allow_list_check_can_fail() -> None:
    tree = ast.parse("import typing\nfrom dataclasses import dataclass\n"
                     "if TYPE_CHECKING:\n    import enum\n")
    assert _imports(tree) == {"typing", "dataclasses"}


# -- the link over a lossy channel -------------------------------------------------------------

class _Device:
    """A device that applies SetRate commands and reports the generation it runs."""

    def __init__(self) -> None:
        self.link = p.DeviceLink()
        self.applied: list[int] = []

    def execute(self, frame: p.Frame) -> p.Message:
        message = frame.message()
        if isinstance(message, p.Hello):
            return p.HelloReply(1, 0, 0, 7, p.RESET_POWER_ON, 0, 1, 2, 3)
        if isinstance(message, p.SetRate):
            self.applied.append(message.generation)
        return _status(self.applied[-1] if self.applied else 0)

    def feed(self, data: bytes) -> list[bytes]:
        out = self.link.feed(data, self.execute)
        return [f + b"\x00" for f in out.split(b"\x00") if f]


def _status(generation: int) -> p.Status:
    return p.Status(7, 0, 0, 0, 0, 0, generation, 0, 0, 0, 0, 0, 0)


class _Channel:
    """Frames in flight one way: each may be dropped, duplicated, corrupted or held back
    (delivered later, out of order), as drawn by hypothesis."""

    FATES = ("ok", "ok", "ok", "drop", "dup", "corrupt", "delay")

    def __init__(self, data: st.DataObject, lossy: list[bool]) -> None:
        self._data = data
        self._lossy = lossy
        self.flight: list[tuple[int, bytes]] = []

    def send(self, frame: bytes, tick: int) -> None:
        fate = self._data.draw(st.sampled_from(self.FATES)) if self._lossy[0] else "ok"
        if fate == "drop":
            return
        if fate == "corrupt":
            i = self._data.draw(st.integers(0, len(frame) - 2))
            frame = frame[:i] + bytes([frame[i] ^ (1 << self._data.draw(st.integers(0, 7)))]) \
                + frame[i + 1:]
        due = tick + (self._data.draw(st.integers(1, 4)) if fate == "delay" else 0)
        self.flight.append((due, frame))
        if fate == "dup":
            self.flight.append((tick + self._data.draw(st.integers(0, 4)), frame))

    def arrive(self, tick: int) -> bytes:
        now = [f for due, f in self.flight if due <= tick]
        self.flight = [(due, f) for due, f in self.flight if due > tick]
        return b"".join(now)


MAX_ATTEMPTS = 4


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(1, 6))
def test_every_command_is_applied_exactly_once_and_in_order(data: st.DataObject,
                                                            n_commands: int) -> None:
    """The host sends SetRate 1..n as a driver does: retransmit on silence (bounded); when the
    attempts run out, open a new link and read the status back to learn whether the command
    was applied before sending it again. The channel is lossy for the first 120 ticks."""
    lossy = [True]
    up, down = _Channel(data, lossy), _Channel(data, lossy)
    device = _Device()
    link_ids = iter(range(1, 1000))
    host = p.HostLink(next(link_ids), max_attempts=MAX_ATTEMPTS)
    queue: list[p.Message] = [p.Hello()]
    generation = 1
    confirmed: list[int] = []
    sends_per_request: list[int] = []
    for tick in range(600):
        if tick == 120:
            lossy[0] = False
        if not host.waiting:
            if not queue:
                if generation > n_commands:
                    break
                queue.append(p.SetRate(generation, 0, generation))
            up.send(host.send(queue[0]), tick)
            sends_per_request.append(1)
        for frame in device.feed(up.arrive(tick)):
            down.send(frame, tick)
        reply = host.feed(down.arrive(tick))
        if reply is not None:
            sent = queue.pop(0)
            if isinstance(reply, p.Error):
                # Not executed (a link this device does not know): greet it on a fresh link.
                assert reply.code in (p.ERR_NOT_LINKED, p.ERR_BAD_SEQ)
                host = p.HostLink(next(link_ids), max_attempts=MAX_ATTEMPTS)
                queue[:0] = [p.Hello()] if isinstance(sent, p.Hello) else [p.Hello(), sent]
            elif isinstance(sent, p.SetRate):
                assert isinstance(reply, p.Status) and reply.generation == sent.generation
                confirmed.append(sent.generation)
                generation += 1
            elif isinstance(sent, p.GetStatus):
                assert isinstance(reply, p.Status)
                if reply.generation == generation:
                    # The command whose reply was lost had been applied: do not send it again.
                    confirmed.append(generation)
                    generation += 1
                    assert isinstance(queue[0], p.SetRate)
                    queue.pop(0)
            continue
        again = host.on_timeout() if host.waiting else None
        if again is not None:
            up.send(again, tick)
            sends_per_request[-1] += 1
        elif not host.waiting:
            # Attempts used up: a command may or may not have been applied; read back first.
            sent = queue.pop(0)
            host = p.HostLink(next(link_ids), max_attempts=MAX_ATTEMPTS)
            if isinstance(sent, p.SetRate):
                queue[:0] = [p.Hello(), p.GetStatus(), sent]
            else:
                queue[:0] = [p.Hello()] if isinstance(sent, p.Hello) else [p.Hello(), sent]
    assert confirmed == list(range(1, n_commands + 1)), "not every command went through"
    assert device.applied == confirmed, f"applied twice or out of order: {device.applied}"
    assert max(sends_per_request) <= MAX_ATTEMPTS


def test_a_retransmission_is_answered_from_the_cache_without_executing_again() -> None:
    device = _Device()
    hello = p.encode_frame(9, 1, p.Hello())
    device.feed(hello)
    command = p.encode_frame(9, 2, p.SetRate(5, 0, 5))
    first = device.feed(command)
    assert device.feed(command) == first
    assert device.applied == [5]
    assert device.link.repeats == 1
    # A delayed hello of the same link does not reopen it, so seq 2 cannot run again.
    (refusal,) = device.feed(hello)
    assert p.FrameDecoder().feed(refusal)[0].message() == p.Error(p.ERR_BAD_SEQ, 3)
    assert device.feed(command) == first
    assert device.applied == [5]


def test_retransmission_gives_up_after_the_last_attempt() -> None:
    host = p.HostLink(3, first_timeout_s=0.05, max_timeout_s=0.2, max_attempts=4)
    host.send(p.GetStatus())
    timeouts = [host.timeout_s]
    while host.on_timeout() is not None:
        timeouts.append(host.timeout_s)
    assert timeouts == [0.05, 0.1, 0.2, 0.2]
    assert not host.waiting
    assert host.retransmissions == 3


def test_a_stale_or_foreign_reply_is_not_taken_for_the_answer() -> None:
    host = p.HostLink(3)
    host.send(p.GetStatus())
    assert host.feed(p.encode_frame(4, 1, _status(1))) is None  # another link
    assert host.feed(p.encode_frame(3, 0, _status(1))) is None  # an older request
    assert host.feed(p.encode_frame(3, 1, p.GetStatus())) is None  # a request, not a reply
    assert host.feed(p.encode_frame(3, 1, _status(1))) == _status(1)
    assert host.other_frames == 3


def test_a_device_refuses_a_link_it_left_and_unknown_links() -> None:
    device = _Device()
    device.feed(p.encode_frame(1, 1, p.Hello()))
    device.feed(p.encode_frame(2, 1, p.Hello()))
    (refusal,) = device.feed(p.encode_frame(1, 5, p.Hello()))
    (frame,) = p.FrameDecoder().feed(refusal)
    assert frame.message() == p.Error(p.ERR_NOT_LINKED, 0)
    (refusal,) = device.feed(p.encode_frame(3, 2, p.SetRate(1, 0, 1)))
    assert p.FrameDecoder().feed(refusal)[0].message() == p.Error(p.ERR_NOT_LINKED, 0)
    (refusal,) = device.feed(p.encode_frame(2, 7, p.SetRate(1, 0, 1)))
    assert p.FrameDecoder().feed(refusal)[0].message() == p.Error(p.ERR_BAD_SEQ, 2)
    assert device.applied == []
