"""A bad configuration file is refused at start-up naming file, key, value and reason."""

from pathlib import Path

import pytest

from vasopilot.core.config import NOREPINEPHRINE, RigProfile
from vasopilot.core.errors import ConfigError
from vasopilot.settings import load_rig

CONFIG = Path(__file__).resolve().parents[1] / "config"


def write(tmp_path: Path, text: str, name: str = "rig.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sim_profile_matches_embedded_defaults() -> None:
    from_file = load_rig(CONFIG / "sim.toml")
    embedded = load_rig(None)
    assert from_file.drug == embedded.drug == NOREPINEPHRINE
    assert from_file.syringe == embedded.syringe
    assert from_file.profile.model_dump(exclude={"drug_library", "syringe_catalogue", "journal"}) \
        == embedded.profile.model_dump(exclude={"drug_library", "syringe_catalogue", "journal"})


def test_every_profile_in_config_loads() -> None:
    profiles = [p for p in CONFIG.glob("*.toml") if p.name.startswith(("sim", "bench"))]
    assert profiles
    for path in profiles:
        assert load_rig(path).profile.rig_id


@pytest.mark.parametrize(
    ("text", "key", "value", "reason"),
    [
        ("[patient]\ntarget_map_mmhg = 95\n", "patient.target_map_mmhg", "95",
         "less than or equal"),
        ("[patient]\nweight_kg = 20\n", "patient.weight_kg", "20", "greater than or equal"),
        ("[patient]\nweight_kg = 'heavy'\n", "patient.weight_kg", "'heavy'", "valid number"),
        ("[pump]\ndriver = 'new-era'\n", "pump", "new-era", "needs a port"),
        ("[pump]\ndriver = 'teleport'\n", "pump.driver", "'teleport'", "Input should be"),
        ("[safety]\nsilence_max_s = 600\n", "safety.silence_max_s", "600", "less than or equal"),
        ("[mqtt]\nenabled = true\n", "mqtt", "enabled", "insecure = true"),
        ("colour = 'red'\n", "colour", "'red'", "Extra inputs"),
        ("[patient]\ntarget_map_mmhg = 62\nlower_limit_mmhg = 70\n", "patient", "70",
         "must not exceed"),
    ],
)
def test_bad_profile_is_refused_with_file_key_value_and_reason(
    tmp_path: Path, text: str, key: str, value: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_rig(path)
    message = str(info.value)
    assert str(path) in message
    assert f"key {key}" in message
    assert value in message
    assert reason in message


def test_drug_library_with_soft_max_above_hard_max_is_refused(tmp_path: Path) -> None:
    library = (CONFIG / "drug-library.toml").read_text().replace(
        "hard_max = 60.0", "hard_max = 20.0")
    write(tmp_path, library, "drugs.toml")
    path = write(tmp_path, "drug_library = 'drugs.toml'\n")
    with pytest.raises(ConfigError, match=r"drugs\.toml.*drugs\.norepinephrine.*soft_max"):
        load_rig(path)


def test_unknown_syringe_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[pump]\nsyringe = 'bd-60'\n")
    with pytest.raises(ConfigError, match=r"pump\.syringe = 'bd-60': not in the syringe catalogue"):
        load_rig(path)


def test_missing_file_and_broken_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rig(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_rig(write(tmp_path, "[patient\n"))


def test_journal_path_is_relative_to_the_profile(tmp_path: Path) -> None:
    config = load_rig(write(tmp_path, "journal = 'runs/j.sqlite'\n"))
    assert config.journal_path == tmp_path / "runs" / "j.sqlite"
    assert RigProfile().journal.endswith(".sqlite")
