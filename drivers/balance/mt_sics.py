"""MT-SICS (Mettler Toledo Standard Interface Command Set) codec: sans-I/O, fed bytes.

The manual's essentials (docs/bench-method.md): ASCII, commands upper case, parameters separated
by spaces, every command and reply ends in CR LF, one command at a time. A reply's first field
echoes the command, the second is a status letter:

* ``S`` (stable weight): ``S S <value> <unit>``, ``S I`` (busy, or no stable weight within the
  balance's timeout), ``S +`` (overload), ``S -`` (underload).
* ``SI`` (weight now, stable or not): ``S S <value> <unit>`` or ``S D <value> <unit>``.
* ``@`` (reset) and ``I4`` (serial number): ``I4 A "<serial>"``; ``I0`` (implemented commands):
  ``I0 B <level> "<command>"`` lines, the last one ``I0 A <level> "<command>"``.
* ``ES`` syntax error, ``ET`` transmission error, ``EL`` logical error; status ``L`` a wrong
  parameter; ``S S Error <code><t|b>`` a weighing-cell fault.

Dialects differ, so replies are read by whitespace and the echo field may be the command
itself (``SI S …``); ``S A …`` (some drivers' "done") counts as stable and Radwag's look-alike
``SI ? …`` as dynamic (its stable marker is a blank, so ``SI <value> <unit>`` is stable).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from drivers.pump.frames import BufferedDecoder
from vasopilot.core.errors import (
    BalanceBusyError,
    BalanceCommunicationError,
    BalanceLogicalError,
    BalanceRangeError,
    BalanceSyntaxError,
    BalanceTransmissionError,
    BalanceWeightError,
)

TERMINATOR = b"\r\n"
# The longest reply line the manual shows is well under this; more is a babbling line.
MAX_LINE_BYTES = 256
GRAMS_PER_UNIT = {"g": 1.0, "mg": 1e-3, "kg": 1e3, "ug": 1e-6}
_COMMAND = re.compile(r"^[@A-Z][A-Z0-9]*( [^\r\n]*)?$")
# A weight field as balances print it: fixed-point decimals. float() alone would also take
# "nan", "inf", "1e3" and "1_0", none of which a balance sends.
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
# Commands that answer only once the weight is stable (S, and its repeat form SR).
_STABLE_ONLY = frozenset({"S", "SR"})


class Stability(StrEnum):
    STABLE = "stable"
    DYNAMIC = "dynamic"


@dataclass(frozen=True)
class Weight:
    """One weight reply, in grams, with the balance's stability flag."""

    mass_g: float
    stability: Stability

    @property
    def stable(self) -> bool:
        return self.stability is Stability.STABLE


def encode(command: str) -> bytes:
    """The bytes of one command line. Commands are upper case ASCII (``SI``, ``@``, ``I4``)."""
    if not _COMMAND.match(command):
        raise ValueError(f"not an MT-SICS command: {command!r}")
    return command.encode("ascii") + TERMINATOR


class LineDecoder(BufferedDecoder):
    """Splits the byte stream into reply lines at CR LF (a lone LF ends a line too).

    ``pending`` holds a line begun but not finished; a line longer than ``MAX_LINE_BYTES``
    raises :class:`BalanceCommunicationError` and is dropped.
    """

    def feed(self, data: bytes) -> list[str]:
        self._buf.extend(data)
        lines: list[str] = []
        while (end := self._buf.find(b"\n")) >= 0:
            raw = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            lines.append(raw.decode("ascii", errors="replace"))
        if len(self._buf) > MAX_LINE_BYTES:
            self._buf.clear()
            raise BalanceCommunicationError(
                f"more than {MAX_LINE_BYTES} bytes without a line end from the balance")
        return lines


def raise_for_error(line: str, command: str) -> None:
    """Raise the typed error an ``ES``/``ET``/``EL`` line stands for."""
    head = line.split(maxsplit=1)[0] if line.strip() else ""
    if head == "ES":
        raise BalanceSyntaxError(f"balance: syntax error (ES): it does not know {command!r}")
    if head == "ET":
        raise BalanceTransmissionError(
            f"balance: transmission error (ET) on {command!r}: check baud, parity and cable")
    if head == "EL":
        raise BalanceLogicalError(f"balance: logical error (EL): {command!r} cannot run now")


def _echo_matches(echo: str, command: str) -> bool:
    # SI, SIR and SIU answer with "S"; some dialects echo the command itself.
    word = command.split(maxsplit=1)[0]
    return echo == word or (echo == "S" and word.startswith("S"))


