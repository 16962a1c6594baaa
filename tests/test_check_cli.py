"""`vasopilot check --rig FILE [--json]`: what a run opens, or every refusal; creates nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from config_fixtures import edited, sim_set, write_set

from vasopilot.cli import main

NE = "drugs.norepinephrine."


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--rig", str(path), "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("\n") == 1
    return code, json.loads(out)


def test_a_valid_profile_prints_what_would_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({
        "rig:journal": "runs/journal.sqlite",
        "rig:mqtt.enabled": True,
        "rig:mqtt.insecure": True,
    })
    path = write_set(tmp_path, files)
    before = listing(tmp_path)
    code, report = check_json(path, capsys)
    assert code == 0
    assert report == {
        "ok": True, "rig": "sim-rig", "profile": str(path), "warnings": [],
        "opens": {
            "pump": {"driver": "sim", "syringe": "bd-plastipak-50"},
            "pressure": {"source": "sim"},
            "journal": str(tmp_path / "runs" / "journal.sqlite"),
            "mqtt": {"url": "mqtt://127.0.0.1:1883", "rig_id": "sim-rig", "ca_file": None,
                     "remote_commands": False},
            "drug": {"entry": "norepinephrine", "conc_mcg_ml": 80.0, "dose_unit": "mcg/min",
                     "hard_max": 60.0},
        },
    }
    assert listing(tmp_path) == before


def test_refusals_from_every_file_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({
        "rig:safety.stale_high_after_s": 5.0,
        "rig:patient.weight_kg": float("inf"),
        f"drugs:{NE}min_up_interval_s": 0.0,
        "syringes:syringes.bd-plastipak-50.volume_ml": 500.0,
    })
    path = write_set(tmp_path, files)
    code, report = check_json(path, capsys)
    assert code == 2
    assert set(report) == {"ok", "profile", "refusals", "warnings"}
    assert report["ok"] is False
    assert report["refusals"] == [
        {"file": str(path), "key": "patient.weight_kg", "value": "inf",
         "reason": "Input should be a finite number"},
        {"file": str(path), "key": "safety.stale_high_after_s", "value": 5.0,
         "reason": "must be greater than stale_after_s (10): S5 escalates a stale MAP from "
                   "medium to high, not the other way"},
        {"file": str(tmp_path / "drug-library.toml"), "key": f"{NE}min_up_interval_s",
         "value": 0.0, "reason": "must be 60–3600 s: norepinephrine takes 1–2 min to act (S3 "
         "default 120 s): faster steps stack before the last one shows; over an hour "
         "up-titration is stalled"},
        {"file": str(tmp_path / "syringes.toml"), "key": "syringes.bd-plastipak-50.volume_ml",
         "value": 500.0, "reason": "must be 0.5–60 mL: the syringe pumps vasopilot drives take "
         "0.5–60 mL syringes"},
    ]


def test_an_absent_key_is_null_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = edited({
        "rig:drug": "norepinephrine-weight",
    })
    code, report = check_json(write_set(tmp_path, files), capsys)
    assert code == 2
    assert report["refusals"] == [{
        "file": str(tmp_path / "rig.toml"), "key": "patient.weight_kg", "value": None,
        "reason": "drug 'norepinephrine-weight' is dosed in mcg/kg/min and needs the patient's "
                  "weight (30-250 kg); none is assumed"}]


def test_text_output_lists_refusals_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({
        "rig:pump.address": 500,
        "rig:rig_id": "a rig",
    })
    path = write_set(tmp_path, files)
    assert main(["check", "--rig", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"vasopilot check: refused: {path}: key rig_id = 'a rig': must match "
        "[a-z0-9-]{1,32}: a topic level and client id: a-z, 0-9 and -, at most 32 (no / + #)",
        f"vasopilot check: refused: {path}: key pump.address = 500: must be 0–99: pump "
        "addresses on a shared RS-232 line are 0–99 (NE-1000 and Pump 11 Elite manuals)",
    ]


def test_text_output_of_a_valid_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_set(tmp_path, sim_set())
    assert main(["check", "--rig", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0] == f"{path}: ok (rig sim-rig)"
    assert f"  journal   {tmp_path / 'journal.sqlite'}" in out.splitlines()


def test_absent_hardware_is_a_warning_not_a_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({
        "rig:pump.driver": "harvard",
        "rig:pump.port": str(tmp_path / "no-such-tty"),
        "rig:pump.baud": 115200,
        "rig:pressure.source": "ads1115",
        "rig:pressure.fs_hz": 250.0,
        "rig:pressure.i2c_bus": 200,
    })
    code, report = check_json(write_set(tmp_path, files), capsys)
    assert code == 0
    assert report["opens"]["pump"] == {
        "driver": "harvard", "syringe": "bd-plastipak-50", "port": str(tmp_path / "no-such-tty"),
        "baud": 115200, "address": 0}
    assert [(w["key"], w["value"]) for w in report["warnings"]] == [
        ("pump.port", str(tmp_path / "no-such-tty")), ("pressure.i2c_bus", 200)]
    assert "no I2C bus 200: is this a Pi with I2C enabled?" in \
        report["warnings"][1]["reason"]


def test_run_refuses_absent_hardware_before_creating_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({
        "rig:pump.driver": "new-era",
        "rig:pump.port": str(tmp_path / "no-such-tty"),
        "rig:journal": "runs/journal.sqlite",
    })
    path = write_set(tmp_path, files)
    assert main(["run", "--rig", str(path), "--minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"key pump.port = '{tmp_path / 'no-such-tty'}': no such device" in err
    assert not (tmp_path / "runs").exists()


INF = float("inf")
# Issue #11 case 6, as reproduced: each was accepted (or ended in a traceback) before.
ABSURD = {
    "inf-limits": {f"drugs:{NE}soft_max": INF, f"drugs:{NE}hard_max": INF,
                   f"drugs:{NE}start_max": INF},
    "hard-max-1e6": {f"drugs:{NE}hard_max": 1e6},
    "up-step-500": {f"drugs:{NE}max_up_step": 500.0},
    "up-interval-0": {f"drugs:{NE}min_up_interval_s": 0.0},
    "conc-1e-9": {f"drugs:{NE}conc_mcg_ml": 1e-9},
    "occlusion-minus-1": {"rig:safety.occlusion_thresholds_mmhg.low": -1.0},
    "level-not-in-table": {"rig:safety.occlusion_thresholds_mmhg": {"medium": 500.0}},
    "kg-entry-no-weight": {"rig:drug": "norepinephrine-weight"},
    "stale-high-below": {"rig:safety.stale_high_after_s": 5.0},
    "mqtt-ca-missing": {"rig:mqtt.enabled": True, "rig:mqtt.tls": True,
                        "rig:mqtt.ca_file": "absent-ca.pem"},
    "journal-unmakeable": {"rig:journal": "blocker/runs/journal.sqlite"},
    "bad-port": {"rig:pump.driver": "new-era", "rig:pump.port": "bogus://x"},
    "bad-baud": {"rig:pump.driver": "new-era", "rig:pump.port": "loop://",
                 "rig:pump.baud": 115200},
}


@pytest.mark.parametrize("name", sorted(ABSURD))
def test_run_refuses_absurd_settings_before_creating_anything(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_set(tmp_path, edited(ABSURD[name]))
    (tmp_path / "blocker").write_text("")
    before = listing(tmp_path)
    assert main(["run", "--rig", str(path), "--minutes", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vasopilot: ") and err.count("\n") == 1
    assert ": key " in err and "Traceback" not in err
    assert listing(tmp_path) == before


def test_the_default_entry_is_refused_on_a_peripheral_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check_json(write_set(tmp_path, edited({"rig:patient.line": "peripheral"})),
                              capsys)
    library = str(tmp_path / "drug-library.toml")
    use = "use a peripheral entry (norepinephrine-peripheral) or a central line"
    assert code == 2
    assert report["refusals"] == [
        {"file": library, "key": f"{NE}conc_mcg_ml", "value": 80.0,
         "reason": "80 mcg/mL is above the 16 mcg/mL this entry allows on a peripheral line "
                   "([patient] line = \"peripheral\"): extravasation of a concentrated "
                   f"vasopressor causes necrosis; {use}"},
        {"file": library, "key": f"{NE}hard_max", "value": 60.0,
         "reason": "60 mcg/min is above the 20 mcg/min this entry allows on a peripheral line "
                   f"([patient] line = \"peripheral\"); {use}"},
    ]


def test_the_peripheral_entry_is_accepted_on_a_peripheral_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({"rig:patient.line": "peripheral", "rig:drug": "norepinephrine-peripheral"})
    code, report = check_json(write_set(tmp_path, files), capsys)
    assert code == 0
    assert report["opens"]["drug"] == {"entry": "norepinephrine-peripheral", "conc_mcg_ml": 16.0,
                                       "dose_unit": "mcg/min", "hard_max": 20.0}


def test_without_a_peripheral_entry_the_refusal_asks_for_a_central_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edited({"rig:patient.line": "peripheral", "rig:drug": "norepinephrine-peripheral",
                    "drugs:drugs.norepinephrine-peripheral.peripheral_max_conc_mcg_ml": 8.0})
    code, report = check_json(write_set(tmp_path, files), capsys)
    assert code == 2
    assert [r["key"] for r in report["refusals"]] == [
        "drugs.norepinephrine-peripheral.conc_mcg_ml"]
    assert report["refusals"][0]["reason"].endswith("; use a central line")


def test_the_peripheral_entry_on_a_central_line_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = check_json(write_set(tmp_path, edited({"rig:drug": "norepinephrine-peripheral"})),
                         capsys)
    assert code == 0
