"""The yardstick of docs/virtual-patient.md: floor F, set-point F + 5, band [F, F + 10].

Scored on a MAP series sampled every 1-2 s: the bench passes the *monitor* MAP (what the
transducer reports: gain and levelling offset in, beat noise and artefacts out) as the primary
series and the model's true MAP beside it.

Windows. *Induction* runs from t = 0 until MAP ≥ F has held 60 s; *maintenance* starts at the
first sample of that hold and runs to the end (so time to floor is when the held climb began);
a patient that never holds the floor has no maintenance, and its maintenance figures are scored
over the whole run (it is below the floor nearly all the time, which is what it is). *Late* is
from t = 60 min. Each disturbance has an *event* window from onset to its end + 60 min.

PE = 100·(MAP − SP)/SP in maintenance. Varvel criteria: MDPE (bias), MDAPE (inaccuracy),
wobble (median |PE − MDPE|) and divergence (slope of |PE| over time, in % per hour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# S6's set-point above the floor lives with the settings; re-exported for the controllers
from vasopilot.core.config import SET_POINT_ABOVE_FLOOR_MMHG as SET_POINT_ABOVE_FLOOR_MMHG  # noqa: PLC0414

BAND_ABOVE_FLOOR_MMHG = 10.0  # the band is [F, F + 10]
ABOVE_FLOOR_MMHG = 20.0  # "above": MAP > F + 20
FLOOR_HOLD_S = 60.0
LATE_FROM_S = 3600.0
EVENT_TAIL_S = 3600.0
OVERSHOOT_WINDOW_S = 1800.0


@dataclass(frozen=True)
class EventMetrics:
    """One disturbance: recovery (onset → MAP ≥ F held 60 s; None if never), deficit under
    the floor over the event window (mmHg·min) and overshoot (% of the 30 min after the event
    with MAP > F + 20)."""

    onset_s: float
    amplitude_mmhg: float
    recovery_min: float | None
    deficit_mmhg_min: float
    overshoot_pct: float


@dataclass(frozen=True)
class MapMetrics:
    time_to_floor_min: float | None
    induction_deficit_mmhg_min: float
    tib_pct: float
    below_floor_pct: float
    below_floor5_pct: float
    above_pct: float
    hypotension_episodes: int
    late_tib_pct: float
    late_below_floor_pct: float
    mdpe_pct: float
    mdape_pct: float
    wobble_pct: float
    divergence_pct_per_h: float
    events: tuple[EventMetrics, ...] = ()


def held_from(t: np.ndarray, ok: np.ndarray, hold_s: float, start: int = 0) -> int | None:
    """Index of the first sample at or after ``start`` from which ``ok`` stays true for
    ``hold_s`` seconds (None if it never does)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok[start:].astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        i, j = start + int(a), start + int(b) - 1
        if t[j] - t[i] >= hold_s:
            return i
    return None


def _deficit_mmhg_min(t: np.ndarray, m: np.ndarray, floor_mmhg: float) -> float:
    if t.size < 2:
        return 0.0
    return float(np.trapezoid(np.maximum(0.0, floor_mmhg - m), t) / 60.0)


