"""Outcome metrics of docs/virtual-patient.md, computed at 1 Hz on the model's true MAP.

PE = 100·(MAP − target)/target in percent. Varvel criteria: MDPE (bias), MDAPE (inaccuracy),
wobble (median |PE − MDPE|) and divergence (slope of |PE| over time, in % per hour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SETTLING_S = 600.0  # time in target is reported after the first 10 minutes
TARGET_BAND_MMHG = 5.0


@dataclass(frozen=True)
class MapMetrics:
    time_in_target_pct: float
    time_in_target_from_start_pct: float
    map_below_65_pct: float
    # the same, counted only from the first minute in the target band on: what the
    # resuscitation (a start at MAP0 45-55 under the slew limit) cannot contribute
    map_below_65_after_target_pct: float
    map_below_60_pct: float
    hypertension_pct: float
    mdpe_pct: float
    mdape_pct: float
    wobble_pct: float
    divergence_pct_per_h: float
    time_to_target_min: float | None


def map_metrics(
    t_s: Sequence[float] | np.ndarray, map_mmhg: Sequence[float] | np.ndarray, target_mmhg: float
) -> MapMetrics:
    """Metrics of one patient's true MAP sampled at ``t_s`` (seconds from the start)."""
    t = np.asarray(t_s, dtype=float)
    m = np.asarray(map_mmhg, dtype=float)
    if t.size == 0:
        raise ValueError("no MAP samples to score")
    t = t - t[0]
    in_band = np.abs(m - target_mmhg) <= TARGET_BAND_MMHG
    settled = t >= SETTLING_S
    pe = 100.0 * (m - target_mmhg) / target_mmhg
    mdpe = float(np.median(pe))
    ape = np.abs(pe)
    spans_time = t.size > 1 and np.ptp(t) > 0
    divergence = float(np.polyfit(t / 3600.0, ape, 1)[0]) if spans_time else 0.0
    reached = np.flatnonzero(in_band)
    after_target = m[reached[0]:] if reached.size else m[:0]
    return MapMetrics(
        time_in_target_pct=_pct(in_band[settled]) if settled.any() else _pct(in_band),
        time_in_target_from_start_pct=_pct(in_band),
        map_below_65_pct=_pct(m < 65.0),
        map_below_65_after_target_pct=_pct(after_target < 65.0),
        map_below_60_pct=_pct(m < 60.0),
        hypertension_pct=_pct(m > target_mmhg + 15.0),
        mdpe_pct=mdpe,
        mdape_pct=float(np.median(ape)),
        wobble_pct=float(np.median(np.abs(pe - mdpe))),
        divergence_pct_per_h=divergence,
        time_to_target_min=float(t[reached[0]] / 60.0) if reached.size else None,
    )


# -- floor, set-point and band (docs/virtual-patient.md, "Floor, set-point and band") --------

SET_POINT_ABOVE_FLOOR_MMHG = 5.0
BAND_ABOVE_FLOOR_MMHG = 10.0


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

REBOUND_BELOW_MMHG = 60.0
LOW_AFTER_DECREMENT_MMHG = 65.0
EPISODE_MIN_S = 60.0
DECREMENT_WATCH_S = 3600.0


@dataclass(frozen=True)
class DoseChange:
    """A dose the supervisor applied at ``t_s`` (mcg/min), replacing ``previous_mcg_min``."""

    t_s: float
    previous_mcg_min: float
    dose_mcg_min: float


@dataclass(frozen=True)
class WeanMetrics:
    wean_hours: float | None
    rebound_episodes: int
    decrements: int
    decrements_followed_by_low_pct: float


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


def wean_metrics(
    t_s: Sequence[float] | np.ndarray,
    map_mmhg: Sequence[float] | np.ndarray,
    changes: Sequence[DoseChange],
    *,
    start_t_s: float,
    final_dose_mcg_min: float,
) -> WeanMetrics:
    """Weaning outcome: hours from ``start_t_s`` until the dose is at or below the final step
    for good (``None`` if it never gets there), rebound episodes (MAP < 60 for over a minute)
    and the share of decrements followed within an hour by MAP < 65 for a minute."""
    end_t_s: float | None = None
    for c in sorted(changes, key=lambda c: c.t_s):
        low_now = c.dose_mcg_min <= final_dose_mcg_min + 1e-9
        if not low_now:
            end_t_s = None
        elif end_t_s is None:
            end_t_s = c.t_s
    rebounds = episodes_below(t_s, map_mmhg, REBOUND_BELOW_MMHG)
    lows = episodes_below(t_s, map_mmhg, LOW_AFTER_DECREMENT_MMHG)
    decrements = [c.t_s for c in changes if c.dose_mcg_min < c.previous_mcg_min]
    followed = sum(
        1 for d in decrements
        if any(end >= d and start <= d + DECREMENT_WATCH_S for start, end in lows)
    )
    return WeanMetrics(
        wean_hours=None if end_t_s is None else (end_t_s - start_t_s) / 3600.0,
        rebound_episodes=len(rebounds),
        decrements=len(decrements),
        decrements_followed_by_low_pct=100.0 * followed / len(decrements) if decrements else 0.0,
    )
