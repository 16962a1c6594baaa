import math
import random
from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.core.clock import VirtualClock
from vasopilot.core.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    DoseChange,
    DoseRefused,
    Event,
    RunStarted,
    StopReason,
)
from vasopilot.core.types import Priority, Requester
from vasopilot.core.units import DoseUnit
from vasopilot.journal import Journal
from vasopilot.report import RunSeries, StoppedSpell, plot_run, run_title

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


MapSeries = list[tuple[float, float]]


def synthetic_run(seed: int = 7, t0_s: float = 1000.0) -> tuple[list[Event], MapSeries]:
    """Three hours: MAP climbs as the dose is titrated, a flush, a stale spell, an occlusion."""
    rng = random.Random(seed)
    events: list[Event] = [RunStarted(t_s=t0_s, rig_id="sim-rig", mode="closed-loop",
                                      scenario="post-arrest", seed=seed, target_map_mmhg=65.0,
                                      lower_limit_mmhg=60.0, conc_mcg_ml=80.0,
                                      wall="2026-01-01T00:00:00.000+00:00")]
    true_map: MapSeries = []
    dose_mcg_min = 0.0
    for k in range(0, 3 * 3600, 15):
        t_s = t0_s + k
        true_mmhg = 52 + 16 * (1 - math.exp(-k / 2400)) + 2 * math.sin(k / 900)
        true_map.append((t_s, true_mmhg))
        if k % 600 == 0 and k < 7200:
            new = 10.0 if dose_mcg_min == 0 else dose_mcg_min + 2.0
            events.append(DoseApplied(t_s=t_s, requester=Requester.CONTROLLER,
                                      dose_mcg_min=new, previous_dose_mcg_min=dose_mcg_min,
                                      rate_ml_h=new * 60 / 80, reason="MAP under target"))
            dose_mcg_min = new
        quality = "flush" if 3000 <= k < 3090 else "good"
        if 5400 <= k < 5520:
            events.append(BeatSummary(t_s=t_s, map_mmhg=None, sbp_mmhg=None, dbp_mmhg=None,
                                      hr_bpm=None, quality="disconnection", beats=0))
            continue
        events.append(BeatSummary(t_s=t_s, map_mmhg=true_mmhg + rng.gauss(0, 1.5),
                                  sbp_mmhg=None, dbp_mmhg=None, hr_bpm=88.0, quality=quality,
                                  beats=20))
    events += [
        DoseRefused(t_s=t0_s + 4000, requester=Requester.OPERATOR, requested_dose_mcg_min=70.0,
                    code="HARD_MAX", reason="over the hard max of 60 mcg/min"),
        AlarmRaised(t_s=t0_s + 5410, code="MAP_STALE", priority=Priority.MEDIUM,
                    message="no trusted MAP for 10 s"),
        AlarmRaised(t_s=t0_s + 5460, code="MAP_STALE", priority=Priority.HIGH,
                    message="no trusted MAP for 60 s"),
        AlarmCleared(t_s=t0_s + 5530, code="MAP_STALE"),
        AlarmRaised(t_s=t0_s + 4000, code="HARD_LIMIT_REFUSED", priority=Priority.LOW,
                    message="over the hard max"),
        AlarmCleared(t_s=t0_s + 4300, code="HARD_LIMIT_REFUSED"),
        AlarmRaised(t_s=t0_s + 9000, code="OCCLUSION", priority=Priority.HIGH,
                    message="occlusion: infusion stopped"),
        DoseApplied(t_s=t0_s + 9000, requester=Requester.SUPERVISOR, dose_mcg_min=0.0,
                    previous_dose_mcg_min=dose_mcg_min, rate_ml_h=0.0,
                    reason="stopped: occlusion", change=DoseChange.STOP,
                    stop_reason=StopReason.OCCLUSION),
        AlarmAcknowledged(t_s=t0_s + 9300, code="OCCLUSION"),
    ]
    events.sort(key=lambda e: e.t_s)
    return events, true_map


def test_series_run_in_hours_from_the_run_start() -> None:
    events, true_map = synthetic_run()
    series = RunSeries.from_events(events, true_map)
    assert series.t0_s == 1000.0
    assert series.map_good[0][0] == 0.0
    assert series.end_h == pytest.approx((3 * 3600 - 15) / 3600)
    assert series.dose_steps[0] == (0.0, 10.0)
    [(refused_h, refused_mcg_min)] = series.refused
    assert refused_h == pytest.approx(4000 / 3600)
    assert refused_mcg_min == 70.0


def test_series_separates_untrusted_beats_and_skips_beats_without_map() -> None:
    events, _ = synthetic_run()
    series = RunSeries.from_events(events)
    assert len(series.map_untrusted) == 6
    assert all(3000 / 3600 <= t < 3090 / 3600 for t, _ in series.map_untrusted)
    beats = [e for e in events if isinstance(e, BeatSummary)]
    assert len(series.map_good) == len(beats) - 6 - 8


def test_alarm_bars_run_from_raised_to_cleared_and_split_on_escalation() -> None:
    events, _ = synthetic_run()
    bars = {(b.code, b.priority): b for b in RunSeries.from_events(events).alarms}
    h = 1 / 3600
    medium = bars["MAP_STALE", Priority.MEDIUM]
    assert medium.start_h == pytest.approx(5410 * h)
    assert medium.end_h == pytest.approx(5460 * h)
    assert not medium.open
    assert bars["MAP_STALE", Priority.HIGH].end_h == pytest.approx(5530 * h)
    assert bars["HARD_LIMIT_REFUSED", Priority.LOW].end_h == pytest.approx(4300 * h)
    occlusion = bars["OCCLUSION", Priority.HIGH]
    assert occlusion.open and occlusion.end_h == pytest.approx((3 * 3600 - 15) * h)


