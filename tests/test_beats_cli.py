"""``vasopilot beats``: JSON lines and the readable table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from record_fixtures import records_dir

from vasopilot.cli import main

ABP = records_dir()


def test_json_prints_one_object_per_beat(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["beats", str(ABP / "wfdb-python_mimicdb_041s" / "041s"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 24
    assert set(rows[0]) == {"t_s", "sbp", "dbp", "map", "hr", "quality"}
    assert all(r["quality"] == "good" and 0 < r["t_s"] < 16 for r in rows)


def test_json_writes_null_for_stretches_without_samples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import numpy as np
    import wfdb

    t = np.arange(125 * 12) / 125.0
    x = (70.0 + 20.0 * np.sin(2 * np.pi * 1.2 * t) ** 8).reshape(-1, 1)
    x[: 125 * 7] = np.nan
    wfdb.wrsamp("gap", fs=125, units=["mmHg"], sig_name=["ABP"], p_signal=x, fmt=["16"],
                write_dir=str(tmp_path))
    assert main(["beats", str(tmp_path / "gap"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[:2] == [
        {"t_s": t_s, "sbp": None, "dbp": None, "map": None, "hr": 0.0, "quality": "missing"}
        for t_s in (0.0, 3.0)
    ]


def test_table_ends_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    record = ABP / "wfdb-python_mimic3wdb_s25047" / "3234460_0017"
    assert main(["beats", str(record)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "0 good" in last and "calibration" in last


def test_unknown_channel_is_an_error_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["beats", str(ABP / "wfdb-python_mimicdb_041s" / "041s"), "--channel", "X"]) == 2
    assert "no channel" in capsys.readouterr().err


def _write_synthetic(tmp_path: Path, ectopy: float) -> Path:
    import numpy as np
    import wfdb

    from drivers.sim import beat_battery as battery

    cell = battery.Cell(125.0, 70.0, 45.0, "normal", ectopy, 83.5, seconds=60.0, seed=4)
    x = battery.render(cell).samples.reshape(-1, 1)
    wfdb.wrsamp("ectopy", fs=125, units=["mmHg"], sig_name=["ABP"], p_signal=x,
                fmt=["16"], adc_gain=[100.0], baseline=[0], write_dir=str(tmp_path))
    assert np.isfinite(x).all()
    return tmp_path / "ectopy"


def test_json_flags_ectopic_beats_only_and_they_are_good(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["beats", str(_write_synthetic(tmp_path, 0.2)), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ectopic = [r for r in rows if "ectopic" in r]
    assert len(ectopic) >= 3
    assert all(r["ectopic"] is True and r["quality"] == "good" for r in ectopic)
    plain = [r for r in rows if "ectopic" not in r]
    assert all(set(r) == {"t_s", "sbp", "dbp", "map", "hr", "quality"} for r in plain)


def test_plot_draws_the_waveform_with_coloured_onsets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "beats.png"
    record = ABP / "wfdb-python_mimic3wdb_s00001" / "3975656_0015"
    assert main(["beats", str(record), "--plot", str(out), "--start", "0",
                 "--duration", "40"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "good" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize("make", ["missing", "garbage", "empty"])
def test_missing_or_unreadable_record_is_one_line_and_exit_2(
    make: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    if make == "garbage":
        (tmp_path / "rec.hea").write_text("this is not a header\n")
    elif make == "empty":
        (tmp_path / "rec.hea").write_text("rec 1 125 1000\nrec.dat 16 200 16 0 0 0 0 ABP\n")
    assert main(["beats", str(record)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vasopilot: ") and "Traceback" not in err
    assert "rec" in err


def test_plot_outside_the_record_is_an_error_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = ABP / "wfdb-python_mimicdb_041s" / "041s"
    assert main(["beats", str(record), "--plot", str(tmp_path / "x.png"), "--start", "99"]) == 2
    assert "nothing to plot" in capsys.readouterr().err
