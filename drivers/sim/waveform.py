"""Waveform mode of the virtual patient: an arterial pressure trace with injected artefacts.

The trace is a train of ventricular ejections over an arterial run-off (a two-element
Windkessel view): every beat adds one pulse (upstroke, systolic peak, dicrotic notch and wave,
then an exponential run-off), and the pulses overlap. The diastolic pressure is what earlier
beats leave, so a premature beat starts high and small, a compensatory pause lets the pressure
fall lower and the beat after it rises higher, as on a monitor. Pulses are scaled so that a
steady rhythm has the patient's MAP as its mean and its pulse pressure as its height.
Artefacts come from an :class:`~drivers.sim.artefacts.ArtefactSchedule`, the same object the
beat-mode patient reads, and look as ``docs/virtual-patient.md`` and ``docs/pressure.md``
describe.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.sim.artefacts import (
    CALIBRATION_HIGH_MMHG,
    CALIBRATION_LOW_MMHG,
    FLUSH_MMHG,
    Artefact,
    ArtefactKind,
    ArtefactSchedule,
)
from vasopilot.core.clock import Clock
from vasopilot.core.types import PressureChunk

FloatArray = npt.NDArray[np.float64]

_RINGING_S = 0.6
MIN_FS_HZ = 50.0
MAX_FS_HZ = 1000.0
# Diastolic run-off time constant (resistance x compliance), s.
_RUNOFF_TAU_S = 1.5
# A pulse is drawn until its run-off has decayed below 1e-3 of its height.
_TAIL_S = 7.0 * _RUNOFF_TAU_S
_RESPIRATION_HZ = 0.25
# The earliest a premature beat can follow the one before it (the ventricle's refractory time).
MIN_COUPLING_S = 0.4


class Morphology(StrEnum):
    """How the catheter-transducer system shows the pulse."""

    NORMAL = "normal"
    UNDERDAMPED = "underdamped"  # sharp: steep upstroke, overshoot and ringing
    OVERDAMPED = "overdamped"  # blunt: slow upstroke, rounded peak, no notch


@dataclass(frozen=True, slots=True)
class PulseShape:
    """``dicrotic_fraction`` is the dicrotic wave's rise after the notch, as a fraction of the
    pulse pressure (0-0.4); an overdamped line shows none whatever the artery does."""

    dicrotic_fraction: float = 0.12
    morphology: Morphology = Morphology.NORMAL


@dataclass(frozen=True, slots=True)
class TrueBeat:
    """Ground truth of one simulated beat: its onset (s) and whether it came early."""

    t_s: float
    ectopic: bool = False


def pulse(t_s: FloatArray, period_s: float, shape: PulseShape, dicrotic: float) -> FloatArray:
    """One ejection's pressure at ``t_s`` seconds after onset, 0 before it, peak about 1.

    ``period_s`` (the rhythm's, not this beat's) sets how much systole is squeezed at fast
    rates; ``dicrotic`` is the wave's height in units of the pulse (see :func:`_steady`).
    """
    squeeze = min(1.0, period_s / 0.6)
    t_notch = 0.30 * squeeze
    if shape.morphology is Morphology.OVERDAMPED:
        t_up, notch, dicrotic = 0.16 * squeeze, 0.75, 0.0
    elif shape.morphology is Morphology.UNDERDAMPED:
        t_up, notch = 0.06 * squeeze, 0.5
    else:
        t_up, notch = 0.09 * squeeze, 0.55
    notch -= 0.5 * dicrotic
    t = np.maximum(t_s, 0.0)
    rise = 0.5 * (1.0 - np.cos(np.pi * np.clip(t / t_up, 0.0, 1.0)))
    fall = notch + (1.0 - notch) * 0.5 * (
        1.0 + np.cos(np.pi * np.clip((t - t_up) / (t_notch - t_up), 0.0, 1.0))
    )
    runoff = notch * np.exp(-np.maximum(t - t_notch, 0.0) / _RUNOFF_TAU_S)
    wave = dicrotic * np.exp(-(((t - t_notch - 0.06 * squeeze) / (0.04 * squeeze)) ** 2))
    out = np.where(t < t_up, rise, np.where(t < t_notch, fall, runoff)) + wave * (t > t_up)
    if shape.morphology is Morphology.UNDERDAMPED:
        after = np.maximum(t - t_up, 0.0)
        out = out + 0.25 * np.exp(-after / 0.05) * np.sin(2 * np.pi * 11.0 * after)
    return np.where(t_s < 0.0, 0.0, out)


@dataclass(frozen=True, slots=True)
class _Steady:
    """A steady rhythm of pulses: height and mean per unit pulse, dicrotic wave's height."""

    height: float
    mean: float
    dicrotic: float


