"""Cohort benchmark: the floor-anchored yardstick, weaning against the held arm, the contract."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vasopilot.cli import main
from vasopilot.cohort import (
    STRATA,
    BenchOptions,
    CohortSummary,
    PatientOutcome,
    climb_blocked_s,
    out_of_reach_without_rebound,
    run_cohort,
    summarize,
)
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import AlarmCleared, AlarmCode, AlarmRaised, DoseApplied, Event
from vasopilot.core.types import Priority, Requester
from vasopilot.metrics import (
    DoseChange,
    WeanMetrics,
    artefact_increases,
    episodes_below,
    map_metrics,
    wean_metrics,
)
from vasopilot.rig.sim import draw_patients

CONTRACT_KEYS = {
    "controller", "scenario", "stratum", "patients", "tib_pct", "tib_p25_pct",
    "below_floor_pct", "below_floor5_pct", "above_pct", "mdpe_pct", "mdape_pct", "wobble_pct",
    "divergence_pct_per_h", "time_to_floor_min", "time_to_floor_ratio", "dose_changes_per_h",
    "total_drug_mcg_per_kg", "true_tib_pct", "true_below_floor_pct", "artefact_increases",
    "diverged", "tib_ratio_to_clairvoyant", "avoidable_deficit_mmhg_min", "event_recovery_min",
    "weanable", "wean_excess_h", "not_weaned_pct", "weaned_unweanable", "excess_rebound_low5",
    "excess_rebound_low5_p90", "excess_rebound_floor", "wean_ratio_to_protocol",
}


def test_counts_only_increases_made_during_an_artefact() -> None:
    changes = [DoseChange(10.0, 5.0, 6.0), DoseChange(50.0, 6.0, 7.0), DoseChange(55.0, 7.0, 6.0)]
    assert artefact_increases(changes, [(40.0, 60.0)]) == 1
    assert artefact_increases(changes, []) == 0


def _applied(t_s: float, before: float, after: float) -> DoseApplied:
    return DoseApplied(t_s=t_s, previous_dose_mcg_min=before, dose_mcg_min=after,
                       rate_ml_h=after * 60.0 / 160.0, requester=Requester.CONTROLLER,
                       reason="test")


def test_the_climb_is_blocked_by_artefacts_and_by_a_volume_check_only_at_the_soft_max() -> None:
    check = AlarmCode.VOLUME_CHECK
    events: list[Event] = [
        # a check raised at 20 mcg/min blocks nothing: the next step stays under the soft max
        AlarmRaised(t_s=100.0, code=check, priority=Priority.MEDIUM, message="check"),
        AlarmCleared(t_s=400.0, code=check),
        _applied(500.0, 27.0, 29.0),
        # from 29 the next step passes the soft maximum (30): the open check blocks it
        AlarmRaised(t_s=600.0, code=check, priority=Priority.MEDIUM, message="check"),
        AlarmCleared(t_s=900.0, code=check),
        _applied(1000.0, 29.0, 31.0),
        AlarmRaised(t_s=1200.0, code=check, priority=Priority.MEDIUM, message="check"),
    ]
    # an artefact inside the check's span counts once; one alone counts; the open check runs
    # until the end asked for
    artefacts = [(650.0, 700.0), (1100.0, 1150.0)]
    assert climb_blocked_s(events, artefacts, 1500.0) == pytest.approx(300.0 + 50.0 + 300.0)
    assert climb_blocked_s(events, artefacts, 800.0) == pytest.approx(200.0)
    assert climb_blocked_s([], [], 800.0) == 0.0


def test_a_low_episode_must_last_a_minute() -> None:
    t = list(range(300))
    m = [70.0] * 100 + [58.0] * 59 + [70.0] * 41 + [58.0] * 61 + [70.0] * 39
    assert episodes_below(t, m, 60.0) == [(200.0, 260.0)]


def test_induction_ends_when_the_floor_has_held_a_minute_and_maintenance_is_scored_after() -> None:
    # a 30 s touch of the floor at 100 s is not the end of induction; the hold from 200 s is
    t = list(range(1000))
    m = [50.0] * 100 + [66.0] * 30 + [60.0] * 70 + [70.0] * 400 + [62.0] * 100 + [80.0] * 300
    metrics = map_metrics(t, m, 65.0)
    assert metrics.time_to_floor_min == pytest.approx(200.0 / 60.0)
    assert metrics.tib_pct == pytest.approx(50.0)  # 400 of the 800 s of maintenance
    assert metrics.below_floor_pct == pytest.approx(12.5)
    assert metrics.below_floor5_pct == 0.0
    assert metrics.above_pct == 0.0  # 80 is not above F + 20
    assert metrics.hypotension_episodes == 1
    assert metrics.mdpe_pct == pytest.approx(0.0)  # the set-point is F + 5
    assert metrics.induction_deficit_mmhg_min > 0.0


def test_a_patient_who_never_holds_the_floor_is_below_it_all_run() -> None:
    metrics = map_metrics(list(range(600)), [60.0] * 600, 65.0)
    assert metrics.time_to_floor_min is None
    assert metrics.below_floor_pct == 100.0 and metrics.tib_pct == 0.0


def test_an_event_is_scored_from_onset_to_recovery_and_its_deficit_over_its_window() -> None:
    t = list(range(0, 7200, 2))
    m = [70.0 if x < 1000 or x >= 1600 else 60.0 for x in t]
    (event,) = map_metrics(t, m, 65.0, events=[(1000.0, 1300.0, -15.0)]).events
    assert event.recovery_min == pytest.approx(10.0)
    assert event.deficit_mmhg_min == pytest.approx(5.0 * 10.0, rel=0.01)
    assert event.overshoot_pct == 0.0


def test_wean_ends_when_the_dose_stays_at_the_final_step() -> None:
    t = list(range(0, 20_000, 10))
    m = [70.0] * len(t)
    changes = [DoseChange(3600.0, 4.0, 2.0), DoseChange(5400.0, 2.0, 1.0),
               DoseChange(6000.0, 1.0, 2.0), DoseChange(9000.0, 2.0, 1.0),
               DoseChange(12_600.0, 1.0, 0.0)]
    metrics = wean_metrics(t, m, m, changes, floor_mmhg=65.0, start_t_s=0.0,
                           final_dose_mcg_min=1.0)
    assert metrics.off_h == pytest.approx(2.5)
    assert metrics.decrements == 4
    assert metrics.excess_rebound_low5 == metrics.excess_rebound_floor == 0


def test_a_rebound_counts_only_after_a_decrement_and_only_if_the_held_arm_had_none() -> None:
    t = list(range(0, 20_000, 2))

    def dip(at_s: float, depth: float, length_s: float) -> list[float]:
        return [70.0 - depth if at_s <= x < at_s + length_s else 70.0 for x in t]

    changes = [DoseChange(3000.0, 5.0, 4.0)]
    # 3 min at F - 7 within the hour after the decrement, none in the held arm: one of each
    wean = dip(4000.0, 12.0, 180.0)
    held = [70.0] * len(t)
    both = wean_metrics(t, wean, held, changes, floor_mmhg=65.0, start_t_s=0.0,
                        final_dose_mcg_min=1.0)
    assert (both.excess_rebound_low5, both.excess_rebound_floor) == (1, 1)
    # the same dip in the held arm is the disease, not the wean
    same = wean_metrics(t, wean, wean, changes, floor_mmhg=65.0, start_t_s=0.0,
                        final_dose_mcg_min=1.0)
    assert (same.excess_rebound_low5, same.excess_rebound_floor) == (0, 0)
    # two hours after the decrement it is not a rebound of it
    late = wean_metrics(t, dip(11_000.0, 12.0, 180.0), held, changes, floor_mmhg=65.0,
                        start_t_s=0.0, final_dose_mcg_min=1.0)
    assert late.excess_rebound_low5 == 0
    # 90 s under the floor (not F - 5) is not an episode
    short = wean_metrics(t, dip(4000.0, 3.0, 90.0), held, changes, floor_mmhg=65.0,
                         start_t_s=0.0, final_dose_mcg_min=1.0)
    assert (short.excess_rebound_low5, short.excess_rebound_floor) == (0, 0)


def _weaned(index: int, *, weanable: bool, off_h: float | None,
            ratio: float | None) -> PatientOutcome:
    scored = map_metrics(list(range(0, 3600, 2)), [70.0] * 1800, 65.0)
    return PatientOutcome(
        controller="closed-loop", index=index, stratum="typical", weight_kg=70.0,
        need_mcg_min=12.0, out_of_reach=False, monitor=scored, true=scored,
        total_drug_mcg_per_kg=1.0, dose_changes_per_h=1.0, artefact_increases=0,
        wean=WeanMetrics(off_h=off_h, decrements=3, excess_rebound_low5=0,
                         excess_rebound_floor=0),
        weanable=weanable, wean_excess_h=0.5 if weanable else None,
        wean_ratio_to_protocol=ratio, trace_mmhg=[])


def test_the_wean_ratio_and_the_wean_counts_are_over_the_weanable_patients() -> None:
    outcomes = [_weaned(0, weanable=True, off_h=3.0, ratio=0.4),
                _weaned(1, weanable=True, off_h=None, ratio=0.5),
                _weaned(2, weanable=True, off_h=4.0, ratio=0.6),
                # unweanable: kept on his drug, or weaned anyway; a ratio they carry is left out
                _weaned(3, weanable=False, off_h=None, ratio=1.0),
                _weaned(4, weanable=False, off_h=6.0, ratio=1.67)]
    line = summarize(outcomes, "closed-loop", "wean")
    assert line.weanable == 3
    assert line.wean_ratio_to_protocol == pytest.approx(0.5)
    assert line.not_weaned_pct == pytest.approx(100.0 / 3)
    assert line.weaned_unweanable == 1


@pytest.mark.timeout(300)
def test_the_out_of_reach_split_counts_the_need_with_the_patients_own_tone_intact() -> None:
    hard_max = NOREPINEPHRINE.hard_max
    patient = next(p for p in draw_patients(40, 1, "resuscitate")
                   if p.need_mcg_min() < hard_max / 2 and p.rebound_mmhg > 0)
    # a rebound deep enough puts it out of the hard maximum's reach for good, and only then
    deep = dataclasses.replace(patient, rebound_mmhg=100.0)
    assert deep.steady_need_mcg_min() > hard_max
    assert not out_of_reach_without_rebound(deep)
    # a patient the hard maximum cannot hold even with its own tone is out of reach either way
    weak = dataclasses.replace(patient, ec50_factor=patient.ec50_factor * 1e3)
    assert out_of_reach_without_rebound(weak) and weak.steady_need_mcg_min() > hard_max


def test_closed_loop_beats_the_protocol_in_band_in_a_small_cohort() -> None:
    outcomes = run_cohort(BenchOptions(patients=4, seed=3, hours=1.5, workers=1))
    loop = summarize(outcomes, "closed-loop", "resuscitate")
    protocol = summarize(outcomes, "protocol", "resuscitate")
    assert loop.patients == protocol.patients == 4
    assert loop.tib_pct is not None and protocol.tib_pct is not None
    assert loop.tib_pct > protocol.tib_pct
    assert loop.artefact_increases == 0


@pytest.mark.timeout(300)
def test_json_prints_one_line_per_controller_and_stratum_with_exactly_the_contract_keys(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "closed-loop", "--cohort", "2", "--hours", "0.25", "--workers", "1",
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["controller"], line["stratum"]) for line in lines] == [
        (c, s) for c in ("closed-loop", "protocol") for s in STRATA]
    assert all(set(line) == CONTRACT_KEYS for line in lines)
    assert set(CohortSummary.model_fields) == CONTRACT_KEYS
    everyone = lines[0]
    assert everyone["patients"] == 2
    # resuscitate has no disturbance or wean figures, and no references ran
    assert everyone["avoidable_deficit_mmhg_min"] is None and everyone["weanable"] is None
    assert everyone["time_to_floor_ratio"] is None


def test_a_bad_cohort_size_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "closed-loop", "--cohort", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
