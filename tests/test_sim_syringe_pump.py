"""The syringe-pump physics twin: mechanics, line compliance, faults, lazy integration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.errors import PumpRefusedError, UncertainDeliveryError
from vasopilot.core.interfaces import LineSignalSource, Pump
from vasopilot.core.types import HostLossBehaviour, PumpAlarm, PumpState

BD50 = SyringeSpec(name="bd-plastipak-50", volume_ml=50, inner_diameter_mm=26.7,
                   compliance_ul_per_mmhg=1.0)
M5 = MechanicsSettings(lead_mm=0.8, steps_per_rev=200, microsteps=16, slack_ul=2.0)


def make(**kwargs: object) -> tuple[VirtualClock, SimSyringePump]:
    clock = VirtualClock()
    return clock, SimSyringePump(clock, BD50, M5, **kwargs)  # type: ignore[arg-type]


def test_microstep_moves_0_140_ul_with_50_ml_syringe_on_m5_lead_screw() -> None:
    # π·26.7²/4 = 559.9 mm² × 0.8 mm / (200 · 16) = 0.140 µL
    _, pump = make()
    assert pump.microstep_ul == pytest.approx(0.13998, abs=1e-5)


def test_satisfies_the_pump_and_line_signal_protocols() -> None:
    _, pump = make()
    assert isinstance(pump, Pump)
    assert isinstance(SimLineSignals(pump), LineSignalSource)


def test_rate_limits_follow_step_period_and_plunger_speed() -> None:
    _, pump = make()
    caps = pump.capabilities
    assert caps.min_rate_ml_h == pytest.approx(0.140e-3 * 360, rel=1e-3)  # 1 step per 10 s
    assert caps.max_rate_ml_h == pytest.approx(559.9 * 180 / 1000, rel=1e-3)  # 3 mm/min


def test_running_rate_is_quantised_down_never_up() -> None:
    _, pump = make()
    status = pump.set_rate(1.5004)
    assert 1.499 * (1 - 1e-4) <= status.rate_ml_h <= 1.500


def test_refuses_rates_outside_the_range_instead_of_clamping() -> None:
    _, pump = make()
    with pytest.raises(PumpRefusedError):
        pump.set_rate(0.01)
    with pytest.raises(PumpRefusedError):
        pump.set_rate(150.0)
    assert pump.status().state is PumpState.STOPPED


def test_real_flow_starts_minutes_late_at_1_ml_h_after_the_dead_band() -> None:
    clock, pump = make()
    pump.set_rate(1.0)
    q_ul_s = 1000.0 / 3600.0
    takeup_s = pump.band_ul / q_ul_s  # 2 µL slack + 0.1 mm × 559.9 mm² = 58 µL → 209 s
    assert takeup_s == pytest.approx(208.8, abs=0.5)
    clock.advance_to(takeup_s - 1.0)
    assert pump.outflow_volume_ml == 0.0
    # then the line charges by R·q with tau = C·R = 1 µL/mmHg · 1.8 mmHg/(µL/s) = 1.8 s
    clock.advance_to(takeup_s + 10 * 1.8)
    assert pump.outflow_ml_h == pytest.approx(1.0, rel=1e-3)
    assert pump.line_pressure_mmhg == pytest.approx(8.0 + 0.5 * 1.0, abs=1e-3)


def test_restart_after_a_stop_flows_without_a_second_takeup() -> None:
    clock, pump = make()
    pump.set_rate(10.0)
    clock.advance(120.0)
    pump.stop()
    clock.advance(600.0)
    pump.set_rate(10.0)
    clock.advance(30.0)
    assert pump.outflow_ml_h == pytest.approx(10.0, rel=1e-3)


def test_occlusion_pressure_climbs_by_pushed_volume_over_compliance() -> None:
    clock, pump = make()
    pump.set_rate(7.5)
    clock.advance(300.0)
    p0 = pump.line_pressure_mmhg
    pump.faults.occlude()
    out0 = pump.outflow_volume_ml
    clock.advance(60.0)
    pushed_ul = pump.status().rate_ml_h / 3.6 * 60.0  # 125 µL
    assert pump.line_pressure_mmhg - p0 == pytest.approx(pushed_ul / 1.0, rel=1e-6)
    assert pump.outflow_volume_ml == out0


def test_back_off_releases_the_stored_bolus_so_reopening_gives_none() -> None:
    clock, pump = make()
    pump.set_rate(7.5)
    clock.advance(300.0)
    pump.faults.occlude()
    clock.advance(120.0)
    pressure = pump.line_pressure_mmhg
    assert pressure > 250.0
    pump.stop()
    assert pump.back_off(BD50.compliance_ul_per_mmhg * pressure).state is PumpState.BACKING_OFF
    clock.advance(30.0)
    status = pump.status()
    assert status.state is PumpState.STOPPED
    assert status.line_pressure_mmhg == pytest.approx(0.0, abs=1e-6)
    out_before = pump.outflow_volume_ml
    pump.faults.clear_occlusion()
    clock.advance(60.0)
    assert pump.outflow_volume_ml == out_before  # no bolus reaches the patient on reopening


def test_occluded_motor_stalls_at_its_force_limit() -> None:
    clock, pump = make(stall_pressure_mmhg=600.0)
    pump.set_rate(20.0)
    clock.advance(60.0)
    pump.faults.occlude()
    clock.advance(3600.0)
    status = pump.status()
    assert status.stalled and status.alarm is PumpAlarm.STALL and status.state is PumpState.ALARM
    assert status.line_pressure_mmhg == pytest.approx(600.0, abs=1e-6)


def test_motor_stalled_by_line_pressure_can_still_back_off() -> None:
    clock, pump = make(stall_pressure_mmhg=600.0)
    pump.set_rate(20.0)
    clock.advance(60.0)
    pump.faults.occlude()
    clock.advance(3600.0)
    assert pump.status().stalled
    stored_ul = 600.0 * pump._compliance  # what the line stored at the stall
    pump.back_off(stored_ul)
    clock.advance(60.0)
    status = pump.status()
    assert not status.stalled and status.state is PumpState.STOPPED
    assert status.line_pressure_mmhg is not None and status.line_pressure_mmhg < 50.0


def test_jammed_motor_refuses_to_back_off() -> None:
    clock, pump = make()
    pump.set_rate(5.0)
    clock.advance(10.0)
    pump.faults.stall()
    with pytest.raises(PumpRefusedError, match="jammed"):
        pump.back_off(10.0)


def test_empty_syringe_stops_the_pump_with_an_alarm() -> None:
    clock, pump = make(fill_ml=0.5)
    pump.set_rate(10.0)
    clock.advance(3600.0)
    status = pump.status()
    assert status.state is PumpState.ALARM and status.alarm is PumpAlarm.EMPTY
    assert status.end_of_travel and status.syringe_remaining_ml == 0.0
    assert status.rate_ml_h == 0.0
    pump.stop()
    with pytest.raises(PumpRefusedError):
        pump.set_rate(10.0)


def test_infiltration_raises_pressure_with_the_flow_and_starves_the_patient() -> None:
    clock, pump = make()
    pump.set_rate(7.5)
    clock.advance(600.0)
    baseline = pump.line_pressure_mmhg
    out0 = pump.outflow_volume_ml
    pump.faults.infiltrate(rise_mmhg=20.0, over_s=600.0)
    clock.advance(600.0)
    after_10_min = pump.line_pressure_mmhg
    clock.advance(600.0)
    after_20_min = pump.line_pressure_mmhg
    # The resistance grows linearly: +20 mmHg at 7.5 mL/h per 10 min (less a lag of R·C).
    assert after_10_min - baseline == pytest.approx(20.0, abs=0.5)
    assert after_20_min - after_10_min == pytest.approx(20.0, abs=0.5)
    assert pump.outflow_volume_ml == out0
    assert pump.outflow_ml_h == 0.0
    pushed_ml = pump.status().rate_ml_h * 1200.0 / 3600.0
    held_in_line_ml = 1.0 * (after_20_min - baseline) / 1000.0
    assert pump.tissue_volume_ml == pytest.approx(pushed_ml - held_in_line_ml, rel=1e-6)
    # Pausing reveals the resistance: the pressure falls by Q·R, slowly (R·C is now long).
    pump.stop()
    clock.advance(20.0)
    fall = after_20_min - pump.line_pressure_mmhg
    assert 10.0 < fall < after_20_min - baseline


@pytest.mark.parametrize("ramp", [False, True])
def test_a_patient_side_disturbance_shifts_the_pressure_but_not_the_flow(ramp: bool) -> None:
    clock, pump = make()
    pump.set_rate(5.0)
    clock.advance(600.0)
    before = pump.line_pressure_mmhg
    out0 = pump.outflow_volume_ml
    shift = pump.faults.ramp_line if ramp else pump.faults.shift_line
    shift(-30.0, 120.0)
    clock.advance(60.0)
    assert pump.line_pressure_mmhg - before == pytest.approx(-15.0 if ramp else -30.0, abs=1e-6)
    assert pump.status().line_pressure_mmhg == pytest.approx(pump.line_pressure_mmhg)
    clock.advance(120.0)
    assert pump.line_pressure_mmhg - before == pytest.approx(-30.0 if ramp else 0.0, abs=1e-6)
    assert pump.outflow_volume_ml - out0 == pytest.approx(
        pump.status().rate_ml_h * 180.0 / 3600.0, rel=1e-6)


def test_a_disturbance_lasts_a_positive_time() -> None:
    _, pump = make()
    with pytest.raises(ValueError):
        pump.faults.shift_line(10.0, 0.0)


def test_stall_lever_stops_the_motor_and_raises_the_stall_signal() -> None:
    clock, pump = make()
    line = SimLineSignals(pump)
    pump.set_rate(5.0)
    clock.advance(10.0)
    pump.faults.stall()
    delivered = pump.status().delivered_ml
    clock.advance(60.0)
    status = pump.status()
    assert status.stalled and status.alarm is PumpAlarm.STALL
    assert status.delivered_ml == delivered
    assert line.read().stall
    with pytest.raises(PumpRefusedError):
        pump.set_rate(5.0)


def test_dropped_acknowledgement_acts_but_raises_uncertain_delivery() -> None:
    _, pump = make()
    pump.faults.drop_ack_next()
    with pytest.raises(UncertainDeliveryError):
        pump.set_rate(4.0)
    status = pump.status()
    assert status.state is PumpState.INFUSING and not status.delivery_uncertain
    assert status.rate_ml_h == pytest.approx(4.0, rel=1e-4)


def test_watchdog_stops_and_alarms_when_the_host_goes_silent() -> None:
    clock, pump = make(host_loss=HostLossBehaviour.STOPS_AND_ALARMS, watchdog_timeout_s=10.0)
    pump.set_rate(5.0)
    for _ in range(20):
        clock.advance(5.0)
        pump.heartbeat()
    assert pump.status().state is PumpState.INFUSING
    clock.advance(11.0)
    status = pump.status()
    assert status.state is PumpState.ALARM and status.alarm is PumpAlarm.HOST_TIMEOUT
    assert status.t_s == 111.0


def test_keeps_rate_when_host_goes_silent_if_so_built() -> None:
    clock, pump = make(host_loss=HostLossBehaviour.KEEPS_RATE)
    pump.set_rate(5.0)
    clock.advance(3600.0)
    assert pump.status().state is PumpState.INFUSING


def test_extravasation_sensor_trips_by_lever_or_by_tissue_volume() -> None:
    clock, pump = make()
    line = SimLineSignals(pump, sensor_threshold_ml=1.0)
    pump.set_rate(10.0)
    clock.advance(60.0)
    assert not line.read().extravasation_sensor
    pump.faults.infiltrate()
    clock.advance(300.0)  # 0.83 mL into tissue
    assert not line.read().extravasation_sensor
    clock.advance(120.0)
    assert line.read().extravasation_sensor
    manual = SimLineSignals(pump)
    manual.trip_extravasation_sensor()
    assert manual.read().extravasation_sensor


def _script(clock: VirtualClock, pump: SimSyringePump, tick_s: float) -> list[float]:
    """A day's worth of events, observed every ``tick_s``; returns the final state."""
    plan: list[tuple[float, str]] = [
        (0.0, "rate 1.0"), (900.0, "rate 7.5"), (2000.0, "occlude"), (2100.0, "stop"),
        (2101.0, "backoff"), (2200.0, "clear"), (2300.0, "rate 3.0"), (5000.0, "infiltrate"),
        (6000.0, "rate 12.0"), (9000.0, "end"),
    ]
    for t_s, action in plan:
        while clock.now_s() + tick_s <= t_s:
            clock.advance(tick_s)
            pump.advance()
        clock.advance_to(t_s)
        if action.startswith("rate"):
            pump.set_rate(float(action.split()[1]))
        elif action == "occlude":
            pump.faults.occlude()
        elif action == "clear":
            pump.faults.clear_occlusion()
        elif action == "stop":
            pump.stop()
        elif action == "backoff":
            pump.back_off(pump.line_pressure_mmhg)
        elif action == "infiltrate":
            pump.faults.infiltrate()
    status = pump.status()
    return [status.line_pressure_mmhg or 0.0, status.delivered_ml, status.syringe_remaining_ml,
            pump.outflow_volume_ml, pump.tissue_volume_ml]


