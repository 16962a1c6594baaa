"""Unit conversions (property-based): every path through mL/h, mcg/min and mcg/kg/min agrees."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vasopilot.core.units import (
    DoseUnit,
    dose_from_rate_ml_h,
    from_mcg_min,
    plunger_speed_mm_h,
    rate_ml_h_from_dose,
    to_mcg_min,
    volume_per_microstep_ul,
)

doses = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)
concentrations = st.floats(min_value=1.0, max_value=1000.0)
weights = st.floats(min_value=30.0, max_value=250.0)


@given(doses, concentrations)
def test_rate_and_dose_round_trip(dose_mcg_min: float, conc_mcg_ml: float) -> None:
    rate = rate_ml_h_from_dose(dose_mcg_min, conc_mcg_ml)
    assert math.isclose(dose_from_rate_ml_h(rate, conc_mcg_ml), dose_mcg_min, abs_tol=1e-9)


@given(doses, weights)
def test_weight_based_round_trip(dose_mcg_min: float, weight_kg: float) -> None:
    per_kg = from_mcg_min(dose_mcg_min, DoseUnit.MCG_KG_MIN, weight_kg)
    assert math.isclose(to_mcg_min(per_kg, DoseUnit.MCG_KG_MIN, weight_kg), dose_mcg_min,
                        abs_tol=1e-9)


@given(doses, concentrations)
def test_rate_is_proportional_to_dose(dose_mcg_min: float, conc_mcg_ml: float) -> None:
    assert math.isclose(rate_ml_h_from_dose(2 * dose_mcg_min, conc_mcg_ml),
                        2 * rate_ml_h_from_dose(dose_mcg_min, conc_mcg_ml), abs_tol=1e-9)


@pytest.mark.parametrize(("dose_mcg_min", "rate_ml_h"), [(2.0, 1.5), (10.0, 7.5), (30.0, 22.5)])
def test_reference_rates_at_80_mcg_per_ml(dose_mcg_min: float, rate_ml_h: float) -> None:
    # docs/pumps.md: at 80 mcg/mL, 2 → 1.5, 10 → 7.5, 30 → 22.5 mL/h
    assert rate_ml_h_from_dose(dose_mcg_min, 80.0) == pytest.approx(rate_ml_h)


def test_mcg_per_kg_needs_weight() -> None:
    with pytest.raises(ValueError, match="weight"):
        to_mcg_min(0.1, DoseUnit.MCG_KG_MIN, None)


def test_point_one_mcg_per_kg_at_80_kg_is_8_mcg_per_min() -> None:
    assert to_mcg_min(0.1, DoseUnit.MCG_KG_MIN, 80.0) == pytest.approx(8.0)


@pytest.mark.parametrize(("lead_mm", "expected_ul"), [(0.8, 0.140), (2.0, 0.350)])
def test_microstep_volume_of_50_ml_syringe(lead_mm: float, expected_ul: float) -> None:
    # docs/pumps.md: d = 26.7 mm, 200 steps/rev, 16 microsteps
    assert volume_per_microstep_ul(26.7, lead_mm, 200, 16) == pytest.approx(expected_ul, abs=5e-4)


def test_plunger_speed_of_one_ml_per_hour_in_50_ml_syringe() -> None:
    assert plunger_speed_mm_h(1.0, 26.7) == pytest.approx(1000 / 559.9, rel=1e-3)


def test_non_positive_concentration_is_refused() -> None:
    with pytest.raises(ValueError, match="concentration"):
        rate_ml_h_from_dose(1.0, 0.0)