def map_metrics(
    t_s: Sequence[float] | np.ndarray, map_mmhg: Sequence[float] | np.ndarray,
    floor_mmhg: float, *, events: Sequence[tuple[float, float, float]] = (),
) -> MapMetrics:
    """The yardstick on one MAP series sampled at ``t_s`` (seconds from the start).
    ``events``: (onset s, end s, amplitude mmHg) of each disturbance."""
    t = np.asarray(t_s, dtype=float)
    m = np.asarray(map_mmhg, dtype=float)
    if t.size == 0:
        raise ValueError("no MAP samples to score")
    t = t - t[0]
    at_floor = m >= floor_mmhg
    start = held_from(t, at_floor, FLOOR_HOLD_S)
    kept = slice(0 if start is None else start, None)
    induction_end = t.size if start is None else start + 1
    tm, mm = t[kept], m[kept]
    setpoint = floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG
    pe = 100.0 * (mm - setpoint) / setpoint
    mdpe = float(np.median(pe))
    ape = np.abs(pe)
    spans_time = tm.size > 1 and np.ptp(tm) > 0
    late = t >= LATE_FROM_S
    return MapMetrics(
        time_to_floor_min=None if start is None else float(t[start] / 60.0),
        induction_deficit_mmhg_min=_deficit_mmhg_min(t[:induction_end], m[:induction_end],
                                                     floor_mmhg),
        tib_pct=_pct((mm >= floor_mmhg) & (mm <= floor_mmhg + BAND_ABOVE_FLOOR_MMHG)),
        below_floor_pct=_pct(mm < floor_mmhg),
        below_floor5_pct=_pct(mm < floor_mmhg - 5.0),
        above_pct=_pct(mm > floor_mmhg + ABOVE_FLOOR_MMHG),
        hypotension_episodes=len(episodes_below(tm, mm, floor_mmhg)),
        late_tib_pct=_pct((m[late] >= floor_mmhg)
                          & (m[late] <= floor_mmhg + BAND_ABOVE_FLOOR_MMHG)),
        late_below_floor_pct=_pct(m[late] < floor_mmhg),
        mdpe_pct=mdpe,
        mdape_pct=float(np.median(ape)),
        wobble_pct=float(np.median(np.abs(pe - mdpe))),
        divergence_pct_per_h=float(np.polyfit(tm / 3600.0, ape, 1)[0]) if spans_time else 0.0,
        events=tuple(_event(t, m, floor_mmhg, e) for e in events),
    )


def _event(t: np.ndarray, m: np.ndarray, floor_mmhg: float,
           event: tuple[float, float, float]) -> EventMetrics:
    onset_s, end_s, amplitude_mmhg = event
    window = (t >= onset_s) & (t <= end_s + EVENT_TAIL_S)
    first = int(np.searchsorted(t, onset_s))
    recovered = held_from(t, m >= floor_mmhg, FLOOR_HOLD_S, first) if first < t.size else None
    after = (t > end_s) & (t <= end_s + OVERSHOOT_WINDOW_S)
    return EventMetrics(
        onset_s=onset_s, amplitude_mmhg=amplitude_mmhg,
        recovery_min=None if recovered is None else float((t[recovered] - onset_s) / 60.0),
        deficit_mmhg_min=_deficit_mmhg_min(t[window], m[window], floor_mmhg),
        overshoot_pct=_pct(m[after] > floor_mmhg + ABOVE_FLOOR_MMHG),
    )


# -- floor, set-point and band (docs/virtual-patient.md, "Floor, set-point and band") --------

# ``vasopilot sim``'s summary counts the band after the first 10 minutes
SETTLING_S = 600.0


@dataclass(frozen=True)
class MapBand:
    """The clinical goal MAP >= floor F: a loop aims at F + 5 and holds [F, F + 10]; MAP below
    F is hypotension. ``vasopilot sim``'s table and every plot use this one definition."""

    floor_mmhg: float

    @property
    def set_point_mmhg(self) -> float:
        return self.floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG

    @property
    def high_mmhg(self) -> float:
        return self.floor_mmhg + BAND_ABOVE_FLOOR_MMHG

    def label(self) -> str:
        return f"band {self.floor_mmhg:.0f}–{self.high_mmhg:.0f} mmHg"


@dataclass(frozen=True)
class BandMetrics:
    """Shares of samples, in percent: in the band after the settling time, and below the
    floor over the whole run."""

    in_band_pct: float
    below_floor_pct: float


def band_metrics(t_s: Sequence[float] | np.ndarray, map_mmhg: Sequence[float] | np.ndarray,
                 band: MapBand) -> BandMetrics:
    """Score one MAP series (true or monitor) sampled at ``t_s`` against ``band``."""
    t = np.asarray(t_s, dtype=float)
    m = np.asarray(map_mmhg, dtype=float)
    if t.size == 0:
        return BandMetrics(0.0, 0.0)
    in_band = (m >= band.floor_mmhg) & (m <= band.high_mmhg)
    settled = t - t[0] >= SETTLING_S
    return BandMetrics(
        in_band_pct=_pct(in_band[settled]) if settled.any() else _pct(in_band),
        below_floor_pct=_pct(m < band.floor_mmhg),
    )


def _pct(mask: np.ndarray) -> float:
    return float(100.0 * np.count_nonzero(mask) / mask.size) if mask.size else 0.0


# -- dosing, artefact and weaning metrics ---------------------------------------------------

