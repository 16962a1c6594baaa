"""The bridge link: framing, messages and the link state machines of host and device.

One module, sans I/O, in the common subset of CPython and MicroPython: the host driver
(``drivers/pump/bridge.py``), the firmware on the Pico and its emulator import it unchanged,
so it imports only ``binascii`` and ``struct`` (``tests/test_bridge_protocol.py`` checks the
imports against that allow-list) and uses no dataclasses, enums or typing at run time.

Frame on the wire: ``COBS(payload) 0x00``. COBS leaves 0x00 only as the delimiter, so after
noise the decoder resyncs at the next 0x00 and loses at most the frame it was in. Payload:

    version u8 | link u16 | seq u16 | type u8 | body | CRC-32 u32   (little-endian)

The CRC is CRC-32/ISO-HDLC (``binascii.crc32``, in C on both interpreters; check value
0xCBF43926 for "123456789") over everything before it.

The link is stop and wait. The host numbers each request (``seq``) within a link (``link``, a
random id chosen at every connection and announced by a hello). The device executes a request
only when its ``seq`` is the one after the last it executed, answers a repeat of the last from
its cached reply without executing it again, and refuses anything else without executing it:
nothing is ever applied twice, and a host that retransmits after a lost reply learns what
happened the first time. Retransmission is bounded: ``HostLink`` doubles its timeout from
``first_timeout_s`` up to ``max_timeout_s`` and gives up after ``max_attempts`` sends, which the
driver reports as an uncertain delivery.

Rates are steps/s in Q16.16 fixed point; a rate outside the device's exact range is refused
(``Error`` with ``ERR_OUT_OF_RANGE``), never clamped.
"""

import binascii
import struct

# mypy reads this block (it takes any TYPE_CHECKING as true); no interpreter ever runs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

VERSION = 1
HEADER = "<BHHB"
HEADER_SIZE = 6
CRC_SIZE = 4
# The largest payload either side sends (a status is 48 bytes); longer frames are noise.
MAX_PAYLOAD = 96
# COBS adds one byte per 254 and the header byte; a frame longer than this is dropped whole.
MAX_ENCODED = MAX_PAYLOAD + MAX_PAYLOAD // 254 + 2
Q16 = 65536
# Link ids a device remembers having left (a host picks a fresh random id at every connect).
RETIRED_LINKS = 16

# Requests (host to device).
HELLO = 0x01
SET_RATE = 0x02
BACK_OFF = 0x03
SET_POLICY = 0x04
ACK_ALARM = 0x05
PING = 0x06
GET_STATUS = 0x07
# Replies (device to host).
HELLO_REPLY = 0x81
STATUS = 0x82
PONG = 0x83
ERROR = 0x84

INFUSE = 0
WITHDRAW = 1

POLICY_KEEP_RATE = 0
POLICY_STOP = 1

# Reset causes (what the chip says about its last reset).
RESET_POWER_ON = 1
RESET_WATCHDOG = 2
RESET_OTHER = 3

# Input bits of a status.
INPUT_STALL = 0x01
INPUT_END_OF_TRAVEL = 0x02
INPUT_PLUNGER = 0x04  # set when the plunger is seen (clamped in the driver)

# Flag bits of a status.
FLAG_HOST_LOST = 0x01
FLAG_ALARM = 0x02  # the local alarm output is latched on
FLAG_RESUMED = 0x04  # this boot resumed a run from the watchdog scratch registers
FLAG_BACKING_OFF = 0x08

# Why the motor last stopped by itself (0: it did not, or the host stopped it).
STOP_NONE = 0
STOP_STALL = 1
STOP_END_OF_TRAVEL = 2
STOP_NO_PLUNGER = 3
STOP_UNATTENDED_CAP = 4
STOP_HOST_LOST = 5

# Capability bits of a hello reply.
CAP_BACK_OFF = 0x01
CAP_SCRATCH_RESUME = 0x02
CAP_ALARM_OUTPUT = 0x04
CAP_STALL_INPUT = 0x08
CAP_END_OF_TRAVEL_INPUT = 0x10
CAP_PLUNGER_INPUT = 0x20

