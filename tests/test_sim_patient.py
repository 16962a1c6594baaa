"""The virtual patient: line dead volume, PK/PD, disease course, beats and artefacts."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

from drivers.sim.patient import PatientParams, VirtualPatient
from vasopilot.core.interfaces import BeatSource

CONC = 80.0

QUIET = PatientParams(
    stratum="typical", floor_mmhg=65.0, weight_kg=70.0, dead_volume_ml=1.0,
    carrier_ml_h=0.0, input_lag_s=20.0, cl_l_min=2.0, v_l=8.4, q_endo_mcg_min=1.0,
    ke0_per_min=0.5, emax_mmhg=50.0, ec50_ng_ml=5.0, ec50_factor=1.0, gamma=1.4,
    map0_mmhg=50.0, ou_tau_min=10.0, ou_sigma_mmhg=0.0, recovery_mmhg=0.0, recovery_h=24.0,
    rebound_mmhg=0.0, rebound_tau_min=30.0, hr_bpm=90.0, hr_variability=0.02,
    pulse_pressure_mmhg=45.0, resp_rate_per_min=15.0, resp_variation_mmhg=3.0,
    noise_sd_mmhg=1.5, transducer_height_cm=0.0, calibration_gain=1.0,
)


def run(patient: VirtualPatient, until_s: float, rate_ml_h: float, tick_s: float = 0.5) -> None:
    t = patient.t_s
    while t < until_s - 1e-9:
        t = min(until_s, t + tick_s)
        patient.step(t, rate_ml_h, CONC)


def test_satisfies_the_beat_source_protocol() -> None:
    assert isinstance(VirtualPatient(QUIET, "resuscitate", seed=1), BeatSource)


def test_plasma_level_settles_at_dose_plus_endogenous_over_clearance() -> None:
    patient = VirtualPatient(QUIET, "resuscitate", seed=1)
    run(patient, 3 * 3600.0, rate_ml_h=7.5)  # 10 mcg/min at 80 mcg/mL
    assert patient.plasma_conc_ng_ml == pytest.approx((10.0 + 1.0) / 2.0, rel=1e-3)
    assert patient.effect_conc_ng_ml == pytest.approx(patient.plasma_conc_ng_ml, rel=1e-3)


def test_starts_at_the_endogenous_level_without_drug() -> None:
    patient = VirtualPatient(QUIET, "resuscitate", seed=1)
    assert patient.plasma_conc_ng_ml == pytest.approx(0.5)
    assert patient.true_map_mmhg == pytest.approx(QUIET.map0_mmhg)


def _washout_63pct_min(params: PatientParams, rate_ml_h: float) -> float:
    patient = VirtualPatient(params, "resuscitate", seed=1)
    dose = rate_ml_h * CONC / 60.0
    t = 0.0
    while patient.delivered_rate_mcg_min < (1.0 - math.exp(-1.0)) * dose:
        t += 0.5
        patient.step(t, rate_ml_h, CONC)
    return t / 60.0


def test_dead_volume_washes_out_in_13_min_at_4_5_ml_h_and_4_min_with_carrier() -> None:
    # tau = V_d / (q + Q_c): 1 mL / 0.075 mL/min = 13.3 min; with 10 mL/h carrier 4.1 min
    assert _washout_63pct_min(QUIET, 4.5) == pytest.approx(13.33, abs=0.05)
    with_carrier = replace(QUIET, carrier_ml_h=10.0)
    assert _washout_63pct_min(with_carrier, 4.5) == pytest.approx(4.14, abs=0.05)


def test_starting_a_carrier_flushes_a_bolus_out_of_the_dead_volume() -> None:
    patient = VirtualPatient(QUIET, "resuscitate", seed=1)
    run(patient, 6 * 3600.0, rate_ml_h=1.5, tick_s=5.0)  # 2 mcg/min; washout tau 40 min
    assert patient.delivered_rate_mcg_min == pytest.approx(2.0, rel=1e-3)
    patient.carrier_ml_h = 20.0
    run(patient, 6 * 3600.0 + 5.0, rate_ml_h=1.5)
    # the line held 2 mcg/min · 1 mL / 0.025 mL/min = 80 mcg, now washed out at 0.358 /min
    assert patient.delivered_rate_mcg_min == pytest.approx(80.0 * 0.358, rel=0.03)


def test_drug_reaches_the_plasma_only_after_the_input_lag() -> None:
    patient = VirtualPatient(replace(QUIET, carrier_ml_h=20.0, dead_volume_ml=0.3),
                             "resuscitate", seed=1)
    run(patient, 19.5, rate_ml_h=7.5)
    assert patient.plasma_conc_ng_ml == pytest.approx(0.5, abs=1e-9)
    run(patient, 40.0, rate_ml_h=7.5)
    assert patient.plasma_conc_ng_ml > 0.55


def test_holding_the_computed_need_brings_map_to_the_set_point() -> None:
    need = QUIET.need_mcg_min()
    patient = VirtualPatient(QUIET, "resuscitate", seed=1)
    run(patient, 4 * 3600.0, rate_ml_h=need * 60.0 / CONC, tick_s=5.0)
    assert patient.true_map_mmhg == pytest.approx(QUIET.setpoint_mmhg, abs=0.05)


def test_wean_starts_in_steady_state_at_target_on_its_initial_dose() -> None:
    dose = QUIET.need_mcg_min()
    params = replace(QUIET, initial_dose_mcg_min=dose)
    patient = VirtualPatient(params, "wean", seed=2, conc_mcg_ml=CONC)
    assert patient.true_map_mmhg == pytest.approx(QUIET.setpoint_mmhg, abs=1e-6)
    run(patient, 1800.0, rate_ml_h=dose * 60.0 / CONC)
    assert patient.true_map_mmhg == pytest.approx(QUIET.setpoint_mmhg, abs=0.01)


def test_rebound_leaves_map_below_baseline_after_a_long_infusion_stops() -> None:
    params = replace(QUIET, rebound_mmhg=8.0, rebound_tau_min=30.0, carrier_ml_h=10.0)
    patient = VirtualPatient(params, "resuscitate", seed=1)
    run(patient, 6 * 3600.0, rate_ml_h=15.0, tick_s=5.0)  # 20 mcg/min: 80 % suppressed
    run(patient, 6 * 3600.0 + 2700.0, rate_ml_h=0.0, tick_s=5.0)
    # drug flushed from the line (tau 6 min) and plasma (t½ 2.9 min) within 45 min; own tone
    # has begun to recover, but no faster than a pure 30 min decay would allow
    assert patient.plasma_conc_ng_ml == pytest.approx(0.5, abs=0.01)
    assert 50.0 - 8.0 * 0.8 < patient.true_map_mmhg < 50.0 - 8.0 * 0.8 * math.exp(-1.5)
    run(patient, 12 * 3600.0, rate_ml_h=0.0, tick_s=5.0)
    assert patient.true_map_mmhg == pytest.approx(QUIET.map0_mmhg, abs=0.05)


def test_recovery_trend_raises_map0_by_its_amplitude_over_its_duration() -> None:
    params = replace(QUIET, recovery_mmhg=20.0, recovery_h=2.0)
    patient = VirtualPatient(params, "resuscitate", seed=1)
    run(patient, 3600.0, rate_ml_h=0.0, tick_s=10.0)
    assert patient.map0_mmhg == pytest.approx(60.0, abs=1e-6)  # smoothstep midpoint
    run(patient, 3 * 3600.0, rate_ml_h=0.0, tick_s=10.0)
    assert patient.map0_mmhg == pytest.approx(70.0, abs=1e-6)


def test_disturbance_scenario_has_two_hypotensive_and_one_hypertensive_event() -> None:
    patient = VirtualPatient(QUIET, "disturbance", seed=5)
    signs = sorted(math.copysign(1, e.amplitude_mmhg) for e in patient.events)
    assert signs == [-1, -1, 1]
    assert all(-20 <= e.amplitude_mmhg <= 15 and e.start_t_s < 3 * 3600 for e in patient.events)
    assert VirtualPatient(QUIET, "resuscitate", seed=5).events == []


def test_trajectory_does_not_depend_on_how_time_is_chunked() -> None:
    noisy = replace(QUIET, ou_sigma_mmhg=4.0)
    fine = VirtualPatient(noisy, "disturbance", seed=9)
    coarse = VirtualPatient(noisy, "disturbance", seed=9)
    run(fine, 3600.0, rate_ml_h=6.0, tick_s=0.5)
    run(coarse, 3600.0, rate_ml_h=6.0, tick_s=7.3)
    assert coarse.true_map_mmhg == pytest.approx(fine.true_map_mmhg, abs=1e-9)
    fine_beats, coarse_beats = fine.read_beats(), coarse.read_beats()
    assert len(fine_beats) == len(coarse_beats) > 4000
    for a, b in zip(fine_beats, coarse_beats, strict=True):
        assert (a.t_s, a.map_mmhg, a.sbp_mmhg, a.quality) == pytest.approx(
            (b.t_s, b.map_mmhg, b.sbp_mmhg, b.quality), abs=1e-9)


def test_same_seed_same_patient_course_and_other_seed_another() -> None:
    noisy = replace(QUIET, ou_sigma_mmhg=4.0)
    maps = []
    for seed in (3, 3, 4):
        patient = VirtualPatient(noisy, "resuscitate", seed=seed)
        run(patient, 1800.0, rate_ml_h=0.0, tick_s=1.0)
        maps.append(patient.true_map_mmhg)
    assert maps[0] == maps[1] != maps[2]


def test_beats_come_at_heart_rate_and_centre_on_true_map_plus_offsets() -> None:
    params = replace(QUIET, transducer_height_cm=5.0, calibration_gain=1.05)
    patient = VirtualPatient(params, "resuscitate", seed=1)
    run(patient, 600.0, rate_ml_h=0.0)
    beats = patient.read_beats()
    assert len(beats) == pytest.approx(90 * 10, rel=0.03)
    assert all(b.is_good and b.sbp_mmhg > b.map_mmhg > b.dbp_mmhg for b in beats)
    expected = 1.05 * 50.0 + 0.74 * 5.0
    assert statistics.fmean(b.map_mmhg for b in beats) == pytest.approx(expected, abs=0.3)
    assert statistics.fmean(b.sbp_mmhg - b.dbp_mmhg for b in beats) == pytest.approx(
        1.05 * 45.0, abs=1.0)
    assert patient.read_beats() == []


def test_artefact_beats_carry_corrupted_values_and_the_artefact_as_quality() -> None:
    patient = VirtualPatient(QUIET, "resuscitate", seed=1)
    patient.inject("flush", 60.0, 3.0)
    patient.inject("zeroing", 120.0, 15.0)
    patient.inject("damping", 200.0, 60.0)
    patient.inject("sensor_loss", 300.0, 30.0)
    run(patient, 400.0, rate_ml_h=0.0)
    beats = patient.read_beats()

    def during(start: float, end: float) -> list[float]:
        return [b.map_mmhg for b in beats if start <= b.t_s < end]

    assert {b.quality for b in beats if 60 <= b.t_s < 63} == {"flush"}
    assert min(during(60, 63)) > 280
    assert {b.quality for b in beats if 120 <= b.t_s < 135} == {"zeroing"}
    assert max(abs(m) for m in during(120, 135)) < 3
    damped = [b for b in beats if 200 <= b.t_s < 260]
    assert {b.quality for b in damped} == {"damping"}
    assert max(b.sbp_mmhg - b.dbp_mmhg for b in damped) < 0.3 * 45
    assert abs(statistics.fmean(b.map_mmhg for b in damped) - 50.0) <= 5.0 + 1.0
    assert during(300, 330) == []
    assert all(b.is_good for b in beats if 400 > b.t_s >= 330)
    assert patient.artefact_active(310.0) == "sensor_loss"
    assert patient.artefact_active(290.0) is None


def test_random_artefacts_are_seeded_and_come_at_the_asked_rate() -> None:
    first = VirtualPatient(QUIET, "resuscitate", seed=1).random_artefacts(6.0, seed=11,
                                                                          until_t_s=100 * 3600.0)
    again = VirtualPatient(QUIET, "resuscitate", seed=1).random_artefacts(6.0, seed=11,
                                                                          until_t_s=100 * 3600.0)
    assert first == again
    assert len(first) == pytest.approx(600, rel=0.12)
