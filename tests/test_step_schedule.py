import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.pump.step_schedule import Direction, StepSchedule
from vasopilot.core.units import UL_PER_ML, volume_per_microstep_ul

# BD Plastipak 50 mL on an M5 lead screw, 200 steps/rev, 16 microsteps: 0.140 µL per microstep.
UL_PER_STEP = volume_per_microstep_ul(26.7, 0.8, 200, 16)


def step_hz(rate_ml_h: float) -> float:
    return rate_ml_h * UL_PER_ML / 3600.0 / UL_PER_STEP


def test_spreads_steps_evenly_at_a_constant_rate() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 4.0)
    assert schedule.take_due(1.0) == pytest.approx([0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("rate_ml_h", [1.0, 5.0, 20.0, 60.0])
def test_does_not_drift_over_an_hour(rate_ml_h: float) -> None:
    hz = step_hz(rate_ml_h)
    schedule = StepSchedule()
    schedule.set_rate(0.0, hz)
    times = schedule.take_due(3600.0)
    assert len(times) == math.floor(hz * 3600.0)
    worst_s = max(abs(t - (k + 1) / hz) for k, t in enumerate(times))
    assert worst_s < 1e-9
    delivered_ml = len(times) * UL_PER_STEP / UL_PER_ML
    assert abs(delivered_ml - rate_ml_h) < UL_PER_STEP / UL_PER_ML


def test_rate_change_takes_effect_at_the_next_step_without_a_pause() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 1.0)
    assert schedule.take_due(2.5) == [1.0, 2.0]
    # Half a step is owed at 2.5 s; at 10 steps/s it is paid off 0.05 s later.
    schedule.set_rate(2.5, 10.0)
    assert schedule.next_step_s() == pytest.approx(2.55)


def test_stop_keeps_the_owed_fraction_for_the_restart() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 2.0)
    schedule.take_due(1.25)
    schedule.set_rate(1.25, 0.0)
    assert schedule.next_step_s() is None
    schedule.set_rate(100.0, 2.0)
    assert schedule.next_step_s() == pytest.approx(100.25)


def test_halt_forgives_refused_steps() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 10.0)
    schedule.stop(50.0)
    schedule.set_rate(60.0, 10.0)
    assert schedule.take_due(60.0) == []
    assert schedule.next_step_s() == pytest.approx(60.1)


def test_direction_change_starts_a_fresh_run_and_moves_position_back() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 2.0)
    schedule.take_due(2.9)
    assert schedule.position_steps == 5
    schedule.set_rate(2.9, 10.0, Direction.WITHDRAW, max_steps=3)
    assert schedule.take_due(100.0) == pytest.approx([3.0, 3.1, 3.2])
    assert schedule.run_complete
    assert schedule.position_steps == 2


def test_step_budget_ends_the_run() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 100.0, max_steps=7)
    assert len(schedule.take_due(60.0)) == 7
    assert schedule.next_step_s() is None


def test_a_late_caller_catches_up_instead_of_losing_steps() -> None:
    schedule = StepSchedule()
    schedule.set_rate(0.0, 10.0)
    schedule.set_rate(1.0, 1.0)
    assert len(schedule.take_due(1.0)) == 10


def test_refuses_negative_rates_and_backwards_time() -> None:
    schedule = StepSchedule(t_s=5.0)
    with pytest.raises(ValueError, match="rate"):
        schedule.set_rate(5.0, -1.0)
    with pytest.raises(ValueError, match="backwards"):
        schedule.set_rate(4.0, 1.0)
    with pytest.raises(RuntimeError):
        schedule.pop_step()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.001, max_value=30.0),
            st.floats(min_value=0.0, max_value=200.0),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_issued_steps_lag_the_commanded_volume_by_less_than_one_step(
    changes: list[tuple[float, float]],
) -> None:
    schedule = StepSchedule()
    t_s = 0.0
    for dt_s, rate_hz in changes:
        t_s += dt_s
        # Probe halfway through each segment as well as at its end.
        for probe_s in (t_s - dt_s / 2, t_s):
            schedule.take_due(probe_s)
            owed = schedule.commanded_steps(probe_s) - schedule.issued_steps
            assert -1e-6 <= owed < 1.0 + 1e-6
        schedule.set_rate(t_s, rate_hz)
