"""A stress battery for beat detection with known ground truth, drawn by the waveform model.

A cell is one synthetic record: a rhythm (HR, pulse pressure, pulse shape, ectopy), respiratory
swing and baseline wander, a sampling rate, and optionally one artefact of a class from
``docs/pressure.md``. :func:`score` compares a detector's beats with the truth:

- a true beat is *clean* if no artefact touches it and it is not within ``RECOVERY_S`` after one;
- a detected beat matches a true onset within ``min(0.1 s, 0.3 x the true period)``, one to one;
- Se is the share of clean true beats matched by a good beat, PPV the share of good beats
  (in clean time) that match a true beat; the MAP error of a good beat is measured against the
  mean of the trace over its true beat (onset to next onset);
- an *artefact beat* is a detected beat overlapping the artefact (by more than ``OVERLAP_S``);
  it should be refused. It is *harmful* if the artefact moved its MAP by more than 2 mmHg or
  its SBP or DBP by more than 5 mmHg (against the same record drawn without the artefact);
  a beat that merely touches a motion episode without a spike may be left good.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.sim.artefacts import ArtefactKind, ArtefactSchedule
from drivers.sim.waveform import Morphology, PulseShape, SimWaveformSource, TrueBeat
from vasopilot.core.clock import VirtualClock
from vasopilot.core.types import Beat

FloatArray = npt.NDArray[np.float64]

FS_HZ = (62.5, 100.0, 124.9, 125.0, 250.0, 500.0, 1000.0)
HR_BPM = (30.0, 60.0, 105.0, 150.0, 200.0)
PP_MMHG = (10.0, 40.0, 70.0, 100.0)
SHAPES = {
    "normal": PulseShape(0.12),
    "no-notch": PulseShape(0.0),
    "dicrotic-40": PulseShape(0.40),
    "sharp": PulseShape(0.20, Morphology.UNDERDAMPED),
    "blunt": PulseShape(0.0, Morphology.OVERDAMPED),
}
ECTOPY = (0.0, 0.1, 0.2)
# Beats of the detector's learning period (the threshold, then the rhythm from a few
# upstrokes) and the last, unclosed one are not scored.
LEARN_S = 4.0
LEARN_BEATS = 5
RECOVERY_S = 5.0
# Artefact durations in the battery (s): long enough to show, short enough to run.
ARTEFACT_S = {
    ArtefactKind.FLUSH: 2.5, ArtefactKind.SAMPLING: 35.0, ArtefactKind.ZEROING: 10.0,
    ArtefactKind.DAMPING: 30.0, ArtefactKind.KINK: 15.0, ArtefactKind.DISCONNECTION: 15.0,
    ArtefactKind.MOTION: 6.0, ArtefactKind.SENSOR_LOSS: 10.0, ArtefactKind.CALIBRATION: 15.0,
}
ARTEFACT_START_S = 20.0
# A beat is an artefact beat if the artefact covers more than its last 50 ms.
OVERLAP_S = 0.05


@dataclass(frozen=True, slots=True)
class Haemo:
    """Constant haemodynamics of one cell."""

    map_mmhg: float
    pulse_pressure_mmhg: float
    hr_bpm: float


@dataclass(frozen=True, slots=True)
class Cell:
    """One synthetic record of the battery."""

    fs_hz: float
    hr_bpm: float
    pp_mmhg: float
    shape: str
    ectopy: float
    map_mmhg: float = 80.0
    respiratory_mmhg: float = 4.0
    wander_mmhg: float = 3.0
    noise_sd_mmhg: float = 0.4
    artefact: ArtefactKind | None = None
    seconds: float = 40.0
    seed: int = 0

    @property
    def name(self) -> str:
        art = f" {self.artefact.value}" if self.artefact else ""
        return (f"{self.fs_hz:g}Hz hr{self.hr_bpm:g} pp{self.pp_mmhg:g} {self.shape} "
                f"ect{self.ectopy:g}{art}")


@dataclass(frozen=True, slots=True)
class Trace:
    cell: Cell
    samples: FloatArray
    truth: tuple[TrueBeat, ...]
    artefact_s: tuple[float, float] | None  # (start, end) of the injected artefact
    # The same record without the artefact (same seeds): what the artefact changed.
    clean: FloatArray | None = None


@dataclass
class CellScore:
    cell: Cell
    clean_true: int = 0
    clean_found: int = 0  # clean true beats matched by a good beat
    good: int = 0  # good beats in clean time
    good_true: int = 0  # ... that match a true beat
    map_ok: int = 0  # good matched beats within 2 mmHg of the true beat's mean
    artefact_beats: int = 0
    artefact_refused: int = 0
    harmful_beats: int = 0  # artefact beats whose MAP, SBP or DBP the artefact changed
    harmful_refused: int = 0
    artefact_passed_t_s: list[float] = field(default_factory=list)  # harmful ones
    missed_t_s: list[float] = field(default_factory=list)
    false_t_s: list[float] = field(default_factory=list)
    map_off_t_s: list[float] = field(default_factory=list)

    @property
    def se(self) -> float:
        return self.clean_found / self.clean_true if self.clean_true else math.nan

    @property
    def ppv(self) -> float:
        return self.good_true / self.good if self.good else math.nan

    @property
    def map_share(self) -> float:
        return self.map_ok / self.good_true if self.good_true else math.nan

    @property
    def refused(self) -> float:
        return self.artefact_refused / self.artefact_beats if self.artefact_beats else math.nan

    @property
    def harmful_refused_share(self) -> float:
        return self.harmful_refused / self.harmful_beats if self.harmful_beats else math.nan


def clean_cells(seconds: float = 40.0, seed: int = 0) -> Iterator[Cell]:
    """Every combination of rate, HR, pulse pressure, shape and ectopy (no artefact)."""
    for i, (fs, hr, pp, shape, ect) in enumerate(
            itertools.product(FS_HZ, HR_BPM, PP_MMHG, SHAPES, ECTOPY)):
        yield Cell(fs, hr, pp, shape, ect, map_for(pp), seconds=seconds, seed=seed + i)


def map_for(pp_mmhg: float) -> float:
    """A MAP that keeps the pulse physiological: wide pulses come with a higher mean (a
    100 mmHg pulse at MAP 80 would need a diastole under 15 mmHg after a pause)."""
    return 70.0 + 0.3 * pp_mmhg


def artefact_cells(seed: int = 0) -> Iterator[Cell]:
    """Every artefact class at every rate, on two patients."""
    patients = ((60.0, 40.0, "normal", 0.0), (105.0, 70.0, "sharp", 0.1))
    for i, (kind, fs, (hr, pp, shape, ect)) in enumerate(
            itertools.product(ArtefactKind, FS_HZ, patients)):
        seconds = ARTEFACT_START_S + ARTEFACT_S[kind] + 20.0
        yield Cell(fs, hr, pp, shape, ect, map_for(pp), artefact=kind, seconds=seconds,
                   seed=seed + i)


def render(cell: Cell) -> Trace:
    """Draw ``cell``'s record and, if it has an artefact, the same record without it."""
    samples, truth = _draw(cell, with_artefact=True)
    if cell.artefact is None:
        return Trace(cell, samples, truth, None)
    clean, _ = _draw(cell, with_artefact=False)
    start = ARTEFACT_START_S
    return Trace(cell, samples, truth, (start, start + ARTEFACT_S[cell.artefact]), clean)


