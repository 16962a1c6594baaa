"""A drug-library entry (S1) in mcg/min for one patient: the numbers the rules hold a dose to.

All doses here are in mcg/min; the drug entry's own unit is converted once, in :class:`DoseLimits`.
The rules themselves are in :mod:`safety.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vasopilot.core.config import DrugEntry
from vasopilot.core.units import dose_from_rate_ml_h

RATE_TOLERANCE = 0.01  # S4: the pump must deliver the dose within ±1 %
# Doses closer than this are the same dose (float round trips through mL/h).
DOSE_EPS_MCG_MIN = 1e-6


@dataclass(frozen=True)
class DoseLimits:
    """A drug entry expressed in mcg/min for one patient (weight in kg where needed)."""

    conc_mcg_ml: float
    soft_min: float
    soft_max: float
    hard_max: float
    start_max: float
    max_up_step: float
    min_up_interval_s: float
    max_down_step: float
    wean_step: float
    wean_interval_s: float
    # S3's relative parts, as fractions of the running dose (0: the absolute part alone)
    up_step_ratio: float
    down_step_ratio: float

    @classmethod
    def from_entry(cls, drug: DrugEntry, weight_kg: float | None) -> DoseLimits:
        def mcg_min(value: float) -> float:
            return drug.mcg_min(value, weight_kg)

        return cls(
            conc_mcg_ml=drug.conc_mcg_ml,
            soft_min=mcg_min(drug.soft_min),
            soft_max=mcg_min(drug.soft_max),
            hard_max=mcg_min(drug.hard_max),
            start_max=mcg_min(drug.start_max),
            max_up_step=mcg_min(drug.max_up_step),
            min_up_interval_s=drug.min_up_interval_s,
            max_down_step=mcg_min(drug.max_down_step),
            wean_step=mcg_min(drug.wean_step),
            wean_interval_s=drug.wean_interval_s,
            up_step_ratio=drug.max_up_step_pct / 100.0,
            down_step_ratio=drug.max_down_step_pct / 100.0,
        )

    def up_step_at(self, dose_mcg_min: float) -> float:
        """S3: the largest increase from ``dose_mcg_min``, +max(absolute, relative part)."""
        return max(self.max_up_step, self.up_step_ratio * dose_mcg_min)

    def down_step_at(self, dose_mcg_min: float) -> float:
        """S3: the largest decrease from ``dose_mcg_min``, -max(absolute, relative part)."""
        return max(self.max_down_step, self.down_step_ratio * dose_mcg_min)

    def above_limits(self, dose_mcg_min: float, confirmed_mcg_min: float) -> bool:
        """Over the hard max, or over the soft max and more than an operator confirmed (S2)."""
        if dose_mcg_min > self.hard_max + DOSE_EPS_MCG_MIN:
            return True
        return dose_mcg_min > max(self.soft_max, confirmed_mcg_min) + DOSE_EPS_MCG_MIN


def dose_for_rate(rate_ml_h: float, limits: DoseLimits) -> float:
    return dose_from_rate_ml_h(rate_ml_h, limits.conc_mcg_ml)
