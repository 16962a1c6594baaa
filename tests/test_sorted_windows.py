"""The supervisor's running windows equal the computation they replace: ``statistics.median``
of the window, and the vitals' and S7's medians and the rhythm score recomputed from the beats
at every look (random beat sequences, artefacts, gaps, bad rates and NaN included)."""

from __future__ import annotations

import itertools
import math
import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from safety.map_watch import MEDIAN_MIN_BEATS, MEDIAN_WINDOW_S, MapWatch
from safety.vitals import (
    MEDIAN_S,
    NEIGHBOUR_TOLERANCE,
    RHYTHM_MIN_PAIRS,
    RHYTHM_WINDOW_S,
    RhythmWindow,
    VitalsLimits,
    VitalsWatch,
)
from safety.windows import SortedWindow
from vasopilot.core.types import GOOD, Beat, BeatQuality


def same(a: float | None, b: float | None) -> bool:
    """Equal to the bit: NaN is NaN, -0.0 is not 0.0."""
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def naive_irregularity(beats: list[Beat]) -> float | None:
    """The rhythm score as it was computed before the running windows: from the whole minute."""
    changes: list[float] = []
    intervals = [60.0 / b.hr_bpm for b in beats if b.hr_bpm > 0]
    if len(intervals) != len(beats):
        return None
    for (prev, prev_rr), (beat, rr) in itertools.pairwise(zip(beats, intervals, strict=True)):
        if abs(beat.t_s - prev.t_s - prev_rr) <= NEIGHBOUR_TOLERANCE * prev_rr:
            changes.append(abs(rr - prev_rr))
    if len(changes) < RHYTHM_MIN_PAIRS:
        return None
    return statistics.median(changes) / statistics.median(intervals)


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([
    0.0, -0.0, 1.0, 1, 2.5, 2.5, math.nan]))


@given(st.lists(st.one_of(values, st.none()), max_size=200))
def test_a_sorted_window_has_the_median_of_its_values(ops: list[float | None]) -> None:
    """``None``: the oldest value leaves; a number: it comes in."""
    window, plain = SortedWindow(), list[float]()
    for op in ops:
        if op is None:
            if plain:
                assert same(window.popleft(), plain.pop(0))
        else:
            window.append(op)
            plain.append(op)
        assert len(window) == len(plain)
        if plain:
            assert same(window.median(), statistics.median(plain))


@st.composite
def beat_streams(draw: st.DrawFn) -> list[tuple[Beat, float]]:
    """Beats with irregular spacing (a few out of order), a share of them untrusted, heart rates
    sometimes zero, negative or NaN, pressures sometimes repeated; each with a look's time.
    Drawn from a seeded stream: hypothesis picks the seed, the length and the rhythm."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(0, 300))
    base_hr = draw(st.floats(30.0, 180.0))
    irregular, gaps, bad_rate = (draw(st.sampled_from([0.0, 0.02, 0.3])) for _ in range(3))
    t_s = 0.0
    out: list[tuple[Beat, float]] = []
    for _ in range(n):
        rr = 60.0 / base_hr * (1.0 + 0.05 * rng.uniform(-1.0, 1.0))
        if rng.random() < irregular:
            rr *= rng.choice([0.6, 1.4, 2.0, 0.0, -0.3])
        t_s += rr + (rng.choice([0.01, 5.0, 20.0]) if rng.random() < gaps else 0.0)
        hr = rng.choice([base_hr, 0.0, -5.0, math.nan]) if rng.random() < bad_rate \
            else 60.0 / rr if rr > 0 else 0.0
        pressure = rng.choice([90.0, 90.0, 75.5, 120.25, -0.0, 0.0, 88.0 + rng.random()])
        quality = GOOD if rng.random() < 0.85 else BeatQuality.FLUSH
        look_s = t_s + rng.choice([0.0, 1.0, 9.99, 10.0, 30.0])
        out.append((Beat(t_s=t_s, sbp_mmhg=pressure + 30.0, dbp_mmhg=pressure - 15.0,
                         map_mmhg=pressure, hr_bpm=hr, quality=quality), look_s))
    return out


@settings(max_examples=60, deadline=None)
@given(beat_streams())
def test_the_vitals_windows_equal_the_medians_over_the_beats(stream: list[tuple[Beat, float]],
                                                              ) -> None:
    limits = VitalsLimits()
    watch = VitalsWatch(limits)
    kept: list[Beat] = []  # the good beats of the last minute, as the watch takes them
    for beat, look_s in stream:
        watch.on_beat(beat)
        if beat.is_good and (not kept or beat.t_s > kept[-1].t_s):
            kept = [b for b in [*kept, beat] if b.t_s >= beat.t_s - RHYTHM_WINDOW_S]
        fresh = bool(kept) and look_s - kept[-1].t_s < limits.stale_after_s
        recent = [b for b in kept if b.t_s >= kept[-1].t_s - MEDIAN_S] if fresh else []
        for got, field in ((watch.heart_rate_bpm(look_s), "hr_bpm"),
                           (watch.sbp_mmhg(look_s), "sbp_mmhg"),
                           (watch.map_mmhg(look_s), "map_mmhg")):
            want = statistics.median(getattr(b, field) for b in recent) if recent else None
            assert same(got, want)
        watch.assess(look_s)


@settings(max_examples=60, deadline=None)
@given(beat_streams())
def test_the_running_rhythm_score_equals_the_score_of_the_minute(
        stream: list[tuple[Beat, float]]) -> None:
    window = RhythmWindow()
    for beat, _ in stream:
        if window.beats and beat.t_s <= window.beats[-1].t_s:
            continue
        window.append(beat)
        while window.beats[0].t_s < beat.t_s - RHYTHM_WINDOW_S:
            window.popleft()
        assert same(window.irregularity(), naive_irregularity(list(window.beats)))


def test_a_regular_minute_is_scored_by_both_alike() -> None:
    """Not only ``None`` against ``None``: a full minute of neighbouring beats has a score."""
    window = RhythmWindow()
    beats = [Beat(t_s=0.8 * i + 0.01 * (i % 3), sbp_mmhg=120.0, dbp_mmhg=75.0, map_mmhg=90.0,
                  hr_bpm=60.0 / (0.8 + 0.01 * ((i + 1) % 3 - i % 3))) for i in range(200)]
    for beat in beats:
        window.append(beat)
        while window.beats[0].t_s < beat.t_s - RHYTHM_WINDOW_S:
            window.popleft()
    score = window.irregularity()
    assert score is not None and score > 0
    assert same(score, naive_irregularity(list(window.beats)))


@settings(max_examples=60, deadline=None)
@given(beat_streams())
def test_the_s7_median_equals_the_median_of_the_minute(stream: list[tuple[Beat, float]]) -> None:
    watch = MapWatch(10.0, 60.0)
    kept: list[Beat] = []
    for beat, look_s in stream:
        newest = watch.last_good
        watch.on_beat(beat)
        if beat.is_good and (newest is None or beat.t_s >= newest.t_s):
            kept = [b for b in [*kept, beat] if b.t_s >= beat.t_s - MEDIAN_WINDOW_S]
        kept = [b for b in kept if b.t_s >= look_s - MEDIAN_WINDOW_S]
        trusted = watch.last_good is not None and look_s - watch.last_good.t_s < 10.0
        want = (statistics.median(b.map_mmhg for b in kept)
                if trusted and len(kept) >= MEDIAN_MIN_BEATS else None)
        assert same(watch.median_map_mmhg(look_s), want)