def test_one_big_clock_jump_gives_the_same_state_as_many_small_ones() -> None:
    coarse = _script(*make(), tick_s=1e9)
    fine = _script(*make(), tick_s=0.5)
    assert fine == pytest.approx(coarse, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(0.1, 900.0),
                          st.sampled_from(["rate", "stop", "occlude", "clear", "backoff",
                                           "infiltrate"]),
                          st.floats(0.06, 90.0)), max_size=12))
def test_volume_is_conserved_between_stopper_line_and_downstream(
    steps: list[tuple[float, str, float]],
) -> None:
    clock, pump = make(stall_pressure_mmhg=1e9)
    for dt_s, action, value in steps:
        clock.advance(dt_s)
        if action == "rate":
            pump.set_rate(value)
        elif action == "stop":
            pump.stop()
        elif action == "occlude":
            pump.faults.occlude()
        elif action == "clear":
            pump.faults.clear_occlusion()
        elif action == "backoff":
            pump.back_off(value)
        else:
            pump.faults.infiltrate()
    clock.advance(100.0)
    status = pump.status()
    stopper_ul = (50.0 - status.syringe_remaining_ml) * 1000.0
    stored_ul = BD50.compliance_ul_per_mmhg * ((status.line_pressure_mmhg or 0.0) - 8.0)
    downstream_ul = (pump.outflow_volume_ml + pump.tissue_volume_ml) * 1000.0
    assert stopper_ul == pytest.approx(downstream_ul + stored_ul, abs=1e-6)
