"""The virtual patient's shortcuts give the very numbers of the computation they replace: the
RK4 stages written out equal RK4 over a slope function, a grid step's start rate taken from the
last step's end equals reading it again from the history, and a patient without a monitor has
the same course as one with it (random patients, doses, chunkings and lags)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim.patient import REBOUND_HALF_MCG_MIN, STEP_S, VirtualPatient, draw_cohort

CONC = 160.0
_DrugState = tuple[float, float, float, float]


def naive_rk4(patient: VirtualPatient, state: _DrugState, h_min: float, *, washout: float,
              mass_in: float, rates_in: tuple[float, float, float]) -> _DrugState:
    """Classic RK4 of the line, plasma, effect-site and suppression slopes."""
    p = patient.params

    def slope(y: _DrugState, r_in: float) -> _DrugState:
        m, c, ce, s = y
        rate = washout * m
        return (mass_in - rate, (r_in + p.q_endo_mcg_min - p.cl_l_min * c) / p.v_l,
                p.ke0_per_min * (c - ce),
                ((rate / (rate + REBOUND_HALF_MCG_MIN) - s) / p.rebound_tau_min)
                if p.rebound_mmhg > 0 else 0.0)

    def shifted(by: float, k: _DrugState) -> _DrugState:
        return (state[0] + by * k[0], state[1] + by * k[1], state[2] + by * k[2],
                state[3] + by * k[3])

    r0, r_half, r1 = rates_in
    k1 = slope(state, r0)
    k2 = slope(shifted(0.5 * h_min, k1), r_half)
    k3 = slope(shifted(0.5 * h_min, k2), r_half)
    k4 = slope(shifted(h_min, k3), r1)
    w = h_min / 6.0
    m, c, ce, s = (state[i] + w * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
                   for i in range(4))
    return m, c, ce, s


def same(a: float, b: float) -> bool:
    """Equal to the bit (NaN is NaN)."""
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1.0, a) == math.copysign(1.0, b))


def patient_for(seed: int, **changes: float) -> VirtualPatient:
    params = replace(draw_cohort(1, seed, "resuscitate")[0], **changes)
    return VirtualPatient(params, "resuscitate", seed, conc_mcg_ml=CONC)


finite = st.floats(-1e3, 1e3, allow_nan=False)


# the step (min), washout (1/min) and mass entering (mcg/min)
step_inputs = st.tuples(st.floats(1e-4, 1.0), st.floats(0.0, 50.0), st.floats(0.0, 5e3))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.tuples(finite, finite, finite, finite),
       step_inputs, st.tuples(finite, finite, finite))
def test_the_written_out_rk4_equals_rk4_over_the_slopes(
        seed: int, rebound: bool, state: _DrugState, inputs: tuple[float, float, float],
        rates_in: tuple[float, float, float]) -> None:
    h_min, washout, mass_in = inputs
    patient = patient_for(seed, rebound_mmhg=5.0 if rebound else 0.0)
    got = patient._rk4(state, h_min, washout=washout, mass_in=mass_in, rates_in=rates_in)
    want = naive_rk4(patient, state, h_min, washout=washout, mass_in=mass_in,
                     rates_in=rates_in)
    assert all(same(g, w) for g, w in zip(got, want, strict=True))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 40.0), st.integers(0, 2**32))
def test_a_grid_steps_start_rate_is_the_rate_read_afresh(seed: int, lag_s: float,
                                                         stream: int) -> None:
    """The lag reaches down to none at all, where the read would meet the point written."""
    patient = patient_for(seed, input_lag_s=lag_s)
    rng = random.Random(stream)
    t_s, reused = 0.0, 0
    for _ in range(400):
        t_s += STEP_S  # one grid step per call: the cached rate is looked at after each
        patient.step(t_s, rng.choice([0.0, 0.5, 3.0, 12.0 * rng.random()]), CONC)
        cached = patient._next_rate_in
        if cached is not None:
            reused += 1
            assert same(cached, patient._delayed_rate(0.0))
    assert (reused > 0) == (lag_s / STEP_S >= 2.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 2**32))
def test_a_patient_without_a_monitor_has_the_same_course(seed: int, stream: int) -> None:
    params = draw_cohort(1, seed, "disturbance")[0]
    watched = VirtualPatient(params, "disturbance", seed, conc_mcg_ml=CONC)
    alone = VirtualPatient(params, "disturbance", seed, conc_mcg_ml=CONC, beats=False)
    for patient in (watched, alone):
        patient.random_artefacts(6.0, seed, until_t_s=3600.0)
    rng = random.Random(stream)
    t_s, beats = 0.0, 0
    for _ in range(300):
        t_s += rng.choice([0.3, 0.5, 2.0, 7.0])
        rate_ml_h = rng.choice([0.0, 1.0, 6.0 * rng.random()])
        for patient in (watched, alone):
            patient.step(t_s, rate_ml_h, CONC)
        beats += len(watched.read_beats())
        assert alone.read_beats() == []
        assert same(alone.true_map_mmhg, watched.true_map_mmhg)
        assert same(alone.effect_conc_ng_ml, watched.effect_conc_ng_ml)
    assert beats > 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 40.0), st.integers(0, 2**32))
def test_the_grid_steps_written_out_reads_equal_the_functions_they_replace(
        seed: int, lag_s: float, stream: int) -> None:
    """The middle and end rates and the MAP that ``_grid_step`` writes out are
    ``_delayed_rate(0.5)``, ``_delayed_rate(1.0)`` and ``_map0 + _effect_mmhg``, to the bit."""
    patient = patient_for(seed, input_lag_s=lag_s)
    rng = random.Random(stream)
    seen: list[tuple[float, float, float, float]] = []
    rk4 = patient._rk4

    def watched_rk4(state: _DrugState, h_min: float, *, washout: float, mass_in: float,
                    rates_in: tuple[float, float, float]) -> _DrugState:
        seen.append((rates_in[1], rates_in[2], patient._delayed_rate(0.5),
                     patient._delayed_rate(1.0)))
        return rk4(state, h_min, washout=washout, mass_in=mass_in, rates_in=rates_in)

    patient._rk4 = watched_rk4  # type: ignore[method-assign]
    t_s = 0.0
    for _ in range(300):
        t_s += STEP_S
        patient.step(t_s, rng.choice([0.0, 0.5, 3.0, 12.0 * rng.random()]), CONC)
        assert same(patient.true_map_mmhg,
                    patient._map0(patient._t_s) + patient._effect_mmhg(patient._ce))
    assert len(seen) == 300
    assert all(same(mid, want_mid) and same(end, want_end)
               for mid, end, want_mid, want_end in seen)