def _draw(cell: Cell, *, with_artefact: bool) -> tuple[FloatArray, tuple[TrueBeat, ...]]:
    clock = VirtualClock()
    schedule = ArtefactSchedule(seed=cell.seed)
    if with_artefact and cell.artefact is not None:
        schedule.add(cell.artefact, ARTEFACT_START_S, ARTEFACT_S[cell.artefact])
    haemo = Haemo(cell.map_mmhg, cell.pp_mmhg, cell.hr_bpm)
    src = SimWaveformSource(
        lambda _t: haemo, cell.fs_hz, cell.seed, clock, artefacts=schedule,
        noise_sd_mmhg=cell.noise_sd_mmhg, respiratory_mmhg=cell.respiratory_mmhg,
        shape=SHAPES[cell.shape], ectopy_fraction=cell.ectopy, wander_mmhg=cell.wander_mmhg)
    clock.advance(cell.seconds)
    return np.asarray(src.read().samples_mmhg, dtype=np.float64), tuple(src.truth)


def _harmful(trace: Trace, b: Beat, end_s: float) -> bool:
    """Whether the artefact moved this beat's MAP by over 2 mmHg or its SBP or DBP by over 5."""
    assert trace.clean is not None
    fs = trace.cell.fs_hz
    i0, i1 = round(b.t_s * fs), max(round(end_s * fs), round(b.t_s * fs) + 1)
    seen, clean = trace.samples[i0:i1], trace.clean[i0:i1]
    if np.isnan(seen).any():
        return True
    return bool(abs(seen.mean() - clean.mean()) > 2.0 or abs(seen.max() - clean.max()) > 5.0
                or abs(seen.min() - clean.min()) > 5.0)