# Error codes. Link errors (version, link, sequence) are not executions and are not cached.
ERR_BAD_VERSION = 1
ERR_NOT_LINKED = 2
ERR_BAD_SEQ = 3
ERR_UNKNOWN_TYPE = 4
ERR_BAD_LENGTH = 5
ERR_OUT_OF_RANGE = 6
ERR_INPUT_BLOCKS = 7  # stall, end of travel or no plunger: the motor may not start
ERR_BAD_DIRECTION = 8


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (reflected 0x04C11DB7, init and xorout 0xFFFFFFFF)."""
    return binascii.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result holds no 0x00 (the delimiter is not added)."""
    out = bytearray()
    i = 0
    n = len(data)
    while True:
        j = i
        while j < n and data[j] != 0 and j - i < 254:
            j += 1
        out.append(j - i + 1)
        out.extend(data[i:j])
        if j >= n:
            break
        # A full block of 254 is not followed by a zero; any shorter block is.
        i = j if j - i == 254 else j + 1
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """The inverse of :func:`cobs_encode`; raises ValueError on anything it cannot produce."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ValueError("COBS block code 0")
        j = i + code
        if j > n:
            raise ValueError("COBS block runs past the end")
        chunk = data[i + 1 : j]
        if 0 in chunk:
            raise ValueError("COBS block holds a zero")
        out.extend(chunk)
        i = j
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


class Message:
    """A message body: fixed fields packed with ``FORMAT``, named in ``FIELDS``."""

    TYPE = 0
    FORMAT = "<"
    FIELDS: "tuple[str, ...]" = ()

    def __init__(self, *values: int, **named: int) -> None:
        if values and named:
            raise TypeError("give the fields by position or by name, not both")
        if named:
            for name in named:
                if name not in self.FIELDS:
                    raise TypeError("no field " + name)
            values = tuple(named[name] for name in self.FIELDS)
        if len(values) != len(self.FIELDS):
            raise TypeError("expected " + str(len(self.FIELDS)) + " fields")
        for i in range(len(values)):
            setattr(self, self.FIELDS[i], values[i])

    def values(self) -> "tuple[int, ...]":
        return tuple(getattr(self, name) for name in self.FIELDS)

    def encode(self) -> bytes:
        """The body; raises ValueError when a field does not fit its width."""
        try:
            return struct.pack(self.FORMAT, *self.values())
        except (struct.error, OverflowError) as exc:
            raise ValueError(str(exc)) from None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Message) and other.TYPE == self.TYPE
                and other.values() == self.values())

    def __hash__(self) -> int:
        return hash((self.TYPE, self.values()))

    def __repr__(self) -> str:
        parts = [name + "=" + str(getattr(self, name)) for name in self.FIELDS]
        return type(self).__name__ + "(" + ", ".join(parts) + ")"


class Hello(Message):
    """Opens a link (the frame's ``link`` is the host's new id); answered by a HelloReply."""

    TYPE = HELLO
    FORMAT = "<"
    FIELDS = ()


class SetRate(Message):
    """Run at ``rate_q16`` steps/s (Q16.16) in ``direction``; 0 stops. ``generation`` is the
    host's number for this setting, echoed in every status."""

    TYPE = SET_RATE
    FORMAT = "<IBI"
    FIELDS = ("generation", "direction", "rate_q16")
    generation = 0
    direction = 0
    rate_q16 = 0


class BackOff(Message):
    """Withdraw ``steps`` at ``rate_q16``, then stop. A back-off adds travel, so it carries an
    ``backoff_id`` the device remembers: the same id is never run twice."""

    TYPE = BACK_OFF
    FORMAT = "<III"
    FIELDS = ("backoff_id", "steps", "rate_q16")
    backoff_id = 0
    steps = 0
    rate_q16 = 0


class SetPolicy(Message):
    """Host loss: no valid frame for ``host_loss_timeout_ms`` latches the alarm and either keeps
    the rate (``POLICY_KEEP_RATE``) or stops (``POLICY_STOP``). ``unattended_cap_steps`` (0: none)
    stops the motor once that many steps ran while the host was lost."""

    TYPE = SET_POLICY
    FORMAT = "<IBI"
    FIELDS = ("host_loss_timeout_ms", "action", "unattended_cap_steps")
    host_loss_timeout_ms = 0
    action = 0
    unattended_cap_steps = 0


class AckAlarm(Message):
    """Clears the latched alarm output (a cause still present latches it again)."""

    TYPE = ACK_ALARM
    FORMAT = "<"
    FIELDS = ()


class Ping(Message):
    TYPE = PING
    FORMAT = "<I"
    FIELDS = ("token",)
    token = 0


class GetStatus(Message):
    TYPE = GET_STATUS
    FORMAT = "<"
    FIELDS = ()


class HelloReply(Message):
    """Firmware version, this boot's random id and reset cause, capability bits, the exact rate
    range (Q16.16 steps/s) and the step clock (Hz) the periods are counted in."""

    TYPE = HELLO_REPLY
    FORMAT = "<BBBIBHIII"
    FIELDS = ("fw_major", "fw_minor", "fw_patch", "boot_id", "reset_cause", "capabilities",
              "min_rate_q16", "max_rate_q16", "step_clock_hz")
    fw_major = 0
    fw_minor = 0
    fw_patch = 0
    boot_id = 0
    reset_cause = 0
    capabilities = 0
    min_rate_q16 = 0
    max_rate_q16 = 0
    step_clock_hz = 0


