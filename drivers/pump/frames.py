"""What the serial pump codecs share about bytes that are not a reply.

A decoder turns everything that fails its mode's checks into :class:`Garbage` with a
:class:`FrameFault`; a driver that meets garbage where it wanted a reply raises
:class:`FrameError`, a :class:`PumpCommunicationError` that keeps the fault as an enum so nobody
has to read it back out of the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vasopilot.core.errors import PumpCommunicationError


class FrameFault(StrEnum):
    """Why bytes from the pump were not taken as a reply."""

    OUTSIDE_FRAME = "bytes outside a frame"
    NO_END = "a frame without its end within the longest reply"
    CUT_SHORT = "a frame cut short by the start of another"
    BAD_LENGTH = "a safe-mode LEN below its overhead"
    BAD_CRC = "a safe-mode packet with a bad CRC"
    UNCHECKED_FRAME = "a basic frame, without CRC, on a link in safe mode"
    NOT_BASIC = "a frame that is not a basic-mode frame on a link in basic mode"
    MALFORMED = "a frame whose content is not a reply"
    UNEXPECTED_TEXT = "a reply carrying text its command does not produce"
    WRONG_MODE = "a reply framed in another mode than the one selected"
    OTHER_ADDRESS = "a reply from another address"
    HALF_FRAME = "half a frame, then silence"
    BABBLE = "too many bytes without a reply"


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that were not part of any frame, or a frame that failed its checks."""

    raw: bytes
    fault: FrameFault
    detail: str = ""


class FrameError(PumpCommunicationError):
    """The pump's bytes failed the checks of the link's mode: a link error, never a status."""

    def __init__(self, fault: FrameFault, message: str) -> None:
        self.fault = fault
        super().__init__(f"{message}: {fault.value}")


class BufferedDecoder:
    """The byte buffer of a host-side reply decoder, as ``SerialLink.items`` expects it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of a frame begun but not finished (a half frame, if nothing more comes)."""
        return bytes(self._buf)

    def clear(self) -> None:
        self._buf.clear()
