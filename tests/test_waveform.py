"""Waveform-mode virtual patient: determinism, scaling and artefact ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from drivers.sim.artefacts import ArtefactKind, ArtefactSchedule
from drivers.sim.patient import VirtualPatient, draw_patient
from drivers.sim.waveform import (
    MIN_COUPLING_S,
    Morphology,
    PulseShape,
    SimWaveformSource,
    pulse,
)
from vasopilot.core.clock import VirtualClock
from vasopilot.core.interfaces import PressureSource


@dataclass(frozen=True)
class Haemo:
    map_mmhg: float = 65.0
    pulse_pressure_mmhg: float = 40.0
    hr_bpm: float = 90.0


def _trace(steps: list[float], seed: int = 1) -> np.ndarray:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, seed, clock)
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


def test_pulse_has_foot_peak_notch_and_dicrotic_wave() -> None:
    t = np.arange(0.0, 0.75, 0.001)
    g = pulse(t, 0.75, PulseShape(0.2), 0.2)
    assert g[0] == pytest.approx(0.0, abs=1e-9) and g.max() == pytest.approx(1.0, abs=0.01)
    notch = int(np.argmin(np.where((t > 0.25) & (t < 0.35), g, np.inf)))
    assert g[notch:].max() - g[notch] > 0.1  # the dicrotic wave rises again


def test_sharp_line_overshoots_and_blunt_line_has_no_notch() -> None:
    t = np.arange(0.0, 0.75, 0.001)
    sharp = pulse(t, 0.75, PulseShape(0.2, Morphology.UNDERDAMPED), 0.2)
    blunt = pulse(t, 0.75, PulseShape(0.0, Morphology.OVERDAMPED), 0.0)
    assert sharp.max() > 1.1
    assert np.all(np.diff(blunt[t > 0.2]) <= 1e-12)  # monotonic after the peak
    assert int(np.argmax(blunt)) > int(np.argmax(sharp))


@pytest.mark.parametrize("fs_hz", [50.0, 62.5, 124.9, 1000.0])
def test_any_rate_from_50_to_1000_hz_keeps_map_and_pulse_pressure(fs_hz: float) -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), fs_hz, 4, clock, respiratory_mmhg=0.0)
    clock.advance(60.0)
    x = np.array(src.read().samples_mmhg)
    assert x.size == math.floor(60.0 * fs_hz + 1e-9) + 1
    assert abs(x.mean() - 65.0) < 0.7
    assert 36.0 < np.percentile(x, 99.5) - np.percentile(x, 0.5) < 46.0


def test_ectopic_beats_come_early_then_pause_and_are_in_the_truth() -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 7, clock, ectopy_fraction=0.2)
    clock.advance(120.0)
    src.read()
    onsets = np.array(src.onsets_s)
    ectopic = np.array([b.ectopic for b in src.truth])
    period_s = 60.0 / Haemo().hr_bpm
    assert 0.08 < ectopic.mean() < 0.25
    for i in np.flatnonzero(ectopic)[:-1]:
        coupling = onsets[i] - onsets[i - 1]
        assert MIN_COUPLING_S - 0.01 <= coupling <= 0.8 * period_s
        # full compensatory pause: the next sinus beat is two periods after the last one
        assert onsets[i + 1] - onsets[i - 1] == pytest.approx(2 * period_s, rel=0.1)


def test_no_ectopy_where_the_heart_is_too_fast_for_an_early_beat() -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(hr_bpm=180.0), 125.0, 7, clock,
                            ectopy_fraction=0.3)
    clock.advance(30.0)
    src.read()
    assert not any(b.ectopic for b in src.truth)


def _schedule(kind: ArtefactKind, start_t_s: float, duration_s: float) -> ArtefactSchedule:
    schedule = ArtefactSchedule(seed=2)
    schedule.add(kind, start_t_s, duration_s)
    return schedule


def test_artefact_ground_truth_and_flush_level() -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 1, clock,
                            artefacts=_schedule(ArtefactKind.FLUSH, 5.0, 2.0))
    assert src.artefact_active(5.5) == "flush" and src.artefact_active(7.5) is None
    clock.advance(10.0)
    x = np.array(src.read().samples_mmhg)
    assert abs(np.median(x[round(5.2 * 125) : round(6.2 * 125)]) - 300.0) < 3.0


def test_damped_line_shifts_the_mean_by_the_schedules_own_shift() -> None:
    schedule = _schedule(ArtefactKind.DAMPING, 5.0, 20.0)
    shift_mmhg = schedule.items[0].shift_mmhg
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 250.0, 4, clock, artefacts=schedule,
                            respiratory_mmhg=0.0)
    clock.advance(30.0)
    x = np.array(src.read().samples_mmhg)
    assert shift_mmhg != 0.0
    assert abs(np.mean(x[250 * 8 : 250 * 22]) - (65.0 + shift_mmhg)) < 0.5


def test_sensor_loss_leaves_the_samples_missing() -> None:
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 1, clock,
                            artefacts=_schedule(ArtefactKind.SENSOR_LOSS, 4.0, 3.0))
    clock.advance(10.0)
    x = np.array(src.read().samples_mmhg)
    missing = np.flatnonzero(np.isnan(x))
    assert missing[0] == 4 * 125 and missing[-1] == 7 * 125 - 1 and missing.size == 3 * 125


def test_renders_artefacts_added_to_the_schedule_after_it_was_built() -> None:
    schedule = ArtefactSchedule()
    clock = VirtualClock()
    src = SimWaveformSource(lambda _t: Haemo(), 125.0, 1, clock, artefacts=schedule)
    clock.advance(2.0)
    src.read()
    schedule.add(ArtefactKind.ZEROING, 6.0, 2.0)
    clock.advance(8.0)
    x = np.array(src.read().samples_mmhg)
    assert np.all(np.abs(x[round(4.1 * 125) : round(5.9 * 125)]) < 2.0)


def test_waveform_and_beat_mode_share_the_patients_ground_truth() -> None:
    patient = VirtualPatient(draw_patient(5), "resuscitate", seed=5)
    patient.random_artefacts(20.0, seed=6, until_t_s=3600.0)
    src = SimWaveformSource(patient.haemodynamics, 125.0, 5, VirtualClock(),
                            artefacts=patient.artefacts)
    times_s = np.arange(0.0, 3600.0, 0.5)
    assert any(patient.artefact_active(t) for t in times_s)
    assert all(src.artefact_active(t) == patient.artefact_active(t) for t in times_s)


@pytest.mark.parametrize("fs_hz", [49.0, 1001.0])
def test_refuses_rates_outside_50_to_1000_hz(fs_hz: float) -> None:
    with pytest.raises(ValueError, match="50 to 1000 Hz"):
        SimWaveformSource(lambda _t: Haemo(), fs_hz, 0, VirtualClock())
