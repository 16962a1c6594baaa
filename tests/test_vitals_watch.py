"""Heart rate, rhythm and SBP from the trusted beats: synthetic rhythms, the waveform through
the beat detector, and the real records (issue 19)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.pressure.beats import BeatDetector
from drivers.pressure.replay import load_channel
from drivers.sim.waveform import SimWaveformSource
from safety.vitals import RHYTHM_REARM_S, VitalsLimits, VitalsWatch
from vasopilot.core.clock import VirtualClock
from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Beat

ABP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "abp"

Interval = Callable[[int, float], float]


def sinus(hr_bpm: float, jitter: float = 0.03, seed: int = 1) -> Interval:
    rng = random.Random(seed)
    return lambda _n, _t: 60.0 / hr_bpm * (1.0 + jitter * rng.gauss(0.0, 1.0))


def fibrillation(mean_hr_bpm: float = 100.0, seed: int = 2) -> Interval:
    """Atrial fibrillation: intervals drawn independently over ±40 % of the mean."""
    rng = random.Random(seed)
    return lambda _n, _t: 60.0 / mean_hr_bpm * rng.uniform(0.6, 1.4)


def ectopics(hr_bpm: float, every: int = 8) -> Interval:
    """Sinus rhythm with a premature beat every ``every`` beats and its compensatory pause."""
    base = sinus(hr_bpm, 0.02)

    def interval(n: int, t: float) -> float:
        rr = base(n, t)
        return rr * (0.6 if n % every == 0 else 1.4 if n % every == 1 else 1.0)
    return interval


def beats(interval: Interval, seconds: float, *, start_s: float = 0.0, sbp_mmhg: float = 115.0,
          quality: str = "good") -> list[Beat]:
    out, t, n = [], start_s, 0
    while t < start_s + seconds:
        rr = interval(n, t)
        out.append(Beat(t_s=t, sbp_mmhg=sbp_mmhg, dbp_mmhg=sbp_mmhg - 45.0,
                        map_mmhg=sbp_mmhg - 30.0, hr_bpm=60.0 / rr, quality=quality))
        t, n = t + rr, n + 1
    return out


def raised(stream: Iterable[Beat], limits: VitalsLimits | None = None,
           until_s: float | None = None) -> dict[AlarmCode, float]:
    """When each alarm was first raised (s), feeding ``stream`` and assessing on every beat."""
    watch = VitalsWatch(limits or VitalsLimits())
    first: dict[AlarmCode, float] = {}
    last_s = 0.0
    for beat in stream:
        watch.on_beat(beat)
        last_s = beat.t_s
        for order in watch.assess(beat.t_s):
            if order.priority is not None:
                first.setdefault(order.code, beat.t_s)
    if until_s is not None:
        for order in watch.assess(until_s):
            if order.priority is not None:
                first.setdefault(order.code, last_s)
    return first


def test_sustained_tachycardia_raises_after_60_s() -> None:
    first = raised(beats(sinus(140.0), 120.0))
    assert set(first) == {AlarmCode.TACHYCARDIA}
    assert 60.0 <= first[AlarmCode.TACHYCARDIA] <= 72.0


def test_tachycardia_shorter_than_the_sustain_time_stays_quiet() -> None:
    stream = beats(sinus(140.0), 50.0) + beats(sinus(100.0), 120.0, start_s=50.0)
    assert raised(stream) == {}


def test_heart_rate_hovering_at_the_limit_does_not_chatter() -> None:
    stream: list[Beat] = []
    for k in range(30):  # 20 s at 133, 20 s at 127, for 20 minutes
        stream += beats(sinus(133.0 if k % 2 == 0 else 127.0, 0.01, seed=k), 20.0,
                        start_s=20.0 * k)
    assert raised(stream) == {}


def test_a_run_of_ectopic_beats_is_not_tachycardia() -> None:
    assert AlarmCode.TACHYCARDIA not in raised(beats(ectopics(110.0, every=3), 300.0))


def test_tachycardia_clears_only_past_the_hysteresis() -> None:
    watch = VitalsWatch(VitalsLimits())
    for beat in beats(sinus(140.0), 90.0):
        watch.on_beat(beat)
        watch.assess(beat.t_s)
    assert watch.tachycardia

    def after(hr_bpm: float, start_s: float) -> bool:
        for beat in beats(sinus(hr_bpm, 0.005), 60.0, start_s=start_s):
            watch.on_beat(beat)
            watch.assess(beat.t_s)
        return watch.tachycardia
    assert after(128.0, 90.0), "under the limit but within 5 bpm of it: still raised"
    assert not after(115.0, 150.0)


def test_a_gap_in_trusted_beats_restarts_the_sustain_clock() -> None:
    stream = beats(sinus(140.0), 40.0) + beats(sinus(140.0), 40.0, quality="flush",
                                               start_s=40.0)
    stream += beats(sinus(140.0), 45.0, start_s=80.0)
    assert raised(stream) == {}, "40 s, a 40 s artefact, then 45 s: never 60 s in a row"
    assert AlarmCode.TACHYCARDIA in raised(stream + beats(sinus(140.0), 30.0, start_s=125.0))


def test_untrusted_beats_raise_nothing() -> None:
    assert raised(beats(sinus(180.0), 300.0, sbp_mmhg=60.0, quality="motion")) == {}


def test_sustained_bradycardia_raises() -> None:
    first = raised(beats(sinus(35.0), 150.0))
    assert set(first) == {AlarmCode.BRADYCARDIA}
    assert first[AlarmCode.BRADYCARDIA] >= 60.0


def test_a_slow_but_normal_rate_stays_quiet() -> None:
    assert raised(beats(sinus(46.0), 600.0)) == {}


def test_atrial_fibrillation_raises_the_rhythm_advisory() -> None:
    first = raised(beats(fibrillation(), 180.0))
    assert set(first) == {AlarmCode.RHYTHM_IRREGULAR}
    assert first[AlarmCode.RHYTHM_IRREGULAR] >= 60.0


@pytest.mark.parametrize("jitter", [0.0, 0.02, 0.04])
def test_sinus_rhythm_with_its_variability_is_regular(jitter: float) -> None:
    assert raised(beats(sinus(80.0, jitter), 1800.0)) == {}


def test_occasional_ectopic_beats_are_not_an_irregular_rhythm() -> None:
    assert raised(beats(ectopics(80.0, every=8), 1800.0)) == {}


def test_the_rhythm_advisory_is_not_raised_again_soon_after_it_cleared() -> None:
    watch = VitalsWatch(VitalsLimits())
    transitions: list[tuple[float, bool]] = []

    def feed(stream: list[Beat]) -> None:
        for beat in stream:
            watch.on_beat(beat)
            for order in watch.assess(beat.t_s):
                if order.code is AlarmCode.RHYTHM_IRREGULAR:
                    active = order.priority is not None
                    if not transitions or transitions[-1][1] != active:
                        transitions.append((beat.t_s, active))
    t = 0.0
    for k in range(6):  # 3 min of fibrillation, 3 min of sinus rhythm, three times
        feed(beats(fibrillation(seed=k), 180.0, start_s=t))
        feed(beats(sinus(90.0, seed=k), 180.0, start_s=t + 180.0))
        t += 360.0
    raises = [t_s for t_s, active in transitions if active]
    assert len(raises) >= 2
    assert all(b - a >= RHYTHM_REARM_S for a, b in itertools.pairwise(raises))
    assert len(raises) < 6


def test_sbp_under_90_for_60_s_raises() -> None:
    first = raised(beats(sinus(80.0), 120.0, sbp_mmhg=85.0))
    assert set(first) == {AlarmCode.SBP_LOW}
    assert first[AlarmCode.SBP_LOW] >= 60.0


def test_sbp_above_90_stays_quiet() -> None:
    assert raised(beats(sinus(80.0), 600.0, sbp_mmhg=96.0)) == {}


def test_a_usual_sbp_raises_the_threshold_to_usual_minus_40() -> None:
    limits = VitalsLimits(sbp_alarm_mmhg=150.0 - 40.0)
    assert set(raised(beats(sinus(80.0), 120.0, sbp_mmhg=105.0), limits)) == {AlarmCode.SBP_LOW}
    assert raised(beats(sinus(80.0), 600.0, sbp_mmhg=115.0), limits) == {}


# -- the waveform through the beat detector ----------------------------------------------------


@dataclass(frozen=True)
class Haemo:
    hr_bpm: float
    map_mmhg: float = 75.0
    pulse_pressure_mmhg: float = 45.0


def detected(haemo: Callable[[float], Haemo], seconds: float, seed: int = 3) -> list[Beat]:
    clock = VirtualClock()
    src = SimWaveformSource(haemo, 125.0, seed, clock)
    clock.advance(seconds)
    return BeatDetector(125.0).feed(0.0, src.read().samples_mmhg)


def test_detected_bradycardia_from_the_waveform() -> None:
    """(The detector calls the twin's template above ~135/min noise, so tachycardia through
    the detector is tested on a real pulse below.)"""
    assert set(raised(detected(lambda _t: Haemo(36.0), 240.0))) == {AlarmCode.BRADYCARDIA}
    assert raised(detected(lambda _t: Haemo(85.0), 600.0)) == {}


def test_detected_fibrillation_from_the_waveform() -> None:
    """75/min, intervals ±30 %: the detector flags about half these beats (motion), the rest
    are enough."""
    rng = random.Random(4)
    stream = detected(lambda _t: Haemo(60.0 / (0.8 * rng.uniform(0.7, 1.3))), 300.0)
    assert set(raised(stream)) == {AlarmCode.RHYTHM_IRREGULAR}


# -- real records ------------------------------------------------------------------------------


def _record(name: str, warp: float = 1.0) -> list[Beat]:
    """The record's beats; ``warp`` plays it faster (>1) or slower (<1) than it was taken."""
    if not ABP.is_dir():
        pytest.fail(f"REAL ABP RECORDS MISSING: {ABP}")
    channel = load_channel(ABP / name)
    return BeatDetector(channel.fs_hz * warp).feed(0.0, channel.samples)


SHOCKED = "wfdb-python_mimicdb_03700181/03700181"  # about 50/30 mmHg at 123/min
CLEAN = "wfdb-python_mimic3wdb_s00001/3975656_0015"  # about 139/60 at 60/min


def test_the_shocked_record_is_hypotensive_but_not_tachycardic() -> None:
    """123/min is close under the 130 limit for ten minutes; SBP ~45 is true hypotension."""
    assert set(raised(_record(SHOCKED))) == {AlarmCode.SBP_LOW}


def test_the_clean_record_raises_nothing() -> None:
    assert raised(_record(CLEAN)) == {}


def test_a_real_pulse_played_faster_is_tachycardia_and_slower_bradycardia() -> None:
    assert AlarmCode.TACHYCARDIA in raised(_record(SHOCKED, warp=1.3))  # ~160/min
    assert set(raised(_record(CLEAN, warp=0.45))) == {AlarmCode.BRADYCARDIA}  # ~30/min