def parse_weight(line: str, command: str = "SI") -> Weight:
    """A weight reply to ``command`` (``S`` or ``SI``); raises the typed error it reports."""
    raise_for_error(line, command)
    fields = line.split()
    if len(fields) < 2 or not _echo_matches(fields[0], command):
        raise BalanceCommunicationError(f"balance: {line!r} is not a reply to {command!r}")
    status, rest = fields[1], fields[2:]
    if _is_number(status):
        # Radwag's blank stability marker disappears when split on whitespace.
        status, rest = "S", fields[1:]
    if status == "I":
        raise BalanceBusyError(f"balance busy, no weight for {command!r} ({line!r})")
    if status == "+":
        raise BalanceRangeError(f"balance overloaded: the load is over its capacity ({line!r})")
    if status == "-":
        raise BalanceRangeError(f"balance underloaded: the pan is off or under zero ({line!r})")
    if status == "L":
        raise BalanceLogicalError(f"balance refused {command!r}: wrong parameter ({line!r})")
    if status not in ("S", "D", "A", "?"):
        raise BalanceCommunicationError(f"balance: unknown status {status!r} in {line!r}")
    if rest and rest[0] == "Error":
        code = rest[1] if len(rest) > 1 else "?"
        raise BalanceWeightError(f"balance weighing-cell error {code} ({line!r})")
    if len(rest) != 2 or not _is_number(rest[0]) or rest[1] not in GRAMS_PER_UNIT:
        raise BalanceCommunicationError(f"balance: no value and unit in {line!r}")
    stability = Stability.DYNAMIC if status in ("D", "?") else Stability.STABLE
    if stability is Stability.DYNAMIC and command.split(maxsplit=1)[0] in _STABLE_ONLY:
        raise BalanceCommunicationError(
            f"balance: a dynamic weight {line!r} cannot answer {command!r} (stable only)")
    return Weight(float(rest[0]) * GRAMS_PER_UNIT[rest[1]], stability)


def parse_text(line: str, command: str) -> str:
    """The quoted text of an ``A`` reply (``I4 A "B021002593"`` → ``B021002593``)."""
    raise_for_error(line, command)
    fields = line.split(maxsplit=2)
    if len(fields) < 2 or fields[0] != command.split(maxsplit=1)[0]:
        raise BalanceCommunicationError(f"balance: {line!r} is not a reply to {command!r}")
    if fields[1] == "I":
        raise BalanceBusyError(f"balance busy, cannot answer {command!r}")
    if fields[1] != "A" or len(fields) < 3:
        raise BalanceCommunicationError(f"balance: unexpected reply {line!r} to {command!r}")
    return fields[2].strip().strip('"')


def parse_identity(line: str) -> str:
    """The serial number in the reply to ``@`` or ``I4``: both answer ``I4 A "<serial>"``."""
    return parse_text(line, "I4")


@dataclass(frozen=True)
class CommandList:
    """The reply to ``I0``: every command the balance implements, with its MT-SICS level."""

    levels: dict[str, int]

    def __contains__(self, command: object) -> bool:
        return command in self.levels


class CommandListDecoder:
    """Collects the ``I0 B …`` lines up to the final ``I0 A …``; :attr:`done` then."""

    def __init__(self) -> None:
        self._levels: dict[str, int] = {}
        self.done = False

    def add(self, line: str) -> None:
        raise_for_error(line, "I0")
        fields = line.split(maxsplit=3)
        if len(fields) == 2 and fields[:2] == ["I0", "I"]:
            raise BalanceBusyError("balance busy, cannot list its commands (I0 I)")
        if len(fields) != 4 or fields[0] != "I0" or fields[1] not in ("A", "B") \
                or not fields[2].isdigit():
            raise BalanceCommunicationError(f"balance: {line!r} is not a line of the I0 list")
        self._levels[fields[3].strip('"')] = int(fields[2])
        self.done = fields[1] == "A"

    @property
    def result(self) -> CommandList:
        return CommandList(dict(self._levels))


def format_weight(mass_g: float, stability: Stability, decimals: int, *,
                  overload: bool = False, underload: bool = False, busy: bool = False) -> bytes:
    """The manual's reply line to ``S``/``SI`` (both answer with ``S``): the value
    right-aligned in a 10-character field. For the emulator; the driver never formats weights.
    """
    if busy:
        return b"S I" + TERMINATOR
    if overload:
        return b"S +" + TERMINATOR
    if underload:
        return b"S -" + TERMINATOR
    flag = "S" if stability is Stability.STABLE else "D"
    return f"S {flag} {mass_g:10.{decimals}f} g".encode("ascii") + TERMINATOR


def format_command_list(levels: Sequence[tuple[int, str]]) -> bytes:
    """The manual's multi-line reply to ``I0`` (for the emulator)."""
    lines = [f'I0 {"A" if i == len(levels) - 1 else "B"} {level} "{cmd}"'
             for i, (level, cmd) in enumerate(levels)]
    return b"".join(line.encode("ascii") + TERMINATOR for line in lines)


def _is_number(text: str) -> bool:
    return _NUMBER.match(text) is not None
