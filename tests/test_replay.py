"""WFDB replay as a pressure source, in virtual time."""

from __future__ import annotations

import numpy as np
import pytest
from record_fixtures import records_dir

from drivers.pressure.beats import BeatDetector, DetectedBeatSource
from drivers.pressure.replay import WfdbReplaySource, load_channel
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import SensorError
from vasopilot.core.interfaces import BeatSource, PressureSource

ABP = records_dir()
RECORD = ABP / "wfdb-python_mimicdb_041s" / "041s"


def test_replays_samples_as_they_fall_due_on_the_clock() -> None:
    clock = VirtualClock(start_s=100.0)
    src = WfdbReplaySource(RECORD, clock)
    assert isinstance(src, PressureSource) and src.fs_hz == 125.0
    first = src.read()
    assert first.t0_s == 100.0 and len(first.samples_mmhg) == 1
    clock.advance(1.0)
    second = src.read()
    assert second.t0_s == pytest.approx(100.0 + 1 / 125.0)
    assert len(second.samples_mmhg) == 125
    assert src.read().samples_mmhg == ()


def test_replay_concatenates_to_the_whole_record_and_then_finishes() -> None:
    clock = VirtualClock()
    src = WfdbReplaySource(RECORD, clock)
    out: list[float] = []
    while not src.finished:
        clock.advance(0.37)
        out += src.read().samples_mmhg
    assert np.array_equal(np.array(out), load_channel(RECORD).samples)
    clock.advance(5.0)
    assert src.read().samples_mmhg == ()


def test_replay_through_detector_gives_the_offline_beats() -> None:
    clock = VirtualClock()
    channel = load_channel(RECORD)
    source = DetectedBeatSource(WfdbReplaySource(channel, clock), BeatDetector(125.0))
    assert isinstance(source, BeatSource)
    live = []
    for _ in range(200):
        clock.advance(0.1)
        live += source.read_beats()
    assert live == BeatDetector(125.0).feed(0.0, channel.samples)


def test_detector_refuses_a_source_at_another_rate() -> None:
    with pytest.raises(ValueError, match="Hz"):
        DetectedBeatSource(WfdbReplaySource(RECORD, VirtualClock()), BeatDetector(250.0))


def test_unknown_channel_and_closed_source_are_sensor_errors() -> None:
    with pytest.raises(SensorError, match="no channel"):
        load_channel(RECORD, "ICP")
    src = WfdbReplaySource(RECORD, VirtualClock())
    src.close()
    with pytest.raises(SensorError):
        src.read()
