"""Waveform-mode virtual patient: determinism, scaling and artefact ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from drivers.sim.waveform import Artefact, SimWaveformSource, beat_template, draw_artefacts
from vasopilot.core.clock import VirtualClock
from vasopilot.core.interfaces import PressureSource


@dataclass(frozen=True)
class Haemo:
    map_mmhg: float = 65.0
    pulse_pressure_mmhg: float = 40.0
    hr_bpm: float = 90.0


def _trace(steps: list[float], seed: int = 1, artefacts: tuple[Artefact, ...] = ()) -> np.ndarray:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, seed, clock, artefacts=artefacts)
    out: list[float] = []
    for dt in steps:
        clock.advance(dt)
        out += src.read().samples_mmhg
    return np.array(out)


def test_satisfies_pressure_source() -> None:
    assert isinstance(SimWaveformSource(lambda _t: Haemo(), 250.0, 0, VirtualClock()),
                      PressureSource)


def test_same_seed_same_trace_however_it_is_read() -> None:
    a = _trace([10.0])
    b = _trace([0.013] * 200 + [10.0 - 0.013 * 200])
    assert np.array_equal(a, b) and a.size == 1251


def test_other_seed_other_noise() -> None:
    assert not np.array_equal(_trace([5.0], seed=1), _trace([5.0], seed=2))


def test_trace_mean_is_map_and_height_is_pulse_pressure() -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 250.0, 4, clock, respiratory_mmhg=0.0)
    clock.advance(60.0)
    x = np.array(src.read().samples_mmhg)
    assert abs(x.mean() - 65.0) < 0.5
    assert 35.0 < np.percentile(x, 99.5) - np.percentile(x, 0.5) < 46.0


def test_template_has_foot_peak_and_notch() -> None:
    t = np.arange(0.0, 0.75, 0.004)
    g = beat_template(t, 0.75)
    assert g[0] == pytest.approx(0.0, abs=1e-9) and g.max() == pytest.approx(1.0, abs=0.01)
    after_notch = g[(t > 0.3) & (t < 0.4)]
    assert after_notch.max() > g[np.argmin(np.abs(t - 0.3))]  # the dicrotic wave rises again


def test_artefact_ground_truth_and_flush_level() -> None:
    flush = Artefact(kind="flush", start_s=5.0, duration_s=2.0)
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 1, clock, artefacts=[flush])
    assert src.artefact_active(5.5) == "flush" and src.artefact_active(7.5) is None
    clock.advance(10.0)
    x = np.array(src.read().samples_mmhg)
    assert abs(np.median(x[round(5.2 * 125) : round(6.2 * 125)]) - 300.0) < 3.0


def test_drawn_artefacts_are_reproducible_and_at_the_given_rate() -> None:
    a = draw_artefacts(7, 100 * 3600.0, {"motion": 3.0})
    assert a == draw_artefacts(7, 100 * 3600.0, {"motion": 3.0})
    assert 240 < len(a) < 360 and all(x.kind == "motion" for x in a)


def test_refuses_other_rates() -> None:
    with pytest.raises(ValueError, match="125 or 250"):
        SimWaveformSource(lambda _t: Haemo(), 100.0, 0, VirtualClock())
