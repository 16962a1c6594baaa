"""The virtual patient's answer to a fluid bolus (issue 19's volume check, in the bench)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drivers.sim.patient import FLUID_EFFECT_S, VirtualPatient, draw_patient

SEEDS = range(1, 41)


def _patients() -> list[VirtualPatient]:
    """Patients whose MAP0 moves only with fluid: no wander, recovery or rebound."""
    return [VirtualPatient(replace(draw_patient(seed), ou_sigma_mmhg=0.0, recovery_mmhg=0.0,
                                   rebound_mmhg=0.0), "resuscitate", seed=seed)
            for seed in SEEDS]


def _map0_at(patient: VirtualPatient, t_s: float) -> float:
    patient.step(t_s, 0.0, 80.0)
    return patient.map0_mmhg


def test_about_half_the_patients_respond_to_fluid() -> None:
    responses = [p.fluid_response_mmhg for p in _patients()]
    assert 10 <= sum(r > 0 for r in responses) <= 30
    assert all(r == 0 or 3 <= r <= 8 for r in responses)


def test_a_bolus_raises_map0_for_its_effect_then_wears_off() -> None:
    patient = next(p for p in _patients() if p.fluid_response_mmhg > 0)
    baseline = _map0_at(patient, 600.0)
    rise = patient.give_fluid(600.0)
    assert rise == patient.fluid_response_mmhg
    assert _map0_at(patient, 600.0 + 300.0) - baseline == pytest.approx(rise)
    assert _map0_at(patient, 600.0 + FLUID_EFFECT_S + 700.0) == pytest.approx(baseline)


def test_a_second_bolus_does_half_as_much_and_a_non_responder_nothing() -> None:
    responder = next(p for p in _patients() if p.fluid_response_mmhg > 0)
    first = responder.give_fluid(0.0)
    assert responder.give_fluid(60.0) == first / 2
    non = next(p for p in _patients() if p.fluid_response_mmhg == 0)
    baseline = _map0_at(non, 60.0)
    assert non.give_fluid(60.0) == 0.0
    assert _map0_at(non, 900.0) == pytest.approx(baseline)


def test_the_same_seed_gives_the_same_response() -> None:
    assert [p.fluid_response_mmhg for p in _patients()] == \
        [p.fluid_response_mmhg for p in _patients()]
