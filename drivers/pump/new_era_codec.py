"""Sans-I/O codec for the New Era NE-1000 family (basic and safe mode), host and pump side.

Everything here is fed bytes and returns values; no port, no clock. Facts follow the NE-1000
user manual (RS-232 protocol chapter): basic-mode requests ``[addr]CMD[params]\\r``, replies
``STX addr(2) status [data] ETX``; safe-mode packets ``STX LEN data CRC_hi CRC_lo ETX`` with
``LEN = len(data) + 4`` and CRC-16/XMODEM over the data bytes. The host-side decoder takes a
frame only in the framing of the link's mode (:class:`Framing`): on a safe-mode link a basic
frame, which has no CRC, is garbage and never a status.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Protocol, TypeVar

from drivers.pump.frames import BufferedDecoder, FrameFault, Garbage
from vasopilot.core.units import UL_PER_ML, bore_area_mm2

STX = 0x02
ETX = 0x03
CR = 0x0D
MAX_ADDRESS = 99
MAX_NUMBER = Decimal("9999")
# Nothing the pump says is longer; a longer run of bytes without ETX is garbage, not a reply.
MAX_FRAME_BYTES = 64
# Safe-mode LEN counts itself, the two CRC bytes and ETX.
SAFE_OVERHEAD = 4
# Basic replies carry an ASCII address digit where a safe reply carries LEN: a LEN of 0x30-0x39
# would need 44-53 data bytes, longer than any reply, so the second byte tells the two apart.
_DIGITS = range(ord("0"), ord("9") + 1)


class NewEraStatus(StrEnum):
    """The status character of a reply (manual: "status characters")."""

    INFUSING = "I"
    WITHDRAWING = "W"
    STOPPED = "S"
    PAUSED = "P"
    PAUSE_PHASE = "T"
    WAITING_TRIGGER = "U"
    PURGING = "X"
    ALARM = "A"


class NewEraAlarm(StrEnum):
    """The code after ``A?`` in an alarm reply."""

    RESET = "R"
    STALL = "S"
    SAFE_MODE_TIMEOUT = "T"
    PROGRAM_ERROR = "E"
    PHASE_OUT_OF_RANGE = "O"


class NewEraError(StrEnum):
    """The error text after ``?`` in the data of a reply."""

    UNKNOWN_COMMAND = ""
    NOT_APPLICABLE = "NA"
    OUT_OF_RANGE = "OOR"
    COMMUNICATION = "COM"
    IGNORED = "IGN"


class RateUnit(StrEnum):
    """``RAT`` units: µL/min, mL/min, µL/h, mL/h."""

    UL_MIN = "UM"
    ML_MIN = "MM"
    UL_H = "UH"
    ML_H = "MH"

    @property
    def ml_h(self) -> float:
        """One of this unit, in mL/h."""
        return _ML_H_PER_UNIT[self]


_ML_H_PER_UNIT = {RateUnit.UL_MIN: 0.06, RateUnit.ML_MIN: 60.0, RateUnit.UL_H: 0.001,
                  RateUnit.ML_H: 1.0}
# On a tie in resolution the unit with the most headroom wins, so later rate increases while
# infusing still fit the same unit (units cannot change while pumping).
_UNIT_PREFERENCE = (RateUnit.ML_H, RateUnit.UL_MIN, RateUnit.UL_H, RateUnit.ML_MIN)


class VolumeUnit(StrEnum):
    UL = "UL"
    ML = "ML"


class CodecError(ValueError):
    """Bytes or text that do not follow the protocol."""


# -- numbers ------------------------------------------------------------------------------------


def _decimals(value: Decimal) -> int:
    int_digits = len(str(int(value)))
    return min(3, 4 - int_digits)


def format_number(value: float, *, round_down: bool = False) -> str:
    """The pump's number format: at most 4 digits, at most 3 after the point, always a point.

    ``round_down`` floors instead of rounding to nearest, for rates that must never round up.
    """
    if not value >= 0:  # also refuses NaN
        raise CodecError(f"the pump's numbers are not negative: {value}")
    rounding = ROUND_FLOOR if round_down else ROUND_HALF_UP
    exact = Decimal(repr(float(value)))
    if exact > MAX_NUMBER:
        raise CodecError(f"{value} does not fit in 4 digits")
    decimals = _decimals(exact)
    quantum = Decimal(1).scaleb(-decimals)
    shown = exact.quantize(quantum, rounding=rounding)
    if _decimals(shown) < decimals:  # rounding carried into a new digit (9.9996 -> 10.00)
        decimals = _decimals(shown)
        shown = exact.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
    if shown > MAX_NUMBER:
        raise CodecError(f"{value} does not fit in 4 digits")
    return f"{shown:.{decimals}f}" if decimals else f"{shown:.0f}."


_NUMBER = re.compile(r"^(?=.*\d)(\d*)(?:\.(\d*))?$")


def parse_number(text: str) -> float:
    """A number as the pump accepts it: at most 4 digits, one point, 3 digits after it."""
    match = _NUMBER.match(text)
    if match is None:
        raise CodecError(f"not a pump number: {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    if len(whole) + len(frac) > 4 or len(frac) > 3:
        raise CodecError(f"more digits than the pump keeps: {text!r}")
    try:
        return float(Decimal(text))
    except InvalidOperation:
        raise CodecError(f"not a pump number: {text!r}") from None


def resolution_in_unit(value: float) -> float:
    """The step of the number format around ``value`` (0.001 below 10, 0.01 below 100...)."""
    return 10.0 ** -_decimals(Decimal(repr(float(value))))


class _Unit(Protocol):
    @property
    def ml_h(self) -> float: ...


U = TypeVar("U", bound=_Unit)


def finest_unit(rate_ml_h: float, units: Sequence[U]) -> U:
    """Of ``units`` (each with its size in mL/h, earliest preferred on a tie), the one in which
    ``rate_ml_h`` is written with the finest step in this number format."""
    best: tuple[float, U] | None = None
    for unit in units:
        value = rate_ml_h / unit.ml_h
        if value >= float(MAX_NUMBER) or float(format_number(value, round_down=True)) <= 0:
            continue
        step_ml_h = resolution_in_unit(value) * unit.ml_h
        if best is None or step_ml_h < best[0] * (1 - 1e-9):
            best = (step_ml_h, unit)
    if best is None:
        raise CodecError(f"{rate_ml_h} mL/h cannot be written in any rate unit")
    return best[1]


def best_rate_unit(rate_ml_h: float) -> RateUnit:
    """The ``RAT`` unit in which ``rate_ml_h`` is written with the finest resolution."""
    return finest_unit(rate_ml_h, _UNIT_PREFERENCE)


def rate_in_unit(rate_ml_h: float, unit: RateUnit) -> str:
    """``rate_ml_h`` written in ``unit``, rounded down (a pump never runs faster than asked)."""
    value = rate_ml_h / unit.ml_h
    if value >= float(MAX_NUMBER) + 1:
        raise CodecError(f"{rate_ml_h} mL/h does not fit in unit {unit}")
    return format_number(value, round_down=True)


def volume_unit_for(diameter_mm: float) -> VolumeUnit:
    """The pump counts volume in µL up to a 14.00 mm bore and in mL above."""
    return VolumeUnit.UL if diameter_mm <= 14.0 else VolumeUnit.ML


# Plunger speed limits of the NE-1000 (manual, specifications).
MIN_PLUNGER_MM_H = 0.04205
MAX_PLUNGER_MM_MIN = 51.005


def plunger_rate_limits_ml_h(diameter_mm: float, min_plunger_mm_h: float,
                             max_plunger_mm_h: float) -> tuple[float, float]:
    """Slowest and fastest rate for a bore, in mL/h: a pump's plunger speed limits x area."""
    area_mm2 = bore_area_mm2(diameter_mm)
    return area_mm2 * min_plunger_mm_h / UL_PER_ML, area_mm2 * max_plunger_mm_h / UL_PER_ML


