"""The controller's faster paths give the very numbers of the plain ones, bit for bit: a
last-bit difference in a forecast can flip a decision, so "close" is not enough. Each plain
path is written out here as the reference it replaced (one model at a time, one plan at a
time, one sample at a time)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vasopilot.control.mpc import (
    MpcTuning,
)
from vasopilot.control.planner import PlanLimits, PlanTuning, _candidate_plans, candidate_plans

TUNING = MpcTuning()
LIMITS = PlanLimits(up_step_mcg_min=2.0, up_interval_s=120.0, down_step_mcg_min=2.0,
                    hard_max_mcg_min=60.0, up_step_ratio=0.2, down_step_ratio=0.2)
PLAN = PlanTuning(step_s=30.0)


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
