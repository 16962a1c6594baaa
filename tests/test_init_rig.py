"""`vasopilot init-rig KIND DIR`: a complete profile set that `check` accepts, never overwritten."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from vasopilot.cli import main
from vasopilot.cli.init_rig import CATALOGUE_FILE, KINDS, LIBRARY_FILE, profile_for, profile_set
from vasopilot.core.config import DrugLibrary, SafetySettings, SyringeCatalogue
from vasopilot.settings import KIND_OF_DRIVER, load_rig

CONFIG = Path(__file__).resolve().parents[1] / "config"
# What check may warn about on a machine without the rig: the devices, never the settings.
PRESENCE_KEYS = {"pump.port", "pressure.i2c_bus", "pump.gpio.pin_factory"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_writes_a_set_that_check_accepts(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init-rig", kind, str(tmp_path / "rig")]) == 0
    profile = tmp_path / "rig" / KINDS[kind].file
    assert sorted(p.name for p in (tmp_path / "rig").iterdir()) == sorted(
        [KINDS[kind].file, LIBRARY_FILE, CATALOGUE_FILE])
    capsys.readouterr()
    code = main(["check", "--rig", str(profile), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert {w["key"] for w in report["warnings"]} <= PRESENCE_KEYS
    assert report["opens"]["journal"] == str(tmp_path / "rig" / f"{report['rig']}-journal.sqlite")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_set_is_complete_and_commented(kind: str) -> None:
    files = profile_set(kind)
    profile = tomllib.loads(files[KINDS[kind].file])
    assert {"rig_id", "drug", "drug_library", "syringe_catalogue", "journal", "pump",
            "pressure", "patient", "safety", "mqtt"} <= set(profile)
    assert set(profile["safety"]) == set(SafetySettings.model_fields)
    assert DrugLibrary.model_validate(tomllib.loads(files[LIBRARY_FILE]), strict=False) == \
        DrugLibrary()
    assert SyringeCatalogue.model_validate(tomllib.loads(files[CATALOGUE_FILE])) == \
        SyringeCatalogue()
    for text in files.values():
        lines = text.splitlines()
        keys = [n for n, line in enumerate(lines) if line and not line.startswith(("#", "["))]
        assert all(lines[n - 1].startswith("#") for n in keys)
        assert max(len(line) for line in lines) <= 100


@pytest.mark.parametrize(("kind", "file"), [(k, KINDS[k].file) for k in
                                            ("sim", "newera", "harvard", "stepper",
                                                             "bridge")])
def test_the_profiles_in_config_are_what_init_rig_writes(kind: str, file: str) -> None:
    stem = file.removesuffix(".toml")
    files = profile_set(kind, journal=f"../out/{stem}-journal.sqlite")
    for name, text in files.items():
        assert (CONFIG / name).read_text() == text, f"regenerate: vasopilot init-rig {kind} config"
    assert load_rig(CONFIG / file).journal_path.resolve() == \
        CONFIG.parent / "out" / f"{stem}-journal.sqlite"


def test_each_drivers_hint_names_the_kind_that_writes_its_set() -> None:
    for kind in KINDS:
        profile = profile_for(kind)
        assert KIND_OF_DRIVER[profile.pump.driver] == kind


def test_existing_files_are_never_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init-rig", "newera", str(tmp_path)]) == 0
    edited = tmp_path / "bench-newera.toml"
    edited.write_text(edited.read_text().replace("/dev/ttyUSB0", "/dev/ttyUSB1"))
    (tmp_path / LIBRARY_FILE).unlink()
    capsys.readouterr()
    assert main(["init-rig", "newera", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(edited) in err and "--force" in err
    assert "/dev/ttyUSB1" in edited.read_text()
    assert not (tmp_path / LIBRARY_FILE).exists()
    assert main(["init-rig", "newera", str(tmp_path), "--force"]) == 0
    assert "/dev/ttyUSB0" in edited.read_text()


def test_name_and_journal_options_make_a_service_set(tmp_path: Path) -> None:
    journal = tmp_path / "state" / "vasopilot-journal.sqlite"
    assert main(["init-rig", "stepper", str(tmp_path / "etc"), "--name", "rig.toml",
                 "--journal", str(journal)]) == 0
    config = load_rig(tmp_path / "etc" / "rig.toml")
    assert config.journal_path == journal
    assert config.profile.pump.driver == "gpio-stepper"


def test_a_name_that_is_not_a_file_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init-rig", "sim", str(tmp_path), "--name", "../rig.toml"]) == 2
    assert main(["init-rig", "sim", str(tmp_path), "--name", LIBRARY_FILE]) == 2
    assert list(tmp_path.iterdir()) == []
    assert "--name" in capsys.readouterr().err


def test_a_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["init-rig", "sim", str(tmp_path / "file" / "rig")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vasopilot: init-rig: cannot write into") and err.count("\n") == 1


def test_a_copied_set_keeps_working(tmp_path: Path) -> None:
    main(["init-rig", "harvard", str(tmp_path / "a")])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    config = load_rig(tmp_path / "b" / "bench-harvard.toml")
    assert config.journal_path == tmp_path / "b" / "bench-harvard-journal.sqlite"
