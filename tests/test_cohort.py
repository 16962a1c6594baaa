"""Cohort benchmark: metrics of dosing, artefacts and weaning, and a small seeded smoke run."""

from __future__ import annotations

import json

import pytest

from vasopilot.cli import main
from vasopilot.cohort import BenchOptions, run_cohort, summarize
from vasopilot.metrics import (
    DoseChange,
    artefact_increases,
    episodes_below,
    map_metrics,
    wean_metrics,
)


def test_counts_only_increases_made_during_an_artefact() -> None:
    changes = [DoseChange(10.0, 5.0, 6.0), DoseChange(50.0, 6.0, 7.0), DoseChange(55.0, 7.0, 6.0)]
    assert artefact_increases(changes, [(40.0, 60.0)]) == 1
    assert artefact_increases(changes, []) == 0


def test_a_low_episode_must_last_a_minute() -> None:
    t = list(range(300))
    m = [70.0] * 100 + [58.0] * 59 + [70.0] * 41 + [58.0] * 61 + [70.0] * 39
    assert episodes_below(t, m, 60.0) == [(200.0, 260.0)]


def test_wean_ends_when_the_dose_stays_at_the_final_step() -> None:
    t = list(range(0, 20_000, 10))
    m = [70.0] * len(t)
    changes = [DoseChange(3600.0, 4.0, 2.0), DoseChange(5400.0, 2.0, 1.0),
               DoseChange(6000.0, 1.0, 2.0), DoseChange(9000.0, 2.0, 1.0),
               DoseChange(12_600.0, 1.0, 0.0)]
    metrics = wean_metrics(t, m, changes, start_t_s=0.0, final_dose_mcg_min=1.0)
    assert metrics.wean_hours == pytest.approx(2.5)
    assert metrics.rebound_episodes == 0 and metrics.decrements == 4
    assert metrics.decrements_followed_by_low_pct == 0.0


def test_a_wean_that_never_gets_down_has_no_duration() -> None:
    metrics = wean_metrics([0.0, 1.0], [70.0, 70.0], [DoseChange(0.5, 10.0, 9.0)],
                           start_t_s=0.0, final_dose_mcg_min=1.0)
    assert metrics.wean_hours is None


@pytest.mark.timeout(120)
def test_closed_loop_beats_the_protocol_on_time_in_target_in_a_small_cohort() -> None:
    outcomes = run_cohort(BenchOptions(patients=4, seed=3, hours=1.5, workers=1))
    loop = summarize(outcomes, "closed-loop", "resuscitate")
    protocol = summarize(outcomes, "protocol", "resuscitate")
    assert loop.patients == protocol.patients == 4
    assert loop.time_in_target_pct is not None and protocol.time_in_target_pct is not None
    assert loop.time_in_target_pct > protocol.time_in_target_pct
    assert loop.artefact_increases == 0


@pytest.mark.timeout(120)
def test_json_prints_one_line_per_controller_with_the_contract_keys(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "closed-loop", "--cohort", "1", "--hours", "0.25", "--workers", "1",
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["controller"] for line in lines] == ["closed-loop", "protocol"]
    assert {"scenario", "patients", "time_in_target_pct", "wean_hours", "rebound_episodes",
            "artefact_increases", "diverged"} <= set(lines[0])
    assert lines[0]["wean_hours"] is None


def test_minutes_below_65_after_target_ignore_the_initial_climb() -> None:
    t = list(range(400))
    m = [50.0] * 100 + [66.0] * 200 + [63.0] * 100
    metrics = map_metrics(t, m, 65.0)
    assert metrics.map_below_65_pct == pytest.approx(50.0)
    assert metrics.map_below_65_after_target_pct == pytest.approx(100.0 / 3.0)


@pytest.mark.timeout(120)
def test_bound_adds_a_table_column_and_floors_but_keeps_the_json_contract(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "closed-loop", "--cohort", "1", "--hours", "0.25", "--workers", "1",
            "--bound"]
    assert main([*args, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["controller"] for line in lines] == ["closed-loop", "protocol"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "perfect" in table and "information" in table  # the column header, wrapped
    assert "floor_map_below_65_pct" in table