@functools.lru_cache(maxsize=512)
def _steady(period_ms: int, shape: PulseShape) -> _Steady:
    """Measure a steady train of unit pulses numerically (cached per millisecond of period)."""
    period_s = period_ms / 1000.0
    t = np.arange(round(period_s / 0.001)) * 0.001
    back = np.arange(math.ceil(_TAIL_S / period_s) + 1)[:, None] * period_s

    def train(dicrotic: float) -> FloatArray:
        return np.asarray(pulse(t[None, :] + back, period_s, shape, dicrotic).sum(axis=0))

    bare = train(0.0)
    # The wave is sized on the bare pulse pressure: its rise over the notch is then about
    # that fraction of what a monitor shows.
    dicrotic = shape.dicrotic_fraction * float(bare.max() - bare.min())
    full = train(dicrotic)
    return _Steady(float(full.max() - full.min()), float(full.mean()), dicrotic)


class Haemodynamics(Protocol):
    """What the waveform needs from a patient model at one instant."""

    @property
    def map_mmhg(self) -> float: ...

    @property
    def pulse_pressure_mmhg(self) -> float: ...

    @property
    def hr_bpm(self) -> float: ...


class SimWaveformSource:
    """A :class:`~vasopilot.core.interfaces.PressureSource` drawing the patient's pressure.

    ``haemo(t_s)`` gives the patient's state at a time on ``clock``'s line; ``fs_hz`` is any
    rate from 50 to 1000 Hz (non-integer ones too); ``artefacts`` is the schedule to render
    (pass the patient's own, so both modes share one ground truth; artefacts added to it later
    are rendered too). ``ectopy_fraction`` of beats come early (at 55-75 % of the period, never
    sooner than :data:`MIN_COUPLING_S`) with a smaller pulse, followed by a full compensatory
    pause and a stronger beat; ``respiratory_mmhg`` swings the mean (and the pulse pressure by
    the same share of MAP) at 15 breaths/min; ``wander_mmhg`` adds slow baseline drift.
    Samples due up to the clock's present are generated on ``read``; the same seed gives the
    same trace however it is read. ``truth`` holds the recent onsets (:class:`TrueBeat`).
    """

    def __init__(
        self,
        haemo: Callable[[float], Haemodynamics],
        fs_hz: float,
        seed: int,
        clock: Clock,
        *,
        artefacts: ArtefactSchedule | None = None,
        noise_sd_mmhg: float = 0.4,
        respiratory_mmhg: float = 3.0,
        shape: PulseShape | None = None,
        ectopy_fraction: float = 0.0,
        wander_mmhg: float = 0.0,
    ) -> None:
        if not MIN_FS_HZ <= fs_hz <= MAX_FS_HZ:
            raise ValueError(f"waveform mode samples at 50 to 1000 Hz, not {fs_hz}")
        if not 0.0 <= ectopy_fraction <= 0.5:
            raise ValueError(f"ectopy fraction must be 0 to 0.5, got {ectopy_fraction}")
        self._haemo = haemo
        self._fs = float(fs_hz)
        self._seed = seed
        # Rhythm, noise and artefacts draw from their own streams, so the trace does not
        # depend on how it is read.
        self._rng = np.random.default_rng(seed)
        self._noise_rng = np.random.default_rng((seed, 1))
        self._art_rng = np.random.default_rng((seed, 2))
        self._clock = clock
        self._t0_s = clock.now_s()
        self._artefacts = ArtefactSchedule() if artefacts is None else artefacts
        self._noise_sd = noise_sd_mmhg
        self._resp = respiratory_mmhg
        self._shape = shape or PulseShape()
        self._ectopy = ectopy_fraction
        self._wander = wander_mmhg
        phases = self._rng.uniform(0.0, 2 * np.pi, 3)
        self._wander_terms = tuple(zip((0.011, 0.023, 0.047), phases, strict=True))
        self._next = 0  # index of the next sample to hand out
        self._done = 0  # samples before this index have every pulse that reaches them
        self._acc: FloatArray = np.empty(0)  # pulses summed from index self._next on
        self._beat_i = 0  # index of the next onset
        self._sinus_i: int | None = None  # where the sinus beat after a premature one falls
        self._strength = 1.0  # of the next pulse
        self._levels: deque[tuple[int, float, float]] = deque()  # (end, floor, MAP) per beat
        self._flat_level: dict[Artefact, float] = {}
        self.truth: deque[TrueBeat] = deque(maxlen=4096)

    @property
    def fs_hz(self) -> float:
        return self._fs

    @property
    def onsets_s(self) -> list[float]:
        """Ground truth: the recent onsets (s)."""
        return [b.t_s for b in self.truth]

    def artefact_active(self, t_s: float) -> str | None:
        """Ground truth: the kind of artefact injected at ``t_s``, or None."""
        artefact = self._artefacts.at(t_s)
        return None if artefact is None else artefact.kind.value

    def read(self) -> PressureChunk:
        due = math.floor((self._clock.now_s() - self._t0_s) * self._fs + 1e-9) + 1
        while self._done < due:
            self._add_beat()
        first = self._next
        take = max(0, due - first)
        pulses = self._acc[:take]
        self._acc = self._acc[take:]
        self._next = first + take
        return PressureChunk(self._t_s(first), self._fs,
                             tuple(self._finish(first, pulses).tolist()))

    def close(self) -> None:
        self._acc = np.empty(0)

    def _t_s(self, index: int) -> float:
        return self._t0_s + index / self._fs

    def _add_beat(self) -> None:
        """Add the pulse of the beat at ``self._beat_i`` and schedule the next onset."""
        i0 = self._beat_i
        onset = self._t_s(i0)
        h = self._haemo(onset)
        period_s = 60.0 / h.hr_bpm
        jitter = 1.0 + 0.02 * float(self._rng.standard_normal())
        coupling = float(self._rng.uniform(0.55, 0.75))
        strength, self._strength = self._strength, 1.0
        ectopic = self._sinus_i is not None
        if self._sinus_i is not None:
            i1, self._sinus_i = self._sinus_i, None
            # The sinus beat after the pause is stronger (post-extrasystolic potentiation).
            self._strength = 1.15
        elif self._rng.random() < self._ectopy and coupling * period_s >= MIN_COUPLING_S:
            # The earlier it comes, the less the ventricle has filled.
            i1 = i0 + round(coupling * period_s * self._fs)
            self._sinus_i = i0 + round(2.0 * period_s * jitter * self._fs)
            self._strength = 0.4 + 0.4 * (coupling - 0.55) / 0.2
        else:
            i1 = i0 + round(period_s * jitter * self._fs)
        self.truth.append(TrueBeat(onset, ectopic))
        steady = _steady(max(200, round(1000.0 * period_s)), self._shape)
        unit_mmhg = h.pulse_pressure_mmhg / steady.height
        swing = self._resp / max(h.map_mmhg, 1.0) * math.sin(
            2 * math.pi * _RESPIRATION_HZ * (onset - self._t0_s))
        n = round(_TAIL_S * self._fs)
        t = np.arange(n) / self._fs
        wave = unit_mmhg * strength * (1.0 + swing) * pulse(
            t, period_s, self._shape, steady.dicrotic)
        if i0 == 0:
            # The trace starts in a running rhythm: earlier beats' run-off is already there.
            for k in range(1, math.ceil(_TAIL_S / period_s) + 1):
                wave += unit_mmhg * pulse(t + k * period_s, period_s, self._shape,
                                          steady.dicrotic)
        start = i0 - self._next
        if self._acc.size < start + n:
            self._acc = np.concatenate([self._acc, np.zeros(start + n - self._acc.size)])
        self._acc[start : start + n] += wave
        # The pulses ride on a floor chosen so that a steady rhythm's mean is the MAP.
        self._levels.append((i1, h.map_mmhg - unit_mmhg * steady.mean, h.map_mmhg))
        self._done = self._beat_i = i1

    def _finish(self, first: int, pulses: FloatArray) -> FloatArray:
        """Add floor, respiration, wander, noise and artefacts to the pulses from ``first``."""
        floor = np.empty(pulses.size)
        map_mmhg = np.empty(pulses.size)
        k = 0
        while k < pulses.size:
            end, floor_mmhg, level_mmhg = self._levels[0]
            stop = min(pulses.size, end - first)
            floor[k:stop] = floor_mmhg
            map_mmhg[k:stop] = level_mmhg
            k = max(k, stop)
            if first + k >= end:
                self._levels.popleft()
        rel_s = (first + np.arange(pulses.size)) / self._fs
        x = floor + pulses + self._resp * np.sin(2 * np.pi * _RESPIRATION_HZ * rel_s)
        for freq_hz, phase in self._wander_terms:
            x += self._wander / math.sqrt(3.0) * np.sin(2 * np.pi * freq_hz * rel_s + phase)
        x += self._noise_sd * self._noise_rng.standard_normal(x.size)
        if x.size:
            self._inject(self._t0_s + rel_s, self._t_s(first + x.size), x, map_mmhg)
        return x

    def _inject(self, t: FloatArray, end_t_s: float, x: FloatArray,
                map_mmhg: FloatArray) -> None:
        for a in self._artefacts.during(float(t[0]), end_t_s):
            m = (t >= a.start_t_s) & (t < a.end_t_s)
            if not m.any():
                continue
            tt = t[m] - a.start_t_s
            noise = self._art_rng.standard_normal(int(m.sum()))
            level = map_mmhg[m]
            if a.kind is ArtefactKind.FLUSH:
                plateau = tt < a.duration_s - _RINGING_S
                ring = 60.0 * np.exp(-(tt - a.duration_s + _RINGING_S) / 0.12) * np.cos(
                    2 * np.pi * 12.0 * (tt - a.duration_s + _RINGING_S)
                )
                x[m] = np.where(plateau, FLUSH_MMHG + 2.0 * noise, x[m] + ring)
            elif a.kind is ArtefactKind.SAMPLING:
                flat = self._flat_level.setdefault(
                    a, FLUSH_MMHG if self._art_rng.random() < 0.5 else float(level[0])
                )
                x[m] = flat + 0.5 * noise
            elif a.kind is ArtefactKind.ZEROING:
                x[m] = 0.3 * noise
            elif a.kind is ArtefactKind.DAMPING:
                x[m] = level + a.shift_mmhg + 0.2 * (x[m] - level)
            elif a.kind is ArtefactKind.KINK:
                if self._flat_level.setdefault(a, float(self._art_rng.random() < 0.5)):
                    x[m] = level + 0.5 * noise
                else:
                    x[m] = 0.5 * x[m]
            elif a.kind is ArtefactKind.DISCONNECTION:
                x[m] = 2.0 + 3.0 * noise
            elif a.kind is ArtefactKind.MOTION:
                x[m] = x[m] + self._motion(tt, a)
            elif a.kind is ArtefactKind.SENSOR_LOSS:
                x[m] = np.nan
            else:
                # the calibration signal is a 12.5 Hz square wave
                x[m] = np.where((tt * 12.5) % 1.0 < 0.5, CALIBRATION_HIGH_MMHG,
                                CALIBRATION_LOW_MMHG)

    def _motion(self, tt: FloatArray, a: Artefact) -> FloatArray:
        """Spikes of 30-80 mmHg lasting 20-80 ms over a baseline jump of up to 20 mmHg."""
        rng = np.random.default_rng((self._seed, round(a.start_t_s * 1000.0)))
        out = np.full(tt.size, float(rng.uniform(-20.0, 20.0)))
        for centre in rng.uniform(0.0, a.duration_s, max(2, round(3 * a.duration_s))):
            width = rng.uniform(0.02, 0.08)
            out += rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 80.0) * (
                np.abs(tt - centre) < width / 2
            )
        return out
