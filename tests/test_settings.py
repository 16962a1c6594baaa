"""A bad configuration is refused before anything opens, naming file, key, value and reason.

Every bound has a case that is refused and its valid neighbour that is accepted, so a bound
cannot silently move. The set under test is the ``sim`` kind that ``vasopilot init-rig``
writes, edited one key (or a few) at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from config_fixtures import FILES, edited, write_set
from pydantic import ValidationError

from vasopilot import settings
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.errors import ConfigError
from vasopilot.settings import Named, ProfileError, Refusal, load_rig, notices

CONFIG = Path(__file__).resolve().parents[1] / "config"
NE = "drugs.norepinephrine."
NE_KG = "drugs.norepinephrine-weight."
BD50 = "syringes.bd-plastipak-50."
NEW_ERA = {"rig:pump.driver": "new-era", "rig:pump.port": "loop://"}
HARVARD = {"rig:pump.driver": "harvard", "rig:pump.port": "loop://", "rig:pump.baud": 9600}
STEPPER = {"rig:pump.driver": "gpio-stepper", "rig:pump.gpio.pin_factory": "mock"}
BRIDGE = {"rig:pump.driver": "bridge", "rig:pump.port": "loop://", "rig:pump.baud": 115200}
ADS = {"rig:pressure.source": "ads1115", "rig:pressure.fs_hz": 250.0}
MQTT_TLS = {"rig:mqtt.enabled": True, "rig:mqtt.tls": True}
THRESHOLDS = "safety.occlusion_thresholds_mmhg"


@dataclasses.dataclass(frozen=True)
class Case:
    """``file:key`` edits: ``bad`` is refused at ``refused`` with ``reason``; ``good`` loads."""

    refused: str
    bad: dict[str, Any]
    good: dict[str, Any]
    reason: str
    base: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.refused}={next(iter(self.bad.values()))!r}"


def one(file_key: str, bad: Any, good: Any, reason: str, **base: Any) -> Case:
    key = file_key.split(":")[1]
    return Case(key, {file_key: bad}, {file_key: good}, reason,
                {"rig:" + k.replace("__", "."): v for k, v in base.items()})


def on(base: dict[str, Any], case: Case) -> Case:
    return dataclasses.replace(case, base={**base, **case.base})


CASES = [
    # drug library (S1, S3, S7)
    one(f"drugs:{NE}hard_max", float("inf"), 60.0, "finite number"),
    one(f"drugs:{NE}soft_max", float("nan"), 30.0, "finite number"),
    one(f"drugs:{NE}hard_max", 1e6, 200.0, "at most 200 mcg/min"),
    one(f"drugs:{NE_KG}hard_max", 3.5, 3.0, "at most 3 mcg/kg/min"),
    one(f"drugs:{NE}soft_max", 61.0, 60.0, "must not exceed hard_max"),
    one(f"drugs:{NE}soft_min", -1.0, 0.0, "must be ≥ 0"),
    one(f"drugs:{NE}start_max", 31.0, 30.0, "within the soft limits"),
    one(f"drugs:{NE}start_min", 13.0, 12.0, "start_min <= start_max"),
    one(f"drugs:{NE}max_up_step", 500.0, 12.0, "0.2 × hard_max"),
    one(f"drugs:{NE}max_up_step", 0.0, 0.01, "must be > 0"),
    one(f"drugs:{NE}max_down_step", 12.5, 12.0, "0.2 × hard_max"),
    one(f"drugs:{NE}min_up_interval_s", 0.0, 60.0, "60–3600 s"),
    one(f"drugs:{NE}min_up_interval_s", 3601.0, 3600.0, "60–3600 s"),
    one(f"drugs:{NE}conc_mcg_ml", 1e-9, 4.0, "4–1000 mcg/mL"),
    one(f"drugs:{NE}conc_mcg_ml", 1001.0, 1000.0, "4–1000 mcg/mL"),
    one(f"drugs:{NE}wean_step", 2.5, 2.0, "must not exceed max_down_step"),
    one(f"drugs:{NE}wean_interval_s", 59.0, 60.0, "60–21600 s"),
    one(f"drugs:{NE}name", "adrenaline", "norepinephrine", "no physical ceiling"),
    one(f"drugs:{NE}dose_unit", "mcg/h", "mcg/min", "Input should be"),
    # issue 19's guard rails: the line, the volume check
    one(f"drugs:{NE}peripheral_max_conc_mcg_ml", 65.0, 64.0, "4–64 mcg/mL"),
    one(f"drugs:{NE}peripheral_max_dose_mcg_min", 0.0, 0.5, "> 0 and ≤ 60 mcg/min"),
    one(f"drugs:{NE}peripheral_max_hours", 73.0, 72.0, "> 0 and ≤ 72 h"),
    one(f"drugs:{NE}volume_check_ratio", 1.1, 1.2, "1.2–10"),
    one(f"drugs:{NE}volume_check_rise_mcg_min", 0.0, 1.0, "> 0 and ≤ 60 mcg/min"),
    one(f"drugs:{NE}volume_check_window_s", 299.0, 300.0, "300–7200 s"),
    one(f"drugs:{NE}hard_max", "60", 60.0, "valid number"),
    one(f"drugs:{NE}start_max", 0.0, 8.0, "must be > 0"),
    one(f"drugs:{NE}wean_step", 0.0, 0.5, "must be > 0"),
    # syringe catalogue (S4)
    one(f"syringes:{BD50}volume_ml", 61.0, 60.0, "0.5–60 mL"),
    one(f"syringes:{BD50}inner_diameter_mm", 20.5, 21.0, "barrel would be 151 mm"),
    one(f"syringes:{BD50}inner_diameter_mm", 41.0, 40.0, "1–40 mm"),
    one(f"syringes:{BD50}compliance_ul_per_mmhg", -0.1, 0.0, "0–5 µL/mmHg"),
    # patient (S1, S6)
    one("rig:patient.weight_kg", 29.9, 30.0, "30–250 kg"),
    one("rig:patient.weight_kg", 251.0, 250.0, "30–250 kg"),
    one("rig:patient.weight_kg", "70", 70.0, "valid number"),
    one("rig:patient.floor_mmhg", 86.0, 85.0, "60–85 mmHg"),
    one("rig:patient.floor_mmhg", 59.0, 60.0, "60–85 mmHg"),
    one("rig:patient.target_map_mmhg", 71.0, 70.0, "the older key is the set-point"),
    Case("patient.lower_limit_mmhg", {"rig:patient.lower_limit_mmhg": 60.0}, {},
         "S6 puts the lower limit at floor_mmhg - 5"),
    Case("patient.weight_kg", {"rig:drug": "norepinephrine-weight"},
         {"rig:drug": "norepinephrine-weight", "rig:patient.weight_kg": 70.0},
         "needs the patient's weight (30-250 kg); none is assumed"),
    Case("patient.weight_kg", {"rig:patient.weight_kg": 60.0},
         {"rig:patient.weight_kg": 70.0}, "3.33 mcg/kg/min at this weight",
         {f"drugs:{NE}hard_max": 200.0}),
    # pump (docs/pumps.md, S12)
    Case("pump.port", {"rig:pump.driver": "new-era"}, NEW_ERA, "needs a port"),
    on(NEW_ERA, one("rig:pump.port", "bogus://x", "socket://localhost:7777",
                    "not a serial URL pyserial knows")),
    on(NEW_ERA, one("rig:pump.port", "ttyUSB0", "/dev/ttyUSB0", "must be absolute")),
    on(NEW_ERA, one("rig:pump.baud", 115200, 19200, "not a rate the new-era pump speaks")),
    on(HARVARD, one("rig:pump.baud", 4800, 115200, "not a rate the harvard pump speaks")),
    on(NEW_ERA, one("rig:pump.address", 100, 99, "0–99")),
    on(NEW_ERA, one("rig:pump.address", 1.5, 1, "valid integer")),
    on(NEW_ERA, one("rig:pump.safe_mode_timeout_s", 3, 4, "0 (basic mode) or 4–255 s")),
    on(NEW_ERA, one("rig:pump.safe_mode_timeout_s", 256, 255, "0–255 s")),
    on(BRIDGE, one("rig:pump.baud", 4800, 115200, "not a rate the bridge pump speaks")),
    on(BRIDGE, one("rig:pump.bridge.host_loss_timeout_s", 0.5, 1.0, "1–60 s")),
    on(BRIDGE, one("rig:pump.bridge.host_loss", "ignore", "stop", "Input should be")),
    on(BRIDGE, one("rig:pump.bridge.unattended_cap_ml", 0.0, 50.0, "> 0 and ≤ 100 mL")),
    on(BRIDGE, one("rig:pump.bridge.max_attempts", 0, 1, "1–10")),
    one("rig:pump.driver", "teleport", "sim", "Input should be"),
    one("rig:pump.syringe", "bd-60", "bd-plastipak-20", "not in the syringe catalogue"),
    one("rig:pump.mechanics.microsteps", 12, 16, "not a power of two"),
    one("rig:pump.mechanics.microsteps", 512, 256, "1–256"),
    one("rig:pump.mechanics.lead_mm", 0.0, 0.5, "> 0 and ≤ 10 mm"),
    one("rig:pump.mechanics.steps_per_rev", 10, 20, "20–1000"),
    one("rig:pump.mechanics.slack_ul", 101.0, 100.0, "0–100 µL"),
    on(STEPPER, one("rig:pump.gpio.dir_pin", 17, 18, "already step_pin")),
    on(STEPPER, one("rig:pump.gpio.step_pin", 28, 26, "0–27")),
    on(STEPPER, one("rig:pump.gpio.step_pin", " ", "GPIO17", "may not be empty")),
    on(STEPPER, one("rig:pump.gpio.ms_pins", [1, 2, 3, 4], [1, 2, 3], "at most 3 items")),
    # pressure (S5)
    one("rig:pressure.fs_hz", 49.0, 50.0, "50–1000 samples/s"),
    one("rig:pressure.fs_hz", 1001.0, 1000.0, "50–1000 samples/s"),
    one("rig:pressure.i2c_bus", 256, 255, "0–255"),
    one("rig:pressure.sensitivity_uv_per_v_mmhg", 51.0, 50.0, "≤ 50 µV/V/mmHg",
        **{"pressure__adc_full_scale_v": 6.144, "pressure__amplifier_gain": 1.0}),
    one("rig:pressure.excitation_v", 10.5, 10.0, "≤ 10 V", **{"pressure__amplifier_gain": 50.0}),
    on(ADS, one("rig:pressure.fs_hz", 125.0, 475.0, "250 or 475")),
    on(ADS, one("rig:pressure.amplifier_gain", 1000.0, 100.0, "clip at 41 mmHg")),
    on(ADS, one("rig:pressure.amplifier_gain", 1.0, 2.0, "one ADC step would be")),
    on(ADS, one("rig:pressure.adc_full_scale_v", 1.0, 2.048, "ADS1115 ranges")),
    on(ADS, one("rig:pressure.i2c_address", 0x4C, 0x4B, "72–75")),
    Case("pressure.record", {"rig:pressure.source": "replay"},
         {"rig:pressure.source": "replay", "rig:pressure.record": "rec"}, "needs a record"),
    one("rig:pressure.record", "absent", "rec", "no WFDB record",
        **{"pressure__source": "replay"}),
    # safety (S5, S8, S10, S11)
    one("rig:safety.stale_after_s", 1.0, 2.0, "2–60 s"),
    one("rig:safety.stale_high_after_s", 10.0, 11.0, "greater than stale_after_s"),
    one("rig:safety.stale_high_after_s", 601.0, 600.0, "2–600 s"),
    one("rig:safety.map_high_margin_mmhg", 41.0, 40.0, "0–40 mmHg"),
    one(f"rig:{THRESHOLDS}.low", -1.0, 100.0, "100–1000 mmHg"),
    one(f"rig:{THRESHOLDS}.high", 1001.0, 1000.0, "100–1000 mmHg"),
    one(f"rig:{THRESHOLDS}.low", 600.0, 400.0, "levels rise low < medium < high"),
    Case("safety.occlusion_level", {"rig:safety.occlusion_level": "low"},
         {"rig:safety.occlusion_level": "medium"}, "'low' is not in occlusion_thresholds",
         {f"rig:{THRESHOLDS}": {"medium": 500.0, "high": 750.0}}),
    one("rig:safety.silence_max_s", 121.0, 120.0, "at most 2 minutes"),
    one("rig:safety.near_empty_min", 0.5, 1.0, "1–120 min"),
    one("rig:safety.tachycardia_bpm", 201.0, 200.0, "100–200 bpm"),
    one("rig:safety.bradycardia_bpm", 24.0, 25.0, "25–60 bpm"),
    one("rig:safety.heart_rate_sustain_s", 9.0, 10.0, "10–600 s"),
    one("rig:safety.rhythm_irregularity", 0.01, 0.02, "0.02–0.5"),
    one("rig:safety.sbp_low_mmhg", 121.0, 120.0, "70–120 mmHg"),
    one("rig:safety.sbp_sustain_s", 601.0, 600.0, "10–600 s"),
    one("rig:safety.cannula_check_min", 14.0, 15.0, "15–240 min"),
    one("rig:safety.high_dose_window_h", 25.0, 24.0, "1–24 h"),
    one("rig:safety.high_dose_limit_h", 6.5, 6.0, "must not exceed high_dose_window_h"),
    # the patient's usual pressure and line
    one("rig:patient.usual_sbp_mmhg", 251.0, 250.0, "70–250 mmHg",
        **{"patient__floor_below_usual_confirmed": True}),
    one("rig:patient.line", "arterial", "peripheral", "Input should be",
        **{"drug": "norepinephrine-peripheral"}),
    Case("patient.floor_mmhg", {"rig:patient.usual_sbp_mmhg": 160.0},
         {"rig:patient.usual_sbp_mmhg": 135.0}, "more than 40 mmHg below the usual SBP"),
    Case("patient.floor_mmhg", {"rig:patient.usual_sbp_mmhg": 160.0},
         {"rig:patient.usual_sbp_mmhg": 160.0,
          "rig:patient.floor_below_usual_confirmed": True},
         "floor_below_usual_confirmed = true"),
    # MQTT (S15)
    Case("mqtt.insecure", {"rig:mqtt.enabled": True},
         {"rig:mqtt.enabled": True, "rig:mqtt.insecure": True}, "explicit insecure = true"),
    one("rig:mqtt.tls", "yes", True, "valid boolean"),
    one("rig:mqtt.remote_commands", True, False, "need TLS"),
    on(MQTT_TLS, one("rig:mqtt.ca_file", "absent.pem", "ca.pem", "file not found")),
    on(MQTT_TLS, one("rig:mqtt.cert_file", "absent.pem", "cert.pem", "file not found")),
    on(MQTT_TLS, one("rig:mqtt.password_file", "absent.pass", "cert.pem", "file not found")),
    on(MQTT_TLS, Case("mqtt.key_file", {"rig:mqtt.key_file": "ca.pem"},
                      {"rig:mqtt.key_file": "ca.pem", "rig:mqtt.cert_file": "cert.pem"},
                      "needs its certificate")),
    one("rig:mqtt.port", 0, 1, "1–65535"),
    one("rig:mqtt.rig_id", "a/b", "a-b", "topic level"),
    one("rig:mqtt.state_interval_s", 0.05, 0.1, "0.1–60 s"),
    one("rig:mqtt.state_interval_s", 61.0, 60.0, "0.1–60 s"),
    one("rig:mqtt.command_rate_per_s", 51.0, 50.0, "> 0 and ≤ 50 commands/s"),
    one("rig:mqtt.client_id", "A_b", "a-b", "a-z, 0-9 and -"),
    one("rig:mqtt.host", "", "broker.lab", "host name"),
    # the profile itself
    one("rig:rig_id", "my rig", "my-rig", "at most 32 (no / + #)"),
    one("rig:rig_id", "r" * 33, "r" * 32, "at most 32"),
    one("rig:drug", "nope", "norepinephrine-weight", "not in the drug library",
        **{"patient__weight_kg": 70.0}),
    one("rig:journal", "blocker/j.sqlite", "runs/j.sqlite", "is a file, not a folder"),
    one("rig:journal", ".", "j.sqlite", "is a folder, not a journal file"),
    one("rig:drug_library", "absent.toml", "drug-library.toml", "vasopilot init-rig"),
    one("rig:colour", "red", None, "Extra inputs"),
]


def write_case(folder: Path, edits: dict[str, Any]) -> Path:
    path = write_set(folder, edited(edits))
    for name in ("rec.hea", "ca.pem", "cert.pem", "blocker"):
        (folder / name).write_text("")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_setting_is_refused_naming_file_key_value_and_reason(
    tmp_path: Path, case: Case
) -> None:
    path = write_case(tmp_path, {**case.base, **case.bad})
    with pytest.raises(ProfileError) as info:
        load_rig(path)
    refusal = info.value.refusals[0]
    message = str(info.value)
    assert "\n" not in message
    assert refusal.key == case.refused, message
    file = next(k.split(":")[0] for k in case.bad)
    expected_file = tmp_path / FILES[file]
    assert refusal.file == str(expected_file), message
    assert message.startswith(f"{expected_file}: key {case.refused} = ")
    assert case.reason in refusal.reason, message
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_valid_neighbour_is_accepted(tmp_path: Path, case: Case) -> None:
    config = load_rig(write_case(tmp_path, {**case.base, **case.good}))
    assert config.profile.rig_id


def test_sim_profile_matches_embedded_defaults() -> None:
    from_file = load_rig(CONFIG / "sim.toml")
    embedded = load_rig(None)
    assert from_file.drug == embedded.drug == NOREPINEPHRINE
    assert from_file.syringe == embedded.syringe
    paths = {"drug_library", "syringe_catalogue", "journal"}
    assert from_file.profile.model_dump(exclude=paths) == embedded.profile.model_dump(
        exclude=paths)


def test_every_profile_in_config_loads() -> None:
    profiles = [p for p in CONFIG.glob("*.toml") if p.name.startswith(("sim", "bench"))]
    assert len(profiles) >= 4
    for path in profiles:
        assert load_rig(path).profile.rig_id


def test_every_refusal_is_collected_across_files(tmp_path: Path) -> None:
    path = write_case(tmp_path, {"rig:patient.weight_kg": 20.0, "rig:safety.stale_after_s": 0.0,
                                 f"drugs:{NE}hard_max": 1e6})
    with pytest.raises(ProfileError) as info:
        load_rig(path)
    keys = {(r.file, r.key) for r in info.value.refusals}
    assert keys == {(str(path), "patient.weight_kg"), (str(path), "safety.stale_after_s"),
                    (str(tmp_path / "drug-library.toml"), f"{NE}hard_max")}
    assert str(info.value).endswith(f"(and 2 more: vasopilot check --rig {path} lists them)")


def test_missing_file_and_broken_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rig(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[patient\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: key <file> = '<whole file>': "
                                          "not valid TOML"):
        load_rig(broken)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"rig_id = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_rig(binary)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_rig(tmp_path)


def test_a_copied_profile_without_its_set_says_how_to_get_it(tmp_path: Path) -> None:
    copy = tmp_path / "bench-newera.toml"
    copy.write_text((CONFIG / "bench-newera.toml").read_text())
    with pytest.raises(ProfileError) as info:
        load_rig(copy)
    first = info.value.refusals[0]
    assert (first.file, first.key, first.value) == (str(copy), "drug_library",
                                                    "drug-library.toml")
    assert str(tmp_path / "drug-library.toml") in first.reason
    assert "`vasopilot init-rig newera DIR` writes a profile" in first.reason
    assert [r.key for r in info.value.refusals] == ["drug_library", "syringe_catalogue"]


def test_paths_resolve_relative_to_the_profile(tmp_path: Path) -> None:
    path = write_case(tmp_path / "set", {
        "rig:journal": "runs/j.sqlite", **MQTT_TLS, "rig:mqtt.ca_file": "ca.pem",
        "rig:pressure.source": "replay", "rig:pressure.record": "rec"})
    config = load_rig(path)
    assert config.journal_path == tmp_path / "set" / "runs" / "j.sqlite"
    assert config.profile.mqtt.ca_file == str(tmp_path / "set" / "ca.pem")
    assert config.profile.pressure.record == str(tmp_path / "set" / "rec")
    assert not (tmp_path / "set" / "runs").exists()


def test_absent_hardware_is_refused_only_when_asked(tmp_path: Path) -> None:
    path = write_case(tmp_path, {"rig:pump.driver": "new-era",
                                 "rig:pump.port": str(tmp_path / "ttyUSB9")})
    assert load_rig(path).profile.pump.driver == "new-era"
    with pytest.raises(ProfileError, match=r"key pump\.port = .*no such device"):
        load_rig(path, hardware=True)
    (tmp_path / "ttyUSB9").write_text("")
    assert load_rig(path, hardware=True).profile.pump.port == str(tmp_path / "ttyUSB9")


def test_a_cross_field_rule_is_one_function_in_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_concentrate_on_a_light_patient(named: Named) -> Iterator[Refusal]:
        weight_kg = named.profile.patient.weight_kg
        if named.drug and weight_kg is not None and weight_kg < 40 \
                and named.drug.conc_mcg_ml > 64:
            yield named.refusal("patient.weight_kg", weight_kg, "use a dilute entry")

    monkeypatch.setattr("vasopilot.settings.RULES",
                        [*settings.RULES, no_concentrate_on_a_light_patient])
    with pytest.raises(ProfileError, match=r"key patient\.weight_kg = 35\.0: use a dilute"):
        load_rig(write_case(tmp_path, {"rig:patient.weight_kg": 35.0}))
    assert load_rig(write_case(tmp_path, {"rig:patient.weight_kg": 40.0}))


def test_the_older_target_is_read_as_the_set_point_and_said_so() -> None:
    older = PatientSettings.model_validate({"target_map_mmhg": 72.0})
    assert (older.floor_mmhg, older.setpoint_mmhg, older.lower_limit_mmhg) == (67.0, 72.0, 62.0)
    config = load_rig(None)
    assert notices(config) == []
    profile = config.profile.model_copy(update={"patient": older})
    said = notices(dataclasses.replace(config, profile=profile))
    assert len(said) == 1 and "read as the set-point" in said[0] and "floor is 67" in said[0]


def test_the_floor_alone_gives_the_set_point_and_lower_limit() -> None:
    patient = PatientSettings(floor_mmhg=75.0)
    assert (patient.setpoint_mmhg, patient.lower_limit_mmhg) == (80.0, 70.0)
    assert not patient.read_from_target
    assert patient.with_floor(60.0).setpoint_mmhg == 65.0
    with pytest.raises(ValidationError, match="the older key is the set-point"):
        PatientSettings(floor_mmhg=65.0, target_map_mmhg=65.0)
    with pytest.raises(ValidationError, match="valid number"):
        PatientSettings.model_validate({"target_map_mmhg": "70"})
