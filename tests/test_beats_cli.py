"""``vasopilot beats``: JSON lines and the readable table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vasopilot.cli import main

ABP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "abp"
if not ABP.is_dir():
    pytest.skip(f"REAL ABP RECORDS MISSING: {ABP} not found", allow_module_level=True)


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
