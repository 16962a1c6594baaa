"""The NE-1000 reply decoder under line noise (issue 11, case 5): on a safe-mode link a frame
counts only when its CRC really matches, so no corrupted frame is taken as a status.

Measured with ``tests/line_noise.py`` (seed 20261201, 300,000 replies, 1-2 random byte edits):
the decoder as it was (both framings at any time) took 1,216 corrupted frames as unchecked
basic frames, 1,181 of them with a changed meaning and 3 with a changed status; in safe framing
it takes none. What it still takes are 42 frames left whole beside a stray byte (their meaning
unchanged), and it would take a damaged frame whose CRC matches by chance: 69,265 damaged
frames reached the CRC check, so at most about one such match was to be expected, and none came.
"""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from line_noise import corrupt, holds_valid_packet, pump_reply, tally

from drivers.pump.new_era_codec import Framing, NewEraReply, ReplyDecoder

SEED = 20261201  # the day this was written; not tuned
FRAMES = 300_000
# A damaged frame passes a 16-bit check by chance about once in 65,536.
CRC_CHANCE = 2.0**-16


def _safe_decode(raw: bytes) -> list[object]:
    return list(ReplyDecoder(framing=Framing.SAFE).feed(raw))


def _chance_bound(frames: int) -> float:
    """Six standard deviations above the number of chance CRC matches in ``frames``."""
    mean = frames * CRC_CHANCE
    return mean + 6 * math.sqrt(mean)


def test_safe_mode_decoder_takes_no_corrupted_frame_in_300k() -> None:
    noise = tally(_safe_decode, FRAMES, SEED)
    assert noise.unchecked == 0
    # A changed meaning only where a real CRC matched by chance, and no more of those than
    # chance gives.
    assert noise.changed == noise.changed_genuine_crc
    assert noise.changed_genuine_crc <= _chance_bound(FRAMES)
    # What it took unchanged was the frame sent, whole, beside a stray byte.
    assert noise.unchanged == noise.unchanged_intact


def test_the_noise_tally_sees_unchecked_frames_where_both_framings_are_taken() -> None:
    """The same noise through a decoder that takes either framing (as every reply was
    decoded before) finds the weakness, so the zero above is not a blind count."""
    noise = tally(lambda raw: ReplyDecoder(framing=Framing.EITHER).feed(raw), 20_000, SEED)
    assert noise.unchecked > 0
    assert noise.changed > noise.changed_genuine_crc


@st.composite
def _noisy_stream(draw: st.DrawFn) -> bytes:
    rng = draw(st.randoms(use_true_random=False))
    frames = [pump_reply(rng).encode() for _ in range(draw(st.integers(1, 3)))]
    hit = draw(st.integers(0, len(frames) - 1))
    frames[hit] = corrupt(frames[hit], rng)
    return draw(st.binary(max_size=8)) + b"".join(frames)


@settings(max_examples=1000)
@given(_noisy_stream())
def test_every_reply_taken_on_a_safe_link_is_a_packet_whose_crc_really_matches(
    raw: bytes,
) -> None:
    for item in _safe_decode(raw):
        if isinstance(item, NewEraReply):
            assert item.safe
            assert holds_valid_packet(raw, item)


@settings(max_examples=1000)
@given(st.randoms(use_true_random=False), st.data())
def test_one_changed_byte_outside_len_is_never_taken(rng: random.Random, data: st.DataObject,
                                                     ) -> None:
    """CRC-16 catches every error burst of up to 16 bits, so one changed data or CRC byte is
    always caught; a changed STX or ETX leaves no frame. (A changed LEN moves the frame's end
    and is left to chance, like any frame the check cannot see.)"""
    frame = bytearray(pump_reply(rng).encode())
    position = data.draw(st.sampled_from([i for i in range(len(frame)) if i != 1]))
    frame[position] ^= data.draw(st.integers(1, 255))
    assert not any(isinstance(item, NewEraReply) for item in _safe_decode(bytes(frame)))
