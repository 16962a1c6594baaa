"""The controller's faster paths give the very numbers of the plain ones, bit for bit: a
last-bit difference in a forecast can flip a decision, so "close" is not enough. Each plain
path is written out here as the reference it replaced (one model at a time, one plan at a
time, one sample at a time)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vasopilot.control.mpc import (
    LineModel,
    LineState,
    MpcTuning,
    _Candidate,
    _forecast,
    _mixture,
)
from vasopilot.control.planner import PlanLimits, PlanTuning, _candidate_plans, candidate_plans
from vasopilot.control.reach import ReachTuning, ReachWatch

TUNING = MpcTuning()
LIMITS = PlanLimits(up_step_mcg_min=2.0, up_interval_s=120.0, down_step_mcg_min=2.0,
                    hard_max_mcg_min=60.0, up_step_ratio=0.2, down_step_ratio=0.2)
PLAN = PlanTuning(step_s=30.0)


def _predict_one(c: _Candidate, rates: np.ndarray, step_s: float,
                 t: MpcTuning) -> tuple[np.ndarray, np.ndarray]:
    b = c.b if c.b is not None else 0.0
    g = math.exp(c.lg)
    free, forced = c._response(step_s, rates.shape[1])
    effect = rates @ forced.T + free @ np.array([c.x1, c.x2])
    h1 = g * np.maximum(effect, 0.0) ** c.kappa
    walk = np.minimum(t.wander_cap_mmhg**2,
                      t.map0_walk_mmhg2_s * step_s * np.arange(1, rates.shape[1] + 1))
    var = c.p[0][0] + 2.0 * c.p[0][1] * h1 + c.p[1][1] * h1 * h1 + walk + t.model_var_mmhg2
    return b + h1, np.sqrt(np.maximum(var, 0.01))


def _mixture_of(parts: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    mean = sum(w * m for w, m, _ in parts)
    second = sum(w * (sd * sd + m * m) for w, m, sd in parts)
    assert isinstance(mean, np.ndarray) and isinstance(second, np.ndarray)
    return mean, np.sqrt(np.maximum(second - mean * mean, 1e-4))


def _rates_one_by_one(line: LineModel, mass_mcg: float, doses: np.ndarray,
                      step_s: float) -> np.ndarray:
    dt_min = step_s / 60.0
    flow = doses / line.conc_mcg_ml + line.carrier_ml_h / 60.0
    k = np.maximum(flow / line.dead_volume_ml, 1e-12)
    decay = np.exp(-k * dt_min)
    mass = np.full(doses.shape[0], mass_mcg)
    out = np.empty_like(doses)
    for j in range(doses.shape[1]):
        equilibrium = doses[:, j] / k[:, j]
        after = equilibrium + (mass - equilibrium) * decay[:, j]
        out[:, j] = np.maximum(0.0, (doses[:, j] * dt_min - (after - mass)) / dt_min)
        mass = after
    return out


def _bank(seed: int, shared_lags: bool) -> list[_Candidate]:
    """The controller's 18 models in a state drawn from ``seed``; with ``shared_lags`` the
    curvatures of one lag filter the same rates, as in the loop."""
    rng = np.random.default_rng(seed)
    t = TUNING
    bank = [_Candidate(tp, te, k, t) for tp in t.plasma_tau_min for te in t.effect_tau_min
            for k in t.curvature]
    x = rng.uniform(0.0, 40.0, 2)
    for i, c in enumerate(bank):
        if not shared_lags or i % len(t.curvature) == 0:
            x = rng.uniform(0.0, 40.0, 2)
        c.x1, c.x2 = float(x[0]), float(x[1])
        c.b = float(rng.uniform(40.0, 80.0))
        c.lg = float(rng.normal(0.0, 1.5))
        p00, p11 = (float(v) for v in rng.uniform(0.1, 60.0, 2))
        p01 = float(rng.uniform(-1.0, 1.0)) * math.sqrt(p00 * p11)
        c.p = [[p00, p01], [p01, p11]]
    return bank


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shared_lags=st.booleans(),
       kept=st.sets(st.integers(0, 17), min_size=1), plans=st.integers(1, 30),
       idle_steps=st.integers(0, 30))
def test_the_stacked_forecast_is_each_models_forecast_mixed(
        seed: int, shared_lags: bool, kept: set[int], plans: int, idle_steps: int) -> None:
    bank = _bank(seed, shared_lags)
    rng = np.random.default_rng(seed + 1)
    rates = rng.uniform(0.0, 50.0, (plans, 30))
    rates[:, :idle_steps] = 0.0  # no drug in the vein yet: x^κ at 0
    models = sorted(kept)
    raw = rng.uniform(0.01, 1.0, len(models))
    weights = (raw / raw.sum()).tolist()
    expected = _mixture_of([(w, *_predict_one(bank[i], rates, 30.0, TUNING))
                            for i, w in zip(models, weights, strict=True)])
    means, sds = _forecast([bank[i] for i in models], rates, 30.0, TUNING)
    got = _mixture(np.array(weights), means, sds)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


@settings(max_examples=300, deadline=None)
@given(current=st.one_of(st.floats(0.0, 60.0), st.sampled_from([0.0, 2.0, 10.0, 60.0])),
       since_up=st.one_of(st.none(), st.floats(0.0, 600.0)),
       line=st.builds(LineModel, dead_volume_ml=st.floats(0.2, 3.0),
                      carrier_ml_h=st.sampled_from([0.0, 2.0, 5.0]),
                      conc_mcg_ml=st.sampled_from([16.0, 40.0, 80.0])),
       masses=st.lists(st.floats(0.0, 240.0), min_size=1, max_size=3))
def test_the_lines_rates_are_each_plans_stepped_alone(
        current: float, since_up: float | None, line: LineModel, masses: list[float]) -> None:
    plans = candidate_plans(current, since_up, LIMITS, PLAN)
    state = LineState(line)
    # the same plans again, on another mass: the dose-only terms kept, the recurrence not
    for mass in masses:
        state.mass_mcg = mass
        assert np.array_equal(state.rates(plans, PLAN.step_s),
                              _rates_one_by_one(line, mass, plans, PLAN.step_s))


@settings(max_examples=100, deadline=None)
@given(current=st.floats(0.0, 60.0), since_up=st.one_of(st.none(), st.floats(0.0, 600.0)))
def test_the_plans_kept_for_a_dose_are_the_plans_built_for_it(current: float,
                                                             since_up: float | None) -> None:
    kept = candidate_plans(current, since_up, LIMITS, PLAN)
    first_up_s = 0.0 if since_up is None else max(0.0, LIMITS.up_interval_s - since_up)
    built = _candidate_plans.__wrapped__(current, first_up_s, LIMITS, PLAN)
    assert np.array_equal(kept, built) and kept.tobytes() == built.tobytes()
    assert candidate_plans(current, since_up, LIMITS, PLAN) is kept
    assert not kept.flags.writeable


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), looks=st.integers(1, 700))
def test_the_reach_watchs_arrays_hold_what_its_samples_did(seed: int, looks: int) -> None:
    rng = np.random.default_rng(seed)
    tune = ReachTuning()
    watch = ReachWatch(tune)
    kept: list[tuple[float, float, tuple[float, ...]]] = []
    t = 0.0
    for _ in range(looks):
        t += float(rng.choice([10.0, 10.0, 10.0, 20.0, 250.0]))
        effects = tuple(float(v) for v in rng.uniform(0.0, 40.0, 18))
        map_mmhg = float(rng.uniform(40.0, 90.0))
        watch.observe(t, map_mmhg, effects)
        kept.append((t, map_mmhg, effects))
    window = [s for s in kept if s[0] >= t - tune.window_s]
    history = [s for s in kept if s[0] >= t - tune.history_s]
    samples = watch._samples
    for start, expected in ((samples.window_from, window), (samples.history_from, history)):
        model = int(rng.integers(0, 18))
        end = samples.end
        assert np.array_equal(samples.effects[model, start:end],
                              np.array([s[2][model] for s in expected]))
        assert np.array_equal(samples.map_mmhg[start:end], np.array([s[1] for s in expected]))
    since_s = t - tune.clear_s
    recent = [s[1] for s in window if s[0] >= since_s]
    assert watch._recent_mean(t, -1.0) == (sum(recent) / len(recent) if recent else -1.0)
