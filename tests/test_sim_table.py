"""`vasopilot sim`'s table and plot speak of one band, name their MAP, and state the monitor's
errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.sim.patient import draw_patient
from vasopilot.cli import main
from vasopilot.metrics import MapBand, band_metrics
from vasopilot.settings import load_rig
from vasopilot.simulate import SensorErrors, SimOptions, run_sim


def test_the_band_is_floor_to_floor_plus_10_aiming_at_plus_5() -> None:
    band = MapBand(65.0)
    assert (band.floor_mmhg, band.set_point_mmhg, band.high_mmhg) == (65.0, 70.0, 75.0)
    t = np.arange(0.0, 1200.0, 1.0)
    # 10 min at 64 (below the floor, not counted in the band: settling), then 10 min at 75
    m = np.where(t < 600.0, 64.0, 75.0)
    scored = band_metrics(t, m, band)
    assert scored.in_band_pct == 100.0  # 75 is the band's top edge, inside
    assert scored.below_floor_pct == pytest.approx(50.0)
    assert band_metrics(t, np.full(t.size, 75.1), band).in_band_pct == 0.0


def test_the_summary_scores_the_true_map_against_the_band() -> None:
    # seed 6's transducer reads 1.2 % low and 3.8 mmHg under (the cohort with the stable stratum)
    result = run_sim(load_rig(None), SimOptions(hours=0.5, seed=6))
    t, m = zip(*result.true_map, strict=True)
    truth = band_metrics(t, m, result.band)
    assert result.summary.time_in_target_pct == pytest.approx(truth.in_band_pct, abs=0.01)
    assert result.summary.map_below_65_pct == pytest.approx(truth.below_floor_pct, abs=0.01)
    # the monitor misreads the patient by the sensor errors the table states
    monitor = result.band_metrics("monitor")
    assert monitor.in_band_pct != truth.in_band_pct
    assert result.sensor.gain != 1.0 or result.sensor.offset_mmhg != 0.0


def test_the_table_names_which_map_and_the_sensor_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--hours", "0.5", "--out", str(tmp_path), "--no-plot"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "band 65–75 mmHg, true MAP" in out and "band 65–75 mmHg, monitor MAP" in out
    assert "true MAP < 65 mmHg (hypotension)" in out
    default = draw_patient(1)
    sensor = SensorErrors(default.calibration_gain, default.transducer_offset_mmhg)
    assert sensor.label() in out
