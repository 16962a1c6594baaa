"""Beat detector on the waveform-mode virtual patient: artefact classes and streaming rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.pressure.beats import BeatDetector, DetectedBeatSource
from drivers.sim.artefacts import Artefact, ArtefactSchedule
from drivers.sim.waveform import SimWaveformSource
from vasopilot.core.clock import VirtualClock
from vasopilot.core.types import Beat


@dataclass(frozen=True)
class Haemo:
    map_mmhg: float = 72.0
    pulse_pressure_mmhg: float = 45.0
    hr_bpm: float = 80.0


# The reason each artefact must show; edges of a stretch may carry a neighbouring reason.
SIGNATURE = {
    "flush": {"flush", "saturation"},
    "sampling": {"flat", "flush"},
    "zeroing": {"zeroing"},
    "damping": {"damping"},
    "kink": {"flat", "inconsistent", "noise"},
    "disconnection": {"disconnection"},
    "motion": {"motion"},
    "calibration": {"calibration"},
    "sensor_loss": {"missing"},
}
DURATION_S = {"flush": 2.5, "sampling": 40.0, "zeroing": 10.0, "damping": 40.0, "kink": 15.0,
              "disconnection": 20.0, "motion": 3.0, "calibration": 15.0, "sensor_loss": 20.0}


def _run(fs_hz: float, artefacts: ArtefactSchedule | None, seconds: float, seed: int = 3,
         respiratory_mmhg: float = 3.0) -> tuple[SimWaveformSource, list[Beat]]:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), fs_hz, seed, clock, artefacts=artefacts,
                            respiratory_mmhg=respiratory_mmhg)
    beats_src = DetectedBeatSource(src, BeatDetector(fs_hz))
    beats: list[Beat] = []
    for _ in range(round(seconds / 0.2)):
        clock.advance(0.2)
        beats += beats_src.read_beats()
    return src, beats


def _overlapping(beats: list[Beat], a: Artefact) -> list[Beat]:
    out = []
    for b in beats:
        end = b.t_s + (60.0 / b.hr_bpm if b.hr_bpm > 0 else 3.0)
        if b.t_s < a.end_t_s and end > a.start_t_s:
            out.append(b)
    return out


@pytest.mark.parametrize("fs_hz", [125.0, 250.0])
@pytest.mark.parametrize("kind", sorted(SIGNATURE))
def test_every_injected_artefact_is_flagged_with_its_signature(fs_hz: float, kind: str) -> None:
    schedule = ArtefactSchedule(seed=3)
    art = schedule.add(kind, 40.0, DURATION_S[kind])
    _, beats = _run(fs_hz, schedule, 40.0 + DURATION_S[kind] + 20.0)
    hit = _overlapping(beats, art)
    flagged = [b for b in hit if not b.is_good]
    assert hit
    assert {b.quality for b in flagged} & SIGNATURE[kind]
    # Motion may leave a beat between spikes untouched; everything else spoils every beat.
    share = 0.8 if kind == "motion" else 1.0
    assert len(flagged) >= share * len(hit)
    before = [b for b in beats if 10.0 < b.t_s < 38.0]
    assert all(b.is_good for b in before)


@pytest.mark.parametrize("fs_hz", [125.0, 250.0])
def test_map_of_clean_beats_is_the_template_mean(fs_hz: float) -> None:
    _, beats = _run(fs_hz, None, 120.0, respiratory_mmhg=0.0)
    good = [b for b in beats if b.is_good]
    assert len(good) >= 0.97 * len(beats) and len(beats) > 140
    err = np.abs(np.array([b.map_mmhg - Haemo().map_mmhg for b in good]))
    assert np.mean(err <= 2.0) >= 0.95
    hr = np.array([b.hr_bpm for b in good])
    assert abs(float(np.median(hr)) - 80.0) < 2.0


def test_onsets_match_the_simulated_beats() -> None:
    src, beats = _run(125.0, None, 60.0)
    truth = np.array(src.onsets_s)
    onsets = np.array([b.t_s for b in beats])
    assert onsets.size >= truth[(truth > 2.0) & (truth < 58.0)].size - 1
    assert all(np.min(np.abs(truth - t)) < 0.06 for t in onsets)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40))
def test_chunking_does_not_change_beats(cuts: list[int]) -> None:
    rng = np.random.default_rng(5)
    t = np.arange(125 * 40) / 125.0
    x = 70.0 + 20.0 * np.sin(2 * np.pi * 1.3 * t) ** 9 + rng.normal(0.0, 0.5, t.size)
    x[1500:1530] = np.nan
    reference = BeatDetector(125.0).feed(0.0, x)
    detector = BeatDetector(125.0)
    chunked: list[Beat] = []
    i = 0
    for n in cuts * 50:
        if i >= x.size:
            break
        piece = x[i : i + n]
        chunked += detector.feed(i / 125.0, piece)
        i += piece.size
    chunked += detector.feed(i / 125.0, x[i:])
    assert chunked == reference


def test_sample_by_sample_feeding_gives_the_same_beats() -> None:
    src_clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 9, src_clock)
    src_clock.advance(30.0)
    x = np.array(src.read().samples_mmhg)
    whole = BeatDetector(125.0).feed(0.0, x)
    det = BeatDetector(125.0)
    single = [b for i, v in enumerate(x) for b in det.feed(i / 125.0, [float(v)])]
    assert single == whole and len(whole) > 30


def test_a_gap_between_chunks_counts_as_missing() -> None:
    t = np.arange(125 * 20) / 125.0
    x = 70.0 + 20.0 * np.sin(2 * np.pi * 1.2 * t) ** 8
    det = BeatDetector(125.0)
    beats = det.feed(0.0, x[:1000]) + det.feed(1010 / 125.0, x[1010:])
    assert "missing" in {b.quality for b in beats}
    with pytest.raises(ValueError, match="overlaps"):
        det.feed(1.0, x[:10])


def test_memory_stays_bounded_over_an_hour() -> None:
    det = BeatDetector(125.0)
    t = np.arange(125 * 10) / 125.0
    x = 70.0 + 20.0 * np.sin(2 * np.pi * 1.2 * t) ** 8
    for k in range(360):
        det.feed(k * 10.0, x)
    assert det._raw.size < 125 * 20  # the buffer is what is bounded
