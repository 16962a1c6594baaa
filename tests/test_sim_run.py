"""`vasopilot sim`: the whole rig on a virtual patient, end to end."""

import json
from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.core.events import DoseApplied, DoseRefused, RunStarted
from vasopilot.journal import JournalReader
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

SUMMARY_KEYS = {"scenario", "hours", "seed", "time_in_target_pct", "map_below_65_pct",
                "total_drug_mcg", "alarms", "dose_changes", "stops"}


def test_json_summary_has_exactly_the_contract_keys(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--scenario", "resuscitate", "--hours", "0.5", "--seed", "3", "--json",
                 "--out", str(tmp_path)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert set(summary) == SUMMARY_KEYS
    assert summary["scenario"] == "resuscitate"
    assert summary["hours"] == 0.5
    assert summary["seed"] == 3
    assert summary["total_drug_mcg"] > 0
    assert summary["stops"] == []  # a run without faults, nothing to stop for
    assert (tmp_path / "sim-resuscitate-seed3.png").stat().st_size > 10_000


def test_journal_of_a_run_holds_its_start_and_doses(tmp_path: Path) -> None:
    assert main(["sim", "--hours", "0.5", "--json", "--out", str(tmp_path), "--no-plot"]) == 0
    with JournalReader(tmp_path / "sim-resuscitate-seed1.sqlite") as journal:
        events = list(journal.iter_events())
    assert isinstance(events[0], RunStarted)
    doses = [e for e in events if isinstance(e, DoseApplied)]
    assert doses[0].dose_mcg_min == 10.0
    assert [e.seq for e in events] == sorted(e.seq for e in events if e.seq is not None)
    assert not (tmp_path / "sim-resuscitate-seed1.png").exists()


def test_same_seed_gives_the_same_run() -> None:
    config = load_rig(None)
    first = run_sim(config, SimOptions(hours=0.5, seed=7))
    second = run_sim(config, SimOptions(hours=0.5, seed=7))
    assert first.summary == second.summary
    assert first.true_map == second.true_map


def test_protocol_raises_dose_for_a_hypotensive_patient() -> None:
    result = run_sim(load_rig(None), SimOptions(hours=1.0, seed=1))
    doses = [e.dose_mcg_min for e in result.events if isinstance(e, DoseApplied)]
    assert max(doses) > doses[0]
    assert all(d <= 60.0 for d in doses)
    assert result.true_map[-1][1] > result.true_map[0][1]


def test_wean_scenario_takes_over_a_running_infusion_and_lowers_it() -> None:
    result = run_sim(load_rig(None), SimOptions(scenario="wean", hours=3.0, seed=2))
    doses = [e.dose_mcg_min for e in result.events if isinstance(e, DoseApplied)]
    assert doses[0] >= 10.0
    assert doses[-1] < doses[0]
    assert not [e for e in result.events if isinstance(e, DoseRefused) and e.code == "HARD_MAX"]


def test_unknown_mode_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--mode", "autopilot", "--hours", "0.1"]) == 2
    assert "unknown mode" in capsys.readouterr().err


def test_waveform_mode_titrates_on_detected_beats() -> None:
    result = run_sim(load_rig(None), SimOptions(hours=0.5, seed=1, waveform=True))
    beat_map = [e.map_mmhg for e in result.events
                if e.kind == "beat.summary" and e.quality == "good" and e.map_mmhg is not None]
    true_map = [m for _, m in result.true_map]
    assert len(beat_map) > 100
    # the detected MAP follows the model within its transducer offset and noise
    assert abs(sum(beat_map) / len(beat_map) - sum(true_map) / len(true_map)) < 8.0
    assert any(isinstance(e, DoseApplied) and e.requester == "protocol" for e in result.events)


def test_serial_pump_through_its_emulator_matches_the_physics_twin() -> None:
    config = load_rig(None)
    direct = run_sim(config, SimOptions(hours=0.25, seed=4))
    emulated = run_sim(config, SimOptions(hours=0.25, seed=4, pump="new-era"))
    assert emulated.summary.total_drug_mcg == pytest.approx(direct.summary.total_drug_mcg,
                                                            rel=0.01)
    assert emulated.summary.dose_changes == direct.summary.dose_changes


def test_the_nurse_keeps_a_high_dose_infusion_going_across_syringe_changes() -> None:
    # seed 1 needs about 58 mcg/min: a 50 mL syringe at 80 mcg/mL lasts about 70 minutes
    result = run_sim(load_rig(None), SimOptions(hours=3.0, seed=1, spare_syringe=True,
                                                nurse_confirms_soft_max=True))
    codes = [e.code for e in result.events if e.kind == "alarm.raised"]
    assert "CHANGEOVER" in codes
    assert "SYRINGE_EMPTY" not in codes
    loaded = [e for e in result.events if e.kind == "operator.action" and e.action == "standby"]
    assert len(loaded) >= 2  # the first spare, and a fresh one after the changeover
    stops = [e for e in result.events if isinstance(e, DoseApplied) and e.dose_mcg_min == 0.0]
    assert stops == []
    confirmed = [e for e in result.events if e.kind == "dose.requested"
                 and e.soft_limit_confirmed and e.sender == "bench nurse"]
    assert confirmed
    # each confirmation is made on the beats the refused request was made on: in its step
    refused_at = {e.t_s for e in result.events
                  if e.kind == "dose.refused" and e.code == "SOFT_MAX"}
    assert all(e.t_s in refused_at for e in confirmed)


def test_without_a_nurse_the_syringe_runs_dry_and_the_supervisor_stops_with_a_high_alarm(
) -> None:
    result = run_sim(load_rig(None), SimOptions(hours=3.0, seed=1))
    empty = [e for e in result.events if e.kind == "alarm.raised" and e.code == "SYRINGE_EMPTY"]
    assert empty and empty[0].priority == "high"
