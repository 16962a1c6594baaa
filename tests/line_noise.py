"""Line noise for the NE-1000 reply-decoder fuzz: the safe-mode replies a pump really sends, each
hit by one or two random byte edits (a byte changed, a byte inserted inside the frame, a byte
lost), fed alone to a fresh decoder, and what the decoder accepted counted by kind."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from protocol_script import safe

from drivers.pump.new_era_codec import NewEraAlarm, NewEraError, NewEraReply, NewEraStatus

_MOTION = [s for s in NewEraStatus if s is not NewEraStatus.ALARM]


def _number(rng: random.Random) -> str:
    """A number as the pump writes it: 4 digits, always a point."""
    digits = f"{rng.randrange(10000):04d}"
    point = rng.randrange(1, 5)
    return digits[:point].lstrip("0").rjust(1, "0") + "." + digits[point:]


def pump_reply(rng: random.Random) -> NewEraReply:
    """One reply of the kinds the driver reads in safe mode (status, RAT, DIS, DIA, errors,
    alarms), at a random address."""
    address = rng.randrange(100)
    kind = rng.randrange(6)
    status = rng.choice(_MOTION)
    if kind == 0:
        return NewEraReply(address, status, safe=True)
    if kind == 1:
        unit = rng.choice(("UM", "MM", "UH", "MH"))
        return NewEraReply(address, status, _number(rng) + unit, safe=True)
    if kind == 2:
        unit = rng.choice(("UL", "ML"))
        return NewEraReply(address, status, f"I{_number(rng)}W{_number(rng)}{unit}", safe=True)
    if kind == 3:
        return NewEraReply(address, status, _number(rng), safe=True)
    if kind == 4:
        return NewEraReply(address, status, error=rng.choice(list(NewEraError)), safe=True)
    return NewEraReply(address, NewEraStatus.ALARM, alarm=rng.choice(list(NewEraAlarm)),
                       safe=True)


def corrupt(frame: bytes, rng: random.Random) -> bytes:
    """``frame`` with 1 or 2 edits; an insertion lands inside the frame (between STX and ETX
    inclusive), so the frame is never left whole beside a stray byte. Never ``frame`` itself."""
    while True:
        out = bytearray(frame)
        for _ in range(rng.randrange(1, 3)):
            edit = rng.randrange(3)
            if edit == 0:
                i = rng.randrange(len(out))
                out[i] = (out[i] + rng.randrange(1, 256)) & 0xFF
            elif edit == 1:
                out.insert(rng.randrange(1, len(out)), rng.randrange(256))
            else:
                del out[rng.randrange(len(out))]
        if out != frame:
            return bytes(out)


def holds_valid_packet(raw: bytes, reply: NewEraReply) -> bool:
    """``raw`` contains ``reply`` as a safe-mode packet whose CRC really matches its data,
    the CRC computed with ``binascii`` as the manual states it, not with the codec."""
    body = replace(reply, safe=False).encode()[1:-1]  # the basic frame's body is the data
    return safe(body) in raw


@dataclass
class NoiseTally:
    """What a decoder made of ``frames`` corrupted frames."""

    frames: int = 0
    accepted: int = 0  # corrupted frames that yielded at least one reply
    unchecked: int = 0  # ...as a basic frame, with no CRC at all
    changed: int = 0  # replies with any change of meaning (address, status, data, error, alarm)
    changed_status: int = 0  # ...with a status (or alarm) other than the one sent
    changed_genuine_crc: int = 0  # ...whose packet, CRC included, really is in the bytes
    unchanged: int = 0  # replies meaning what was sent
    unchanged_intact: int = 0  # ...because the frame sent is whole in the bytes, beside noise


def _meaning(reply: NewEraReply) -> tuple[object, ...]:
    return reply.address, reply.status, reply.data, reply.alarm, reply.error


def tally(decode: Callable[[bytes], Iterable[object]], frames: int, seed: int) -> NoiseTally:
    """Corrupt ``frames`` replies (seeded) and count what ``decode`` (fresh decoder per frame)
    accepted from them."""
    rng = random.Random(seed)
    out = NoiseTally(frames=frames)
    for _ in range(frames):
        sent = pump_reply(rng)
        raw = corrupt(sent.encode(), rng)
        replies = [r for r in decode(raw) if isinstance(r, NewEraReply)]
        if not replies:
            continue
        out.accepted += 1
        for reply in replies:
            out.unchecked += not reply.safe
            if _meaning(reply) == _meaning(sent):
                out.unchanged += 1
                out.unchanged_intact += sent.encode() in raw
                continue
            out.changed += 1
            out.changed_status += (reply.status, reply.alarm) != (sent.status, sent.alarm)
            out.changed_genuine_crc += reply.safe and holds_valid_packet(raw, reply)
    return out