class Status(Message):
    """The device's state: ``mcu_time_us`` is its 64-bit microsecond clock; step counts are
    since boot; ``rate_q16`` is 0 when the motor is stopped."""

    TYPE = STATUS
    FORMAT = "<IQIIIBIBBBBIB"
    FIELDS = ("boot_id", "mcu_time_us", "infused_steps", "withdrawn_steps", "rate_q16",
              "direction", "generation", "inputs", "flags", "reset_cause", "stop_cause",
              "backoff_id", "policy_action")
    boot_id = 0
    mcu_time_us = 0
    infused_steps = 0
    withdrawn_steps = 0
    rate_q16 = 0
    direction = 0
    generation = 0
    inputs = 0
    flags = 0
    reset_cause = 0
    stop_cause = 0
    backoff_id = 0
    policy_action = 0


class Pong(Message):
    TYPE = PONG
    FORMAT = "<IQ"
    FIELDS = ("token", "mcu_time_us")
    token = 0
    mcu_time_us = 0


class Error(Message):
    """A refusal: ``code`` (``ERR_*``) and a number that says more (the range limit broken,
    the sequence number expected)."""

    TYPE = ERROR
    FORMAT = "<BI"
    FIELDS = ("code", "detail")
    code = 0
    detail = 0


MESSAGES: "dict[int, type[Message]]" = {}
for _cls in (Hello, SetRate, BackOff, SetPolicy, AckAlarm, Ping, GetStatus, HelloReply, Status,
             Pong, Error):
    MESSAGES[_cls.TYPE] = _cls


def decode_message(msg_type: int, body: bytes) -> Message:
    """The message of ``msg_type`` in ``body``; ValueError for an unknown type or bad length."""
    cls = MESSAGES.get(msg_type)
    if cls is None:
        raise ValueError("unknown message type " + str(msg_type))
    if len(body) != struct.calcsize(cls.FORMAT):
        raise ValueError("bad length " + str(len(body)) + " for type " + str(msg_type))
    return cls(*struct.unpack(cls.FORMAT, body))


class Frame:
    """One checked frame: header fields and the raw body (decoded by :func:`decode_message`)."""

    def __init__(self, version: int, link: int, seq: int, msg_type: int, body: bytes) -> None:
        self.version = version
        self.link = link
        self.seq = seq
        self.msg_type = msg_type
        self.body = body

    def message(self) -> Message:
        return decode_message(self.msg_type, self.body)


def encode_frame(link: int, seq: int, message: Message, version: int = VERSION) -> bytes:
    """A whole frame on the wire, delimiter included."""
    payload = struct.pack(HEADER, version, link, seq, message.TYPE) + message.encode()
    payload += struct.pack("<I", crc32(payload))
    return cobs_encode(payload) + b"\x00"


