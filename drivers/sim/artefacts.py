"""Arterial-line artefacts as a seeded schedule: the ground truth of when a line lied.

Kinds and typical durations follow docs/virtual-patient.md ("Waveform mode") and, for the monitor's
calibration signal, docs/pressure.md. Beat mode (:class:`~drivers.sim.patient.
VirtualPatient`) and waveform mode (:class:`~drivers.sim.waveform.SimWaveformSource`) render the
same schedule object, so the metric "dose increases while an artefact was present" has one
answer whichever renders the pressure.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class ArtefactKind(StrEnum):
    FLUSH = "flush"
    SAMPLING = "sampling"
    ZEROING = "zeroing"
    DAMPING = "damping"
    KINK = "kink"
    DISCONNECTION = "disconnection"
    MOTION = "motion"
    SENSOR_LOSS = "sensor_loss"
    CALIBRATION = "calibration"


# Durations in seconds (low, high) and relative frequency of each kind in random schedules;
# blood sampling and flushes dominate on a real arterial line.
_DURATION_S: dict[ArtefactKind, tuple[float, float]] = {
    ArtefactKind.FLUSH: (1.0, 3.0),
    ArtefactKind.SAMPLING: (30.0, 90.0),
    ArtefactKind.ZEROING: (5.0, 20.0),
    ArtefactKind.DAMPING: (60.0, 600.0),
    ArtefactKind.KINK: (10.0, 120.0),
    ArtefactKind.DISCONNECTION: (5.0, 60.0),
    ArtefactKind.MOTION: (2.0, 10.0),
    ArtefactKind.SENSOR_LOSS: (10.0, 120.0),
    ArtefactKind.CALIBRATION: (10.0, 30.0),
}
_WEIGHT: dict[ArtefactKind, float] = {
    ArtefactKind.FLUSH: 3.0,
    ArtefactKind.SAMPLING: 3.0,
    ArtefactKind.ZEROING: 1.0,
    ArtefactKind.DAMPING: 1.0,
    ArtefactKind.KINK: 1.0,
    ArtefactKind.DISCONNECTION: 0.5,
    ArtefactKind.MOTION: 2.0,
    ArtefactKind.SENSOR_LOSS: 0.5,
    # The calibration signal is an operator's act, never the line's own doing: injected only.
    ArtefactKind.CALIBRATION: 0.0,
}
MAX_DAMPING_SHIFT_MMHG = 5.0
FLUSH_MMHG = 300.0
# A monitor's calibration signal: a square wave between these levels (docs/pressure.md).
CALIBRATION_HIGH_MMHG = 48.0
CALIBRATION_LOW_MMHG = -72.0


@dataclass(frozen=True, slots=True)
class Artefact:
    """One artefact from ``start_t_s`` for ``duration_s``; ``shift_mmhg`` is a damped line's
    mean shift (|shift| ≤ 5 mmHg), drawn once so the whole episode is consistent."""

    kind: ArtefactKind
    start_t_s: float
    duration_s: float
    shift_mmhg: float = 0.0

    @property
    def end_t_s(self) -> float:
        return self.start_t_s + self.duration_s


class ArtefactSchedule:
    """Artefacts ordered by start; overlapping ones resolve to the latest started."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._items: list[Artefact] = []
        self._starts: list[float] = []
        self._longest_s = 0.0

    @property
    def items(self) -> tuple[Artefact, ...]:
        return tuple(self._items)

    def add(self, kind: ArtefactKind | str, start_t_s: float, duration_s: float) -> Artefact:
        if duration_s <= 0:
            raise ValueError(f"artefact duration must be positive, got {duration_s} s")
        kind = ArtefactKind(kind)
        shift = (float(self._rng.uniform(-MAX_DAMPING_SHIFT_MMHG, MAX_DAMPING_SHIFT_MMHG))
                 if kind is ArtefactKind.DAMPING else 0.0)
        artefact = Artefact(kind, start_t_s, duration_s, shift)
        i = bisect.bisect_right(self._starts, start_t_s)
        self._starts.insert(i, start_t_s)
        self._items.insert(i, artefact)
        self._longest_s = max(self._longest_s, duration_s)
        return artefact

    def at(self, t_s: float) -> Artefact | None:
        """The artefact in force at ``t_s`` (start inclusive, end exclusive), if any."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        while i >= 0 and self._starts[i] >= t_s - self._longest_s:
            if t_s < self._items[i].end_t_s:
                return self._items[i]
            i -= 1
        return None

    def during(self, start_t_s: float, end_t_s: float) -> list[Artefact]:
        """The artefacts in force somewhere in [``start_t_s``, ``end_t_s``), earliest started
        first, so a renderer that applies them in order lets the latest started win as
        :meth:`at` does."""
        hi = bisect.bisect_left(self._starts, end_t_s)
        lo = bisect.bisect_left(self._starts, start_t_s - self._longest_s)
        return [a for a in self._items[lo:hi] if a.end_t_s > start_t_s]

    def add_random(self, rate_per_h: float, seed: int, start_t_s: float,
                   until_t_s: float) -> list[Artefact]:
        """Add artefacts as a Poisson process of ``rate_per_h``; kinds weighted as on a real
        line, durations uniform in each kind's range. Deterministic for ``seed``."""
        rng = np.random.Generator(np.random.PCG64(seed))
        kinds = list(_WEIGHT)
        weights = np.array([_WEIGHT[k] for k in kinds])
        added: list[Artefact] = []
        t_s = start_t_s
        while rate_per_h > 0:
            t_s += float(rng.exponential(3600.0 / rate_per_h))
            if t_s >= until_t_s:
                break
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            low, high = _DURATION_S[kind]
            added.append(self.add(kind, t_s, float(rng.uniform(low, high))))
        return added
