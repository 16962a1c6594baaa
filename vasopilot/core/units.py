"""Dose and flow conversions: the one place where mcg/min, mcg/kg/min and mL/h meet.

Every function names its units; nothing else in the code base multiplies by 60 or by a weight.
"""

from __future__ import annotations

import math
from enum import StrEnum

SECONDS_PER_MIN = 60.0
MINUTES_PER_HOUR = 60.0
UL_PER_ML = 1000.0


class DoseUnit(StrEnum):
    MCG_MIN = "mcg/min"
    MCG_KG_MIN = "mcg/kg/min"


def rate_ml_h_from_dose(dose_mcg_min: float, conc_mcg_ml: float) -> float:
    """Pump rate in mL/h that delivers ``dose_mcg_min`` of a solution of ``conc_mcg_ml``."""
    if conc_mcg_ml <= 0:
        raise ValueError(f"concentration must be positive, got {conc_mcg_ml} mcg/mL")
    return dose_mcg_min * MINUTES_PER_HOUR / conc_mcg_ml


def dose_from_rate_ml_h(rate_ml_h: float, conc_mcg_ml: float) -> float:
    """Dose in mcg/min delivered by ``rate_ml_h`` of a solution of ``conc_mcg_ml``."""
    if conc_mcg_ml <= 0:
        raise ValueError(f"concentration must be positive, got {conc_mcg_ml} mcg/mL")
    return rate_ml_h * conc_mcg_ml / MINUTES_PER_HOUR


def mcg_min_from_mcg_kg_min(dose_mcg_kg_min: float, weight_kg: float) -> float:
    if weight_kg <= 0:
        raise ValueError(f"weight must be positive, got {weight_kg} kg")
    return dose_mcg_kg_min * weight_kg


def mcg_kg_min_from_mcg_min(dose_mcg_min: float, weight_kg: float) -> float:
    if weight_kg <= 0:
        raise ValueError(f"weight must be positive, got {weight_kg} kg")
    return dose_mcg_min / weight_kg


def to_mcg_min(value: float, unit: DoseUnit, weight_kg: float | None) -> float:
    """Express a dose given in ``unit`` in mcg/min (weight in kg needed for mcg/kg/min)."""
    if unit is DoseUnit.MCG_MIN:
        return value
    if weight_kg is None:
        raise ValueError("a dose in mcg/kg/min needs the patient's weight")
    return mcg_min_from_mcg_kg_min(value, weight_kg)


def from_mcg_min(dose_mcg_min: float, unit: DoseUnit, weight_kg: float | None) -> float:
    """Express a dose in mcg/min in ``unit`` (weight in kg needed for mcg/kg/min)."""
    if unit is DoseUnit.MCG_MIN:
        return dose_mcg_min
    if weight_kg is None:
        raise ValueError("a dose in mcg/kg/min needs the patient's weight")
    return mcg_kg_min_from_mcg_min(dose_mcg_min, weight_kg)


def bore_area_mm2(diameter_mm: float) -> float:
    """Cross-section of a syringe barrel; 1 mm of plunger travel moves this many µL (mm³)."""
    return math.pi * diameter_mm**2 / 4.0


def volume_per_microstep_ul(
    diameter_mm: float, lead_mm: float, steps_per_rev: int, microsteps: int
) -> float:
    """Volume moved by one microstep of a lead-screw syringe drive, in µL."""
    return bore_area_mm2(diameter_mm) * lead_mm / (steps_per_rev * microsteps)


def plunger_speed_mm_h(rate_ml_h: float, diameter_mm: float) -> float:
    """Plunger speed in mm/h for a flow of ``rate_ml_h`` through a barrel of ``diameter_mm``."""
    return rate_ml_h * UL_PER_ML / bore_area_mm2(diameter_mm)