def rate_limits_ml_h(diameter_mm: float) -> tuple[float, float]:
    """The NE-1000's slowest and fastest rate for a bore, in mL/h (plunger limits x area)."""
    return plunger_rate_limits_ml_h(diameter_mm, MIN_PLUNGER_MM_H, MAX_PLUNGER_MM_MIN * 60.0)


# -- safe-mode packets --------------------------------------------------------------------------


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/CCITT, XMODEM form (poly 0x1021, init 0, no reflection)."""
    return binascii.crc_hqx(data, 0)


def encode_safe(data: bytes) -> bytes:
    """Wrap ``data`` in a safe-mode packet."""
    length = len(data) + SAFE_OVERHEAD
    if length > 0xFF:
        raise CodecError(f"safe-mode packet too long ({len(data)} data bytes)")
    crc = crc16_xmodem(data)
    return bytes([STX, length]) + data + bytes([crc >> 8, crc & 0xFF, ETX])


def encode_basic_request(text: str) -> bytes:
    return text.encode("ascii") + b"\r"


def encode_request(address: int | None, command: str, *, safe: bool) -> bytes:
    """A host request: ``[address]COMMAND[parameters]``, framed for the mode in use."""
    if address is not None and not 0 <= address <= MAX_ADDRESS:
        raise CodecError(f"pump address must be 0-99, got {address}")
    text = ("" if address is None else str(address)) + command
    return encode_safe(text.encode("ascii")) if safe else encode_basic_request(text)


# -- replies (pump to host) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewEraReply:
    """One reply. ``safe`` tells how it was framed; ``data`` is what follows the status."""

    address: int
    status: NewEraStatus
    data: str = ""
    alarm: NewEraAlarm | None = None
    error: NewEraError | None = None
    safe: bool = False

    def encode(self) -> bytes:
        body = f"{self.address:02d}{self.status.value}"
        if self.alarm is not None:
            body += f"?{self.alarm.value}"
        elif self.error is not None:
            body += f"?{self.error.value}"
        else:
            body += self.data
        raw = body.encode("ascii")
        return encode_safe(raw) if self.safe else bytes([STX]) + raw + bytes([ETX])


def parse_reply_body(body: bytes, *, safe: bool) -> NewEraReply:
    """``addr(2) status [data]`` as found inside either frame."""
    text = body.decode("latin-1")
    if not (text.isascii() and text.isprintable()):
        # The pump writes printable ASCII only: a control byte is noise inside the frame.
        raise CodecError(f"reply is not printable ASCII: {body!r}")
    if len(text) < 3 or not text[:2].isdigit():
        raise CodecError(f"reply too short or without address: {body!r}")
    address = int(text[:2])
    try:
        status = NewEraStatus(text[2])
    except ValueError:
        raise CodecError(f"unknown status character {text[2]!r} in {body!r}") from None
    rest = text[3:]
    if status is NewEraStatus.ALARM:
        if len(rest) != 2 or rest[0] != "?":
            raise CodecError(f"malformed alarm reply {body!r}")
        try:
            return NewEraReply(address, status, alarm=NewEraAlarm(rest[1]), safe=safe)
        except ValueError:
            raise CodecError(f"unknown alarm code {rest[1]!r}") from None
    if rest.startswith("?"):
        try:
            return NewEraReply(address, status, error=NewEraError(rest[1:]), safe=safe)
        except ValueError:
            raise CodecError(f"unknown error reply {rest!r}") from None
    return NewEraReply(address, status, data=rest, safe=safe)


class Framing(StrEnum):
    """The framing a host-side decoder accepts replies in: the link's mode.

    ``EITHER`` is only for the answer to ``SAF``, which comes in the mode it selects, or, when
    the command met an alarm and was not carried out, in the mode the pump was already in (kept
    in its non-volatile memory, so unknown to a host that just connected).
    """

    BASIC = "basic"
    SAFE = "safe"
    EITHER = "either"


class ReplyDecoder(BufferedDecoder):
    """Host side: turns the byte stream from the pump into replies and garbage.

    A frame counts only when it passes the checks of ``framing``: in safe mode STX, LEN, CRC
    and ETX (a basic frame, which has no CRC, is garbage); in basic mode STX, a two-digit
    address and ETX with printable text between. Set ``framing`` before each exchange.
    """

    def __init__(self, *, framing: Framing) -> None:
        super().__init__()
        self.framing = framing

    def feed(self, data: bytes) -> list[NewEraReply | Garbage]:
        self._buf.extend(data)
        out: list[NewEraReply | Garbage] = []
        while self._buf:
            if self._buf[0] != STX:
                end = self._buf.find(STX)
                end = len(self._buf) if end < 0 else end
                out.append(Garbage(bytes(self._buf[:end]), FrameFault.OUTSIDE_FRAME))
                del self._buf[:end]
                continue
            item = self._take_frame()
            if item is None:
                break
            out.append(item)
        return out

    def _take_frame(self) -> NewEraReply | Garbage | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        basic = buf[1] in _DIGITS
        if basic and self.framing is Framing.SAFE:
            return self._drop_to_next_stx(FrameFault.UNCHECKED_FRAME)
        if not basic and self.framing is Framing.BASIC:
            return self._drop_to_next_stx(FrameFault.NOT_BASIC)
        return self._take_basic() if basic else self._take_safe()

    def _take_basic(self) -> NewEraReply | Garbage | None:
        buf = self._buf
        end = buf.find(ETX)
        cut = buf.find(STX, 1)
        if cut > 0 and (end < 0 or cut < end):
            return self._drop_to_next_stx(FrameFault.CUT_SHORT)
        if end < 0:
            if len(buf) > MAX_FRAME_BYTES:
                return self._drop_to_next_stx(FrameFault.NO_END)
            return None
        frame = bytes(buf[: end + 1])
        del buf[: end + 1]
        return _parsed(frame, frame[1:-1], safe=False)

    def _take_safe(self) -> NewEraReply | Garbage | None:
        buf = self._buf
        length = buf[1]
        if length < SAFE_OVERHEAD:
            return self._drop_to_next_stx(FrameFault.BAD_LENGTH, f"LEN {length}")
        total = 1 + length
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        data, crc_bytes, tail = frame[2:-3], frame[-3:-1], frame[-1]
        if tail != ETX:
            return self._drop_to_next_stx(FrameFault.NO_END, "no ETX where LEN puts it")
        del buf[:total]
        if int.from_bytes(crc_bytes, "big") != crc16_xmodem(data):
            return Garbage(frame, FrameFault.BAD_CRC)
        return _parsed(frame, data, safe=True)

    def _drop_to_next_stx(self, fault: FrameFault, detail: str = "") -> Garbage:
        nxt = self._buf.find(STX, 1)
        end = len(self._buf) if nxt < 0 else nxt
        dropped = bytes(self._buf[:end])
        del self._buf[:end]
        return Garbage(dropped, fault, detail)


def _parsed(frame: bytes, body: bytes, *, safe: bool) -> NewEraReply | Garbage:
    try:
        return parse_reply_body(body, safe=safe)
    except CodecError as exc:
        return Garbage(frame, FrameFault.MALFORMED, str(exc))


# -- requests (pump side, used by the emulator) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewEraRequest:
    """One command as the pump understood it. ``address`` is None when none was written."""

    address: int | None
    command: str
    params: str
    safe: bool
    system: bool = False


@dataclass(frozen=True, slots=True)
class BadPacket:
    """A safe-mode packet that failed its checks: the pump answers ``?COM``."""

    raw: bytes
    reason: str


_REQUEST = re.compile(r"^(\*)?(\d{1,2})?([A-Z]{0,3})?(.*)$")
# The 0.5 s inter-byte gap after which the pump forgets a partial packet.
PARTIAL_PACKET_GAP_S = 0.5


def parse_request_text(text: str, *, safe: bool) -> NewEraRequest:
    """Normalise as the pump does (drop spaces and control characters, upper-case), then split
    into address, 3-letter command and parameters."""
    clean = "".join(c for c in text if c.isprintable() and c != " ").upper()
    match = _REQUEST.match(clean)
    assert match is not None  # every part of the pattern is optional
    star, addr, command, params = match.groups()
    if star:
        # System commands are longer than three letters (*RESET, *ADR).
        return NewEraRequest(None, (command or "") + params, "", safe, system=True)
    return NewEraRequest(None if addr is None else int(addr), command or "", params, safe)


class RequestDecoder:
    """Pump side: splits the host's byte stream into requests, bad packets and noise.

    ``t_s`` on every feed lets it forget a partial request after the inter-byte gap.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._last_byte_t_s: float | None = None

    def feed(self, data: bytes, t_s: float) -> list[NewEraRequest | BadPacket]:
        if (
            self._buf
            and self._last_byte_t_s is not None
            and t_s - self._last_byte_t_s > PARTIAL_PACKET_GAP_S
        ):
            self._buf.clear()
        if data:
            self._last_byte_t_s = t_s
        self._buf.extend(data)
        out: list[NewEraRequest | BadPacket] = []
        while self._buf:
            item = self._take()
            if item is None:
                break
            if isinstance(item, NewEraRequest | BadPacket):
                out.append(item)
        return out

    def _take(self) -> NewEraRequest | BadPacket | bool | None:
        """The next item; True when bytes were consumed without producing one."""
        buf = self._buf
        if buf[0] == STX:
            if len(buf) < 2:
                return None
            length = buf[1]
            if length < SAFE_OVERHEAD:
                del buf[:2]
                return BadPacket(bytes([STX, length]), f"LEN {length} below {SAFE_OVERHEAD}")
            total = 1 + length
            if len(buf) < total:
                return None
            packet = bytes(buf[:total])
            del buf[:total]
            data = packet[2:-3]
            if packet[-1] != ETX:
                return BadPacket(packet, "no ETX at the end of the packet")
            if int.from_bytes(packet[-3:-1], "big") != crc16_xmodem(data):
                return BadPacket(packet, "bad CRC")
            return parse_request_text(data.decode("latin-1"), safe=True)
        end = -1
        for i, byte in enumerate(buf):
            if byte in (CR, STX):
                end = i
                break
        if end < 0:
            if len(buf) > MAX_FRAME_BYTES:
                buf.clear()
                return True
            return None
        if buf[end] == STX:  # a safe packet cut a basic request short: the request is lost
            del buf[:end]
            return True
        line = bytes(buf[:end])
        del buf[: end + 1]
        return parse_request_text(line.decode("latin-1"), safe=False)
