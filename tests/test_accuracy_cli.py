"""``vasopilot accuracy`` on the simulated rig (virtual time) and on balance logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.core.clock import MonotonicClock

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"
KEYS = {"rate_ml_h", "mean_error_pct", "startup_90_s", "late_samples", "trumpet"}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["accuracy", *argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    parsed: dict[str, object] = json.loads(out[0])
    return parsed


def _no_real_waiting(*_args: object) -> None:
    raise AssertionError("the simulated rig waited on wall time")


def test_two_hours_on_the_simulated_rig_out_of_the_box(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two hours in seconds is the virtual clock's promise: any real wait fails the run instead of
    # timing it, which a loaded machine would make flaky.
    monkeypatch.setattr(time, "sleep", _no_real_waiting)
    monkeypatch.setattr(MonotonicClock, "sleep", _no_real_waiting)
    monkeypatch.setattr(MonotonicClock, "sleep_async", _no_real_waiting)
    csv_path, png = tmp_path / "run.csv", tmp_path / "run.png"
    report = _json(capsys, "--rig", str(SIM), "--rate", "1", "--hours", "2",
                   "--csv", str(csv_path), "--plot", str(png))
    assert set(report) == KEYS
    assert report["rate_ml_h"] == 1.0 and report["late_samples"] == 0
    trumpet = report["trumpet"]
    assert isinstance(trumpet, list)
    assert [p["window_min"] for p in trumpet] == [2, 5, 11, 19, 31]
    assert all(set(p) == {"window_min", "ep_max_pct", "ep_min_pct"} for p in trumpet)
    # the target for the 2-min window at 1 mL/h (50 mL syringe, 0.01 mg balance)
    assert -5.0 <= trumpet[0]["ep_min_pct"] <= trumpet[0]["ep_max_pct"] <= 5.0
    assert png.stat().st_size > 10_000
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "t_s,mass_g,stable" and len(lines) == 1 + 241
    # the raw samples, judged again from the log, give the same figures
    assert _json(capsys, "--from-csv", str(csv_path), "--rate", "1") == report


def test_slack_take_up_shortens_the_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    plain = _json(capsys, "--rig", str(SIM), "--rate", "1")
    taken_up = _json(capsys, "--rig", str(SIM), "--rate", "1", "--take-up")
    assert isinstance(plain["startup_90_s"], float) and isinstance(taken_up["startup_90_s"], float)
    assert taken_up["startup_90_s"] <= 120.0 < plain["startup_90_s"]


def test_the_table_names_the_windows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("t_s,mass_g\n" + "".join(f"{30 * i},{50 + i * 0.0138611:.6f}\n"
                                              for i in range(241)))
    assert main(["accuracy", "--from-csv", str(log), "--rate", "1.6667"]) == 0
    out = capsys.readouterr().out
    assert "Ep(max)" in out and "117" in out and "mean error A" in out


@pytest.mark.parametrize("argv", [
    ["--rig", str(SIM), "--rate", "-1"],
    ["--rig", str(SIM), "--rate", "fast"],
    ["--rig", str(SIM), "--rate", "1", "--hours", "1"],
    ["--rate", "1"],
    ["--from-csv", "/nonexistent/log.csv", "--rate", "1"],
    ["--from-csv", str(SIM), "--rate", "1"],
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["accuracy", *argv])
    except SystemExit as exc:
        code = int(str(exc.code))
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_a_short_log_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "short.csv"
    log.write_text("t_s,mass_g\n0,50\n30,50.01\n")
    assert main(["accuracy", "--from-csv", str(log), "--rate", "1"]) == 2
    assert "the trumpet curve needs 2 h" in capsys.readouterr().err