def test_dose_line_steps_from_zero_to_the_end_of_the_run() -> None:
    events, _ = synthetic_run()
    times, doses = RunSeries.from_events(events).dose_line()
    assert (times[0], doses[0]) == (0.0, 0.0)
    assert doses[1:4] == [10.0, 12.0, 14.0]
    assert times[-1] == pytest.approx(10785 / 3600)
    assert doses[-2:] == [0.0, 0.0]
    # Twelve controller steps (every 10 min for 2 h): 10 then eleven of +2 mcg/min.
    assert max(doses) == 10.0 + 11 * 2.0


def test_run_title_names_rig_mode_scenario_and_seed() -> None:
    events, _ = synthetic_run()
    run = RunSeries.from_events(events).run
    assert run_title(run, "x") == ("sim-rig · closed-loop · scenario post-arrest · seed 7, "
                                   "started 2026-01-01 00:00 UTC")
    assert run_title(None, "journal.sqlite") == "journal.sqlite"


def test_plot_run_writes_a_png(tmp_path: Path) -> None:
    events, true_map = synthetic_run()
    out = plot_run(events, tmp_path / "sub" / "run.png", "synthetic run", true_map=true_map)
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000


def test_plot_run_draws_an_empty_run(tmp_path: Path) -> None:
    out = plot_run([], tmp_path / "empty.png", "nothing yet")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_report_cli_draws_the_last_run_next_to_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.sqlite"
    events, _ = synthetic_run()
    with Journal(path, VirtualClock()) as journal:
        journal.append(RunStarted(t_s=0.0, rig_id="old-rig", mode="manual",
                                  target_map_mmhg=70.0, lower_limit_mmhg=60.0,
                                  conc_mcg_ml=80.0))
        for event in events:
            journal.append(event)
    assert main(["report", str(path)]) == 0
    out = tmp_path / "run.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert str(out) in capsys.readouterr().out
    assert main(["report", str(path), "-o", str(tmp_path / "elsewhere.png")]) == 0
    assert (tmp_path / "elsewhere.png").is_file()


def test_report_cli_refuses_a_missing_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "absent.sqlite")]) == 2
    assert "no journal there" in capsys.readouterr().err


def test_map_line_breaks_where_good_beats_are_further_apart_than_the_gap() -> None:
    from vasopilot.report import _broken_at_gaps

    times, values = _broken_at_gaps([(0.0, 60.0), (0.01, 61.0), (0.2, 62.0)], max_gap_h=0.05)
    assert times == [0.0, 0.01, 0.2, 0.2]
    assert values[:2] == [60.0, 61.0] and math.isnan(values[2]) and values[3] == 62.0


def _restarted_run() -> list[Event]:
    """Dosing, an occlusion stop, a crash (no events for 20 min), a restart, an operator
    restart of the infusion; a weight-based entry."""
    start = {"rig_id": "bench", "mode": "protocol", "target_map_mmhg": 65.0,
             "lower_limit_mmhg": 60.0, "conc_mcg_ml": 80.0, "weight_kg": 80.0,
             "dose_unit": DoseUnit.MCG_KG_MIN}
    return [
        RunStarted(t_s=0.0, **start),
        DoseApplied(t_s=0.0, requester=Requester.OPERATOR, dose_mcg_min=8.0,
                    previous_dose_mcg_min=0.0, rate_ml_h=6.0, reason="start"),
        DoseApplied(t_s=1800.0, requester=Requester.SUPERVISOR, dose_mcg_min=0.0,
                    previous_dose_mcg_min=8.0, rate_ml_h=0.0, reason="stopped: occlusion",
                    change=DoseChange.STOP, stop_reason=StopReason.OCCLUSION),
        BeatSummary(t_s=3600.0, map_mmhg=58.0, sbp_mmhg=None, dbp_mmhg=None, hr_bpm=80.0,
                    quality="good"),
        RunStarted(t_s=4800.0, restarted=True, **start),
        DoseApplied(t_s=5400.0, requester=Requester.OPERATOR, dose_mcg_min=6.0,
                    previous_dose_mcg_min=0.0, rate_ml_h=4.5, reason="start"),
        BeatSummary(t_s=7200.0, map_mmhg=66.0, sbp_mmhg=None, dbp_mmhg=None, hr_bpm=80.0,
                    quality="good"),
    ]


def test_series_mark_restarts_with_the_time_no_process_ran_and_the_stopped_spells() -> None:
    series = RunSeries.from_events(_restarted_run())
    assert series.restarts == [(1.0, pytest.approx(4800 / 3600))]
    assert series.stopped == [StoppedSpell(0.5, 1.5, StopReason.OCCLUSION)]


def test_a_stop_still_in_force_at_the_end_runs_to_the_end() -> None:
    events = _restarted_run()[:4]
    assert RunSeries.from_events(events).stopped == [StoppedSpell(0.5, 1.0, StopReason.OCCLUSION)]


def test_a_run_without_stops_or_restarts_marks_none() -> None:
    events, _ = synthetic_run()
    series = RunSeries.from_events([e for e in events if not isinstance(e, DoseApplied)
                                    or e.dose_mcg_min > 0])
    assert series.stopped == [] and series.restarts == []


def test_report_of_a_restarted_weight_based_run_draws(tmp_path: Path) -> None:
    out = plot_run(_restarted_run(), tmp_path / "restarted.png", "restarted",
                   note="a note under the title")
    assert out.read_bytes()[:8] == PNG_MAGIC
