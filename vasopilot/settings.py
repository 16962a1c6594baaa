"""Loading configuration files: a bad file is refused naming file, key, value and reason.

A rig profile may name a drug library and a syringe catalogue (paths relative to the profile);
without them the embedded defaults of :mod:`vasopilot.core.config` apply.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vasopilot.core.config import (
    DrugEntry,
    DrugLibrary,
    RigProfile,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RigConfig:
    """A validated rig profile with its drug entry and syringe resolved."""

    profile: RigProfile
    drug: DrugEntry
    syringe: SyringeSpec
    source: Path | None
    journal_path: Path


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return data


def _refusal(path: Path | str, exc: ValidationError, data: Any) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "<file>"
        value = _lookup(data, loc) if loc else "<whole file>"
        lines.append(f"{path}: key {key!s} = {value!r}: {err['msg']}")
    return ConfigError("configuration refused:\n  " + "\n  ".join(lines))


def validate_data(model: type[M], data: dict[str, Any], path: Path | str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refusal(path, exc, data) from None


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_model(model: type[M], path: Path) -> M:
    return validate_data(model, load_toml(path), path)


def resolve(profile: RigProfile, source: Path | None) -> RigConfig:
    """Resolve the profile's drug and syringe, checking they exist and fit together."""
    base = source.parent if source else Path.cwd()
    where = source or Path("<embedded defaults>")
    library = (
        load_model(DrugLibrary, base / profile.drug_library)
        if profile.drug_library
        else DrugLibrary()
    )
    catalogue = (
        load_model(SyringeCatalogue, base / profile.syringe_catalogue)
        if profile.syringe_catalogue
        else SyringeCatalogue()
    )
    drug = library.drugs.get(profile.drug)
    if drug is None:
        raise ConfigError(
            f"{where}: key drug = {profile.drug!r}: not in the drug library "
            f"(has {sorted(library.drugs)})"
        )
    syringe = catalogue.syringes.get(profile.pump.syringe)
    if syringe is None:
        raise ConfigError(
            f"{where}: key pump.syringe = {profile.pump.syringe!r}: not in the syringe catalogue "
            f"(has {sorted(catalogue.syringes)})"
        )
    if drug.dose_unit == "mcg/kg/min" and profile.patient.weight_kg is None:
        raise ConfigError(
            f"{where}: key patient.weight_kg = None: drug {drug.name!r} is dosed in mcg/kg/min "
            "and needs the patient's weight (30-250 kg)"
        )
    journal = Path(profile.journal)
    return RigConfig(
        profile=profile,
        drug=drug,
        syringe=syringe,
        source=source,
        journal_path=journal if journal.is_absolute() else base / journal,
    )


def load_rig(path: Path | None) -> RigConfig:
    """Load and validate a rig profile; ``None`` gives the embedded simulation defaults."""
    if path is None:
        return resolve(RigProfile(), None)
    return resolve(load_model(RigProfile, path), path)
