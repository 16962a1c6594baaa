"""Sans-I/O codec for the Harvard Apparatus Pump 11 Elite / PHD Ultra command set.

Requests are lower-case ASCII lines ending in CR, optionally addressed ``12:irate 3.2 ul/min``;
a command may be cut to its first 4 letters. A reply is CRLF, any text lines each ending in
CRLF, then the prompt: ``:`` idle, ``>`` infusing, ``<`` withdrawing, ``*`` stalled, ``T*``
target reached, preceded by the pump's address when it is not 0. Errors are text lines
("Command error", "Unknown command", "Argument error", "Out of range").

Assumptions, not from the manual (docs/pumps.md; check the manual before trusting numbers):
rates and volumes carry 4 significant digits, written like the NE-1000's numbers; the
pusher speed limits below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from drivers.pump.frames import BufferedDecoder, FrameFault, Garbage
from drivers.pump.new_era_codec import (
    CodecError,
    finest_unit,
    format_number,
    parse_number,
    plunger_rate_limits_ml_h,
)

MAX_ADDRESS = 99
# Assumed pusher speed limits of the Pump 11 Elite, not from the manual (docs/pumps.md).
MIN_PLUNGER_MM_MIN = 0.18e-3
MAX_PLUNGER_MM_MIN = 159.0
MAX_REPLY_BYTES = 256

COMMANDS = (
    "diameter", "irate", "wrate", "irun", "wrun", "stp", "ivolume", "wvolume", "civolume",
    "cwvolume", "cvolume", "tvolume", "ctvolume", "force", "ver",
)


class HarvardPrompt(StrEnum):
    IDLE = ":"
    INFUSING = ">"
    WITHDRAWING = "<"
    STALLED = "*"
    TARGET_REACHED = "T*"


class HarvardError(StrEnum):
    COMMAND_ERROR = "Command error"
    UNKNOWN_COMMAND = "Unknown command"
    ARGUMENT_ERROR = "Argument error"
    OUT_OF_RANGE = "Out of range"


class HarvardRateUnit(StrEnum):
    ML_H = "ml/hr"
    UL_H = "ul/hr"
    ML_MIN = "ml/min"
    UL_MIN = "ul/min"

    @property
    def ml_h(self) -> float:
        return _ML_H[self]


_ML_H = {HarvardRateUnit.ML_H: 1.0, HarvardRateUnit.UL_H: 0.001, HarvardRateUnit.ML_MIN: 60.0,
         HarvardRateUnit.UL_MIN: 0.06}
# Ties go to the unit with the most headroom, like the NE-1000 driver.
_PREFERENCE = (HarvardRateUnit.ML_H, HarvardRateUnit.UL_MIN, HarvardRateUnit.UL_H,
               HarvardRateUnit.ML_MIN)


def harvard_rate_limits_ml_h(diameter_mm: float) -> tuple[float, float]:
    """Slowest and fastest rate for a bore, in mL/h (assumed plunger limits x area)."""
    return plunger_rate_limits_ml_h(diameter_mm, MIN_PLUNGER_MM_MIN * 60.0,
                                    MAX_PLUNGER_MM_MIN * 60.0)


def best_rate_unit(rate_ml_h: float) -> HarvardRateUnit:
    """The unit that writes ``rate_ml_h`` with the finest step in 4 significant digits."""
    return finest_unit(rate_ml_h, _PREFERENCE)


def format_rate(rate_ml_h: float, unit: HarvardRateUnit) -> str:
    """``"7.500 ml/hr"``: rounded down, a pump never runs faster than asked."""
    return f"{format_number(rate_ml_h / unit.ml_h, round_down=True)} {unit.value}"


_RATE = re.compile(r"^\s*([\d.]+)\s+(ml/hr|ul/hr|ml/min|ul/min)\s*$")
_VOLUME = re.compile(r"^\s*([\d.]+)\s+(ml|ul)\s*$")


def parse_rate(text: str) -> tuple[float, HarvardRateUnit]:
    """``"7.5 ml/hr"`` into (value, unit)."""
    match = _RATE.match(text)
    if match is None:
        raise CodecError(f"not a rate: {text!r}")
    return parse_number(match.group(1)), HarvardRateUnit(match.group(2))


def parse_volume_ml(text: str) -> float:
    """``"1.234 ml"`` or ``"250.0 ul"`` in mL."""
    match = _VOLUME.match(text)
    if match is None:
        raise CodecError(f"not a volume: {text!r}")
    value = parse_number(match.group(1))
    return value if match.group(2) == "ml" else value / 1000.0


def encode_request(address: int, text: str) -> bytes:
    if not 0 <= address <= MAX_ADDRESS:
        raise CodecError(f"pump address must be 0-99, got {address}")
    prefix = f"{address}:" if address else ""
    return (prefix + text + "\r").encode("ascii")


@dataclass(frozen=True, slots=True)
class HarvardReply:
    """One reply: text lines and the prompt. ``error`` when the only line is an error."""

    address: int
    prompt: HarvardPrompt
    lines: tuple[str, ...] = ()

    @property
    def error(self) -> HarvardError | None:
        for line in self.lines:
            try:
                return HarvardError(line.strip())
            except ValueError:
                continue
        return None

    def encode(self) -> bytes:
        body = "".join(line + "\r\n" for line in self.lines)
        prefix = f"{self.address:02d}" if self.address else ""
        return ("\r\n" + body + prefix + self.prompt.value).encode("ascii")


_PROMPT = re.compile(r"^(\d{2})?(T\*|:|>|<|\*)$")


class ReplyDecoder(BufferedDecoder):
    """Host side: splits the pump's output into replies (ended by a prompt) and garbage."""

    def feed(self, data: bytes) -> list[HarvardReply | Garbage]:
        self._buf.extend(data)
        out: list[HarvardReply | Garbage] = []
        while self._buf:
            if not self._buf.startswith(b"\r\n"):
                start = self._buf.find(b"\r\n")
                if start < 0:
                    if len(self._buf) == 1 and self._buf[0] == 0x0D:
                        break  # the first half of a CRLF
                    start = len(self._buf)
                out.append(Garbage(bytes(self._buf[:start]), FrameFault.OUTSIDE_FRAME))
                del self._buf[:start]
                continue
            reply = self._take_reply()
            if reply is None:
                break
            out.append(reply)
        return out

    def _take_reply(self) -> HarvardReply | Garbage | None:
        """Lines after the opening CRLF, up to the first segment that is a prompt. A prompt is
        never followed by its own CRLF, so a segment that is a whole prompt ends the reply."""
        buf = bytes(self._buf)
        pos = 2
        lines: list[str] = []
        while True:
            end = buf.find(b"\r\n", pos)
            segment = buf[pos:] if end < 0 else buf[pos:end]
            text = segment.decode("latin-1")
            match = _PROMPT.match(text)
            if match is not None:
                del self._buf[: pos + len(segment)]
                if not all(line.isascii() and line.isprintable() for line in lines):
                    # The pump writes printable ASCII: a control byte is noise in its text.
                    return Garbage(buf[: pos + len(segment)], FrameFault.MALFORMED,
                                   "reply text is not printable ASCII")
                address = int(match.group(1)) if match.group(1) else 0
                return HarvardReply(address, HarvardPrompt(match.group(2)), tuple(lines))
            if end < 0:
                if len(buf) > MAX_REPLY_BYTES:
                    self._buf.clear()
                    return Garbage(buf, FrameFault.NO_END, "no prompt after a long reply")
                return None
            lines.append(text)
            pos = end + 2


@dataclass(frozen=True, slots=True)
class HarvardRequest:
    """A command as the pump understood it (full command name, or the unknown word)."""

    address: int
    command: str
    args: tuple[str, ...]
    known: bool


_REQUEST = re.compile(r"^\s*(?:(\d{1,2})\s*:)?\s*([A-Za-z]*)\s*(.*?)\s*$")


def parse_request(line: str) -> HarvardRequest:
    """Split one request line; a command may be cut to its first 4 letters."""
    match = _REQUEST.match(line)
    if match is None:
        return HarvardRequest(0, line, (), known=False)
    address = int(match.group(1)) if match.group(1) else 0
    word = match.group(2).lower()
    args = tuple(match.group(3).lower().split())
    if word in COMMANDS:
        return HarvardRequest(address, word, args, known=True)
    candidates = [c for c in COMMANDS if len(word) >= 4 and c.startswith(word)]
    if len(candidates) == 1:
        return HarvardRequest(address, candidates[0], args, known=True)
    return HarvardRequest(address, word, args, known=False)
