"""Outcome metrics of reference/patient.md, computed at 1 Hz on the model's true MAP.

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
    return MapMetrics(
        time_in_target_pct=_pct(in_band[settled]) if settled.any() else _pct(in_band),
        time_in_target_from_start_pct=_pct(in_band),
        map_below_65_pct=_pct(m < 65.0),
        map_below_60_pct=_pct(m < 60.0),
        hypertension_pct=_pct(m > target_mmhg + 15.0),
        mdpe_pct=mdpe,
        mdape_pct=float(np.median(ape)),
        wobble_pct=float(np.median(np.abs(pe - mdpe))),
        divergence_pct_per_h=divergence,
        time_to_target_min=float(t[reached[0]] / 60.0) if reached.size else None,
    )


def _pct(mask: np.ndarray) -> float:
    return float(100.0 * np.count_nonzero(mask) / mask.size) if mask.size else 0.0
