"""The controller's faster paths give the very numbers of the plain ones, bit for bit: a
last-bit difference in a forecast can flip a decision, so "close" is not enough. Each plain
path is written out here as the reference it replaced (one model at a time, one plan at a
time, one sample at a time)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vasopilot.control.mpc import (
    LineModel,
    LineState,
    MpcTuning,
)
from vasopilot.control.planner import PlanLimits, PlanTuning, _candidate_plans, candidate_plans

TUNING = MpcTuning()
LIMITS = PlanLimits(up_step_mcg_min=2.0, up_interval_s=120.0, down_step_mcg_min=2.0,
                    hard_max_mcg_min=60.0, up_step_ratio=0.2, down_step_ratio=0.2)
PLAN = PlanTuning(step_s=30.0)


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