class FrameDecoder:
    """Fed any bytes, returns the frames that pass their checks; never raises on input.

    A frame counts only if it is COBS-valid, long enough, not too long, and its CRC matches;
    anything else is counted in ``rejected`` and forgotten at the next delimiter.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.rejected = 0
        self.accepted = 0

    @property
    def pending(self) -> bytes:
        """Bytes of a frame begun but not finished."""
        return bytes(self._buf)

    def clear(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> "list[Frame]":
        frames = []
        for byte in data:
            if byte != 0:
                if len(self._buf) < MAX_ENCODED:
                    self._buf.append(byte)
                else:
                    self._overflow = True
                continue
            if self._buf or self._overflow:
                frame = None if self._overflow else self._check(bytes(self._buf))
                if frame is None:
                    self.rejected += 1
                else:
                    self.accepted += 1
                    frames.append(frame)
            self.clear()
        return frames

    def _check(self, encoded: bytes) -> "Frame | None":
        try:
            payload = cobs_decode(encoded)
        except ValueError:
            return None
        if len(payload) < HEADER_SIZE + CRC_SIZE or len(payload) > MAX_PAYLOAD:
            return None
        (crc,) = struct.unpack("<I", payload[-CRC_SIZE:])
        if crc32(payload[:-CRC_SIZE]) != crc:
            return None
        version, link, seq, msg_type = struct.unpack(HEADER, payload[:HEADER_SIZE])
        return Frame(version, link, seq, msg_type, payload[HEADER_SIZE:-CRC_SIZE])


class HostLink:
    """The host's side of one link: one request at a time, bounded retransmission.

    Sans I/O and sans clock: :meth:`send` gives the frame to write, :meth:`feed` takes what
    came back and returns the reply once it arrives, and the caller calls :meth:`on_timeout`
    when ``timeout_s`` passed without it, which gives the same frame again (never a new
    sequence number) or None when ``max_attempts`` sends went unanswered.
    """

    def __init__(self, link_id: int, *, first_seq: int = 1, first_timeout_s: float = 0.05,
                 max_timeout_s: float = 0.4, max_attempts: int = 5) -> None:
        if not 0 <= link_id <= 0xFFFF or max_attempts < 1 or first_timeout_s <= 0:
            raise ValueError("bad link settings")
        self.link_id = link_id
        self._next_seq = first_seq & 0xFFFF
        self._first_timeout_s = first_timeout_s
        self._max_timeout_s = max_timeout_s
        self.max_attempts = max_attempts
        self.decoder = FrameDecoder()
        self._frame = b""
        self._seq = -1
        self.attempts = 0
        self.retransmissions = 0
        self.other_frames = 0

    @property
    def waiting(self) -> bool:
        return self._seq >= 0

    @property
    def timeout_s(self) -> float:
        """How long to wait for the reply to the current attempt."""
        t = self._first_timeout_s * (1 << max(0, self.attempts - 1))
        return min(t, self._max_timeout_s)

    def send(self, message: Message) -> bytes:
        if self.waiting:
            raise RuntimeError("a request is still waiting for its reply")
        self._seq = self._next_seq
        self._next_seq = (self._next_seq + 1) & 0xFFFF
        self._frame = encode_frame(self.link_id, self._seq, message)
        self.attempts = 1
        return self._frame

    def on_timeout(self) -> "bytes | None":
        """The same frame to send again, or None (and the request abandoned) when the attempts
        are used up: the device may or may not have executed it."""
        if not self.waiting:
            return None
        if self.attempts >= self.max_attempts:
            self._seq = -1
            return None
        self.attempts += 1
        self.retransmissions += 1
        return self._frame

    def feed(self, data: bytes) -> "Message | None":
        """The reply to the waiting request if ``data`` completed it; stale replies (other
        links, other sequence numbers, undecodable bodies) are counted and dropped."""
        reply = None
        for frame in self.decoder.feed(data):
            if (reply is not None or frame.version != VERSION or frame.link != self.link_id
                    or frame.seq != self._seq or frame.msg_type < 0x80):
                self.other_frames += 1
                continue
            try:
                reply = frame.message()
            except ValueError:
                self.other_frames += 1
                continue
            self._seq = -1
        return reply


class DeviceLink:
    """The device's side: which frames to execute, which to answer from the cache.

    :meth:`feed` calls ``execute(frame)`` for each request to carry out, in order, and caches
    the reply it returns before looking at the next frame, so a duplicate right behind its
    original is answered from the cache too. It returns the bytes to send back.
    """

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.link_id = -1
        self._last_seq = -1
        self._cached = b""
        self._retired = []  # type: list[int]
        self.executed = 0
        self.repeats = 0

    def _retire(self, link_id: int) -> None:
        """A link once left is never taken up again: a delayed hello of it must not bring
        back its sequence numbers, and with them its delayed duplicates."""
        if link_id >= 0:
            self._retired.append(link_id)
            if len(self._retired) > RETIRED_LINKS:
                self._retired.pop(0)

    def feed(self, data: bytes, execute: "Callable[[Frame], Message]") -> bytes:
        out = bytearray()
        for frame in self.decoder.feed(data):
            if frame.msg_type >= 0x80:
                continue  # a reply on a request line: our own echo or noise that passed CRC
            if frame.version != VERSION:
                out.extend(encode_frame(frame.link, frame.seq, Error(ERR_BAD_VERSION, VERSION)))
            elif frame.link == self.link_id and frame.seq == self._last_seq and self._cached:
                out.extend(self._cached)
                self.repeats += 1
            elif frame.link != self.link_id and (frame.msg_type != HELLO
                                                 or frame.link in self._retired):
                out.extend(encode_frame(frame.link, frame.seq, Error(ERR_NOT_LINKED, 0)))
            elif frame.link == self.link_id and frame.seq != (self._last_seq + 1) & 0xFFFF:
                expected = (self._last_seq + 1) & 0xFFFF
                out.extend(encode_frame(frame.link, frame.seq, Error(ERR_BAD_SEQ, expected)))
            else:
                if frame.link != self.link_id:
                    self._retire(self.link_id)
                    self.link_id = frame.link
                self._last_seq = frame.seq
                self.executed += 1
                self._cached = encode_frame(frame.link, frame.seq, execute(frame))
                out.extend(self._cached)
        return bytes(out)


def q16_from_hz(rate_hz: float) -> int:
    """Steps/s to Q16.16, rounded down (never a faster rate than asked)."""
    return int(rate_hz * Q16)


def hz_from_q16(rate_q16: int) -> float:
    return rate_q16 / Q16