EPISODE_MIN_S = 60.0
REBOUND_FLOOR_MIN_S = 120.0  # MAP < F for at least 2 min
REBOUND_LOW5_MIN_S = 60.0  # MAP < F - 5 for at least 60 s
DECREMENT_WATCH_S = 3600.0


@dataclass(frozen=True)
class DoseChange:
    """A dose the supervisor applied at ``t_s`` (mcg/min), replacing ``previous_mcg_min``."""

    t_s: float
    previous_mcg_min: float
    dose_mcg_min: float


def dose_changes_per_h(changes: Sequence[DoseChange], hours: float) -> float:
    return len(changes) / hours if hours > 0 else 0.0


def artefact_increases(changes: Sequence[DoseChange],
                       artefacts: Sequence[tuple[float, float]]) -> int:
    """Dose increases applied while an artefact (start, end) in seconds was present."""
    return sum(
        1 for c in changes if c.dose_mcg_min > c.previous_mcg_min
        and any(start <= c.t_s < end for start, end in artefacts)
    )


def episodes_below(
    t_s: Sequence[float] | np.ndarray, map_mmhg: Sequence[float] | np.ndarray,
    threshold_mmhg: float, min_s: float = EPISODE_MIN_S,
) -> list[tuple[float, float]]:
    """Spans (start, end) in seconds of MAP below ``threshold_mmhg`` lasting at least ``min_s``."""
    t = np.asarray(t_s, dtype=float)
    below = np.asarray(map_mmhg, dtype=float) < threshold_mmhg
    edges = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    spans = [(float(t[a]), float(t[b - 1])) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [(a, b) for a, b in spans if b - a >= min_s]


@dataclass(frozen=True)
class WeanMetrics:
    """A wean against its held arm. ``off_h``: hours until the dose is at or below the final
    step for good (None: not within the run). ``excess_rebound_*``: rebound episodes of the
    wean arm (MAP < F − 5 for ≥ 60 s; MAP < F for ≥ 2 min) that start within 60 min of a
    decrement and overlap no episode of the same kind in the held arm."""

    off_h: float | None
    decrements: int
    excess_rebound_low5: int
    excess_rebound_floor: int


def wean_off_h(changes: Sequence[DoseChange], *, start_t_s: float,
               final_dose_mcg_min: float) -> float | None:
    end_t_s: float | None = None
    for c in sorted(changes, key=lambda c: c.t_s):
        low_now = c.dose_mcg_min <= final_dose_mcg_min + 1e-9
        if not low_now:
            end_t_s = None
        elif end_t_s is None:
            end_t_s = c.t_s
    return None if end_t_s is None else (end_t_s - start_t_s) / 3600.0


def _excess(wean: list[tuple[float, float]], held: list[tuple[float, float]],
            decrements: Sequence[float]) -> int:
    return sum(
        1 for a, b in wean
        if any(d <= a <= d + DECREMENT_WATCH_S for d in decrements)
        and not any(ha <= b and a <= hb for ha, hb in held)
    )


def wean_metrics(
    t_s: Sequence[float] | np.ndarray,
    map_mmhg: Sequence[float] | np.ndarray,
    held_map_mmhg: Sequence[float] | np.ndarray,
    changes: Sequence[DoseChange],
    *,
    floor_mmhg: float,
    start_t_s: float,
    final_dose_mcg_min: float,
) -> WeanMetrics:
    """Weaning outcome of one patient; ``held_map_mmhg`` is the held arm on the same ``t_s``."""
    decrements = [c.t_s for c in changes if c.dose_mcg_min < c.previous_mcg_min]
    low5 = floor_mmhg - 5.0
    return WeanMetrics(
        off_h=wean_off_h(changes, start_t_s=start_t_s, final_dose_mcg_min=final_dose_mcg_min),
        decrements=len(decrements),
        excess_rebound_low5=_excess(episodes_below(t_s, map_mmhg, low5, REBOUND_LOW5_MIN_S),
                                    episodes_below(t_s, held_map_mmhg, low5,
                                                   REBOUND_LOW5_MIN_S), decrements),
        excess_rebound_floor=_excess(
            episodes_below(t_s, map_mmhg, floor_mmhg, REBOUND_FLOOR_MIN_S),
            episodes_below(t_s, held_map_mmhg, floor_mmhg, REBOUND_FLOOR_MIN_S), decrements),
    )