def score(trace: Trace, beats: list[Beat]) -> CellScore:
    """Score ``beats`` (onset times on the trace's time line, 0 = first sample) against the
    truth."""
    cell = trace.cell
    out = CellScore(cell)
    onsets = np.array([b.t_s for b in trace.truth])
    end_s = trace.samples.size / cell.fs_hz
    periods = np.diff(np.append(onsets, end_s))
    # The last beat has no successor to close it before the record ends.
    lo_s = max(LEARN_S, float(onsets[min(LEARN_BEATS, onsets.size - 1)]))
    hi_s = end_s - 2.0 * float(periods.max()) - 0.5
    span = trace.artefact_s

    def touches(a_s: float, b_s: float, margin_s: float) -> bool:
        return span is not None and a_s < span[1] + margin_s and b_s > span[0] + OVERLAP_S

    matched_true: dict[int, Beat] = {}
    for b in beats:
        b_end = b.t_s + (60.0 / b.hr_bpm if b.hr_bpm > 0 else 3.0)
        if span is not None and touches(b.t_s, b_end, 0.0):
            out.artefact_beats += 1
            out.artefact_refused += not b.is_good
            if _harmful(trace, b, b_end):
                out.harmful_beats += 1
                out.harmful_refused += not b.is_good
                if b.is_good:
                    out.artefact_passed_t_s.append(b.t_s)
            continue
        # A beat just outside the window may still be the match of a true beat inside it.
        if not (lo_s - 0.1 <= b.t_s < hi_s + 0.1) or touches(b.t_s, b_end, RECOVERY_S):
            continue
        k = int(np.searchsorted(onsets, b.t_s))
        best = None
        for i in (k - 1, k):
            near = 0 <= i < onsets.size and abs(onsets[i] - b.t_s) <= min(0.1, 0.3 * periods[i])
            if near and (best is None or abs(onsets[i] - b.t_s) < abs(onsets[best] - b.t_s)):
                best = i
        if not b.is_good:
            continue
        if best is None or best in matched_true:
            if lo_s <= b.t_s < hi_s:
                out.good += 1
                out.false_t_s.append(b.t_s)
            continue
        out.good += 1
        matched_true[best] = b
        out.good_true += 1
        i0 = round(onsets[best] * cell.fs_hz)
        i1 = round((onsets[best] + periods[best]) * cell.fs_hz)
        if abs(b.map_mmhg - float(np.mean(trace.samples[i0:i1]))) <= 2.0:
            out.map_ok += 1
        else:
            out.map_off_t_s.append(b.t_s)
    for i, t_s in enumerate(onsets):
        if not (lo_s <= t_s < hi_s) or touches(t_s, t_s + periods[i], RECOVERY_S):
            continue
        out.clean_true += 1
        if i in matched_true:
            out.clean_found += 1
        else:
            out.missed_t_s.append(float(t_s))
    return out
