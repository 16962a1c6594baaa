"""Waveform mode of the virtual patient: an arterial pressure trace with injected artefacts.

Each beat is a template (upstroke, systolic peak, dicrotic notch, diastolic decay) scaled so
that its mean over the beat is the patient's MAP and its height the pulse pressure. Artefacts
come from an :class:`~drivers.sim.artefacts.ArtefactSchedule`, the same object the beat-mode
patient reads, and look as ``reference/patient.md`` describes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
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


class Haemodynamics(Protocol):
    """What the waveform needs from a patient model at one instant."""

    @property
    def map_mmhg(self) -> float: ...

    @property
    def pulse_pressure_mmhg(self) -> float: ...

    @property
    def hr_bpm(self) -> float: ...


def beat_template(t_s: FloatArray, period_s: float) -> FloatArray:
    """Normalised pulse shape at ``t_s`` seconds after onset: 0 at the foot, 1 at the peak."""
    squeeze = min(1.0, period_s / 0.6)
    t_peak, t_notch = 0.09 * squeeze, 0.30 * squeeze
    notch = 0.55
    tau = 0.35
    rise = 0.5 * (1.0 - np.cos(np.pi * np.clip(t_s / t_peak, 0.0, 1.0)))
    fall = notch + (1.0 - notch) * 0.5 * (
        1.0 + np.cos(np.pi * np.clip((t_s - t_peak) / (t_notch - t_peak), 0.0, 1.0))
    )
    tail = max(period_s - t_notch, 1e-3)
    e_end = math.exp(-tail / tau)
    decay = notch * (np.exp(-(t_s - t_notch) / tau) - e_end) / (1.0 - e_end)
    wave = 0.12 * np.exp(-(((t_s - t_notch - 0.05 * squeeze) / (0.025 * squeeze)) ** 2))
    return np.where(t_s < t_peak, rise, np.where(t_s < t_notch, fall, decay + wave))


class SimWaveformSource:
    """A :class:`~vasopilot.core.interfaces.PressureSource` drawing the patient's pressure.

    ``haemo(t_s)`` gives the patient's state at a time on ``clock``'s line; ``fs_hz`` is 125 or
    250; ``artefacts`` is the schedule to render (pass the patient's own, so both modes share
    one ground truth; artefacts added to it later are rendered too). Samples due up to the
    clock's present are generated on ``read``; the same seed gives the same trace however it is
    read.
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
    ) -> None:
        if fs_hz not in (125.0, 250.0):
            raise ValueError(f"waveform mode samples at 125 or 250 Hz, not {fs_hz}")
        self._haemo = haemo
        self._fs = float(fs_hz)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._t0_s = clock.now_s()
        self._artefacts = ArtefactSchedule() if artefacts is None else artefacts
        self._noise_sd = noise_sd_mmhg
        self._resp = respiratory_mmhg
        self._next = 0  # index of the next sample to hand out
        self._pending: FloatArray = np.empty(0)
        self._pending_from = 0
        self._beat_t_s = self._t0_s
        self._flat_level: dict[Artefact, float] = {}
        # Ground truth of recent onsets (s), for checking a detector; bounded like a ring.
        self.onsets_s: deque[float] = deque(maxlen=4096)

    @property
    def fs_hz(self) -> float:
        return self._fs

    def artefact_active(self, t_s: float) -> str | None:
        """Ground truth: the kind of artefact injected at ``t_s``, or None."""
        artefact = self._artefacts.at(t_s)
        return None if artefact is None else artefact.kind.value

    def read(self) -> PressureChunk:
        due = math.floor((self._clock.now_s() - self._t0_s) * self._fs + 1e-9) + 1
        while self._pending_from + self._pending.size < due:
            self._pending = np.concatenate([self._pending, self._next_beat()])
        first = self._next
        take = max(0, due - first)
        chunk = self._pending[first - self._pending_from : first - self._pending_from + take]
        self._next = first + take
        drop = self._next - self._pending_from
        self._pending = self._pending[drop:]
        self._pending_from = self._next
        return PressureChunk(self._t0_s + first / self._fs, self._fs, tuple(chunk.tolist()))

    def close(self) -> None:
        self._pending = np.empty(0)

    def _next_beat(self) -> FloatArray:
        onset = self._beat_t_s
        h = self._haemo(onset)
        period_s = 60.0 / h.hr_bpm * (1.0 + 0.02 * float(self._rng.standard_normal()))
        i0 = round((onset - self._t0_s) * self._fs)
        i1 = round((onset + period_s - self._t0_s) * self._fs)
        self._beat_t_s = self._t0_s + i1 / self._fs
        self.onsets_s.append(self._t0_s + i0 / self._fs)
        t = self._t0_s + np.arange(i0, i1) / self._fs
        shape = beat_template(t - t[0], (i1 - i0) / self._fs)
        # Scale so the beat's own sample mean is the MAP: the area method then reads it exactly.
        mean_mmhg = h.map_mmhg + self._resp * math.sin(2 * math.pi * 0.25 * (onset - self._t0_s))
        pp = h.pulse_pressure_mmhg
        clean = mean_mmhg + pp * (shape - shape.mean())
        noisy = clean + self._noise_sd * self._rng.standard_normal(t.size)
        return self._inject(t, self._t0_s + i1 / self._fs, noisy, mean_mmhg)

    def _inject(self, t: FloatArray, end_t_s: float, x: FloatArray,
                mean_mmhg: float) -> FloatArray:
        for a in self._artefacts.during(float(t[0]), end_t_s):
            m = (t >= a.start_t_s) & (t < a.end_t_s)
            if not m.any():
                continue
            tt = t[m] - a.start_t_s
            noise = self._rng.standard_normal(int(m.sum()))
            if a.kind is ArtefactKind.FLUSH:
                plateau = tt < a.duration_s - _RINGING_S
                ring = 60.0 * np.exp(-(tt - a.duration_s + _RINGING_S) / 0.12) * np.cos(
                    2 * np.pi * 12.0 * (tt - a.duration_s + _RINGING_S)
                )
                x[m] = np.where(plateau, FLUSH_MMHG + 2.0 * noise, x[m] + ring)
            elif a.kind is ArtefactKind.SAMPLING:
                level = self._flat_level.setdefault(
                    a, FLUSH_MMHG if self._rng.random() < 0.5 else mean_mmhg
                )
                x[m] = level + 0.5 * noise
            elif a.kind is ArtefactKind.ZEROING:
                x[m] = 0.3 * noise
            elif a.kind is ArtefactKind.DAMPING:
                x[m] = mean_mmhg + a.shift_mmhg + 0.2 * (x[m] - mean_mmhg)
            elif a.kind is ArtefactKind.KINK:
                if self._flat_level.setdefault(a, float(self._rng.random() < 0.5)):
                    x[m] = mean_mmhg + 0.5 * noise
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
        return x

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
