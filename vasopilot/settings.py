"""Loading configuration files: a bad file is refused naming file, key, value and reason.

A rig profile may name a drug library and a syringe catalogue (paths relative to the profile);
without them the embedded defaults of :mod:`vasopilot.core.config` apply. Checking happens in
three layers, all before anything is opened or created:

1. each file against its model (bounds and cross-field checks within one table,
   :mod:`vasopilot.core.config`);
2. the :data:`RULES`, each a function of the profile with everything it names (:class:`Named`):
   rules that span files or need the filesystem (drug in the library, weight for a
   weight-based entry, CA files, the journal's folder). A new cross-field rule is one function
   appended to :data:`RULES`;
3. the :data:`PRESENCE` rules: is the hardware there (serial device, I2C bus, GPIO chip)?
   ``vasopilot check`` reports them as warnings, so a profile can be checked on a machine
   without the rig; ``vasopilot run`` refuses on them (``load_rig(..., hardware=True)``).

Every refusal is a :class:`Refusal` (file, key, value, reason); :func:`inspect_rig` collects
as many as it can, :func:`load_rig` raises them as one :class:`ProfileError`.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vasopilot.core.config import (
    DRUG_CEILINGS,
    SERIAL_DRIVERS,
    DrugEntry,
    DrugLibrary,
    RigProfile,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.errors import ConfigError
from vasopilot.core.units import DoseUnit

M = TypeVar("M", bound=BaseModel)

EMBEDDED = "<embedded defaults>"
# The `vasopilot init-rig` kind that writes a profile set for each pump driver.
KIND_OF_DRIVER = {"sim": "sim", "new-era": "newera", "harvard": "harvard",
                  "gpio-stepper": "stepper", "bridge": "bridge"}


def _init_rig_hint(data: dict[str, Any]) -> str:
    pump = data.get("pump")
    driver = pump.get("driver") if isinstance(pump, dict) else "sim"
    kind = KIND_OF_DRIVER.get(driver, "KIND") if isinstance(driver, str) else "KIND"
    return (f"`vasopilot init-rig {kind} DIR` writes a profile with its drug library and "
            "syringe catalogue")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in range(32)}


@dataclass(frozen=True)
class Refusal:
    """One refused setting: the file it is in, its dotted key, the value read, and why."""

    file: str
    key: str
    value: Any
    reason: str

    def line(self) -> str:
        """One line, whatever the file name or reason hold (control characters escaped)."""
        return f"{self.file}: key {self.key} = {self.value!r}: {self.reason}".translate(
            _CONTROL_ESCAPES)

    def as_json(self) -> dict[str, Any]:
        """JSON-safe: an absent key is null, inf and nan are the strings TOML writes."""
        return {"file": self.file, "key": self.key, "value": _json_value(self.value),
                "reason": self.reason}


def _json_value(value: Any) -> Any:
    if value is MISSING:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class ProfileError(ConfigError):
    """A profile is refused; :attr:`refusals` holds every refusal found, the message the first."""

    def __init__(self, refusals: list[Refusal], profile: str) -> None:
        self.refusals = tuple(refusals)
        more = len(refusals) - 1
        extra = f" (and {more} more: vasopilot check --rig {profile} lists them)" if more else ""
        super().__init__(refusals[0].line() + extra)


@dataclass(frozen=True)
class RigConfig:
    """A validated rig profile with its drug entry and syringe resolved.

    The profile's paths (journal, MQTT certificate files, replay record) are resolved against
    the profile's folder.
    """

    profile: RigProfile
    drug: DrugEntry
    syringe: SyringeSpec
    source: Path | None
    journal_path: Path


@dataclass(frozen=True)
class Named:
    """A parsed profile with everything it names: what the rules judge."""

    profile: RigProfile
    profile_file: str
    base: Path
    library: DrugLibrary
    library_file: str
    catalogue: SyringeCatalogue
    catalogue_file: str

    @property
    def drug(self) -> DrugEntry | None:
        return self.library.drugs.get(self.profile.drug)

    @property
    def syringe(self) -> SyringeSpec | None:
        return self.catalogue.syringes.get(self.profile.pump.syringe)

    def path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base / path

    def refusal(self, key: str, value: Any, reason: str) -> Refusal:
        return Refusal(self.profile_file, key, value, reason)


Rule = Callable[[Named], Iterator[Refusal]]


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def drug_in_library(named: Named) -> Iterator[Refusal]:
    if named.drug is None:
        yield named.refusal("drug", named.profile.drug,
                            f"not in the drug library {named.library_file} "
                            f"(has {sorted(named.library.drugs)})")


def syringe_in_catalogue(named: Named) -> Iterator[Refusal]:
    if named.syringe is None:
        yield named.refusal("pump.syringe", named.profile.pump.syringe,
                            f"not in the syringe catalogue {named.catalogue_file} "
                            f"(has {sorted(named.catalogue.syringes)})")


def weight_for_weight_based_dosing(named: Named) -> Iterator[Refusal]:
    """S1: a mcg/kg/min entry needs the weight, never a default; a mcg/min entry at a known
    weight stays under the drug's per-kilogram ceiling."""
    drug, weight_kg = named.drug, named.profile.patient.weight_kg
    if drug is None:
        return
    if drug.dose_unit is DoseUnit.MCG_KG_MIN and weight_kg is None:
        yield named.refusal("patient.weight_kg", MISSING,
                            f"drug {named.profile.drug!r} is dosed in mcg/kg/min and needs the "
                            "patient's weight (30-250 kg); none is assumed")
    ceiling = DRUG_CEILINGS[drug.name]
    if drug.dose_unit is DoseUnit.MCG_MIN and weight_kg is not None \
            and drug.hard_max > ceiling.hard_max_mcg_kg_min * weight_kg:
        yield named.refusal(
            "patient.weight_kg", weight_kg,
            f"{named.profile.drug!r}'s hard_max {drug.hard_max:g} mcg/min is "
            f"{drug.hard_max / weight_kg:.2f} mcg/kg/min at this weight, above the "
            f"{ceiling.hard_max_mcg_kg_min:g} mcg/kg/min ceiling: {ceiling.why_dose}")


def peripheral_line_fits_the_entry(named: Named) -> Iterator[Refusal]:
    """A drug on a peripheral line only as dilute and as high as its entry allows there:
    extravasation of a concentrated vasopressor from a peripheral cannula causes tissue
    necrosis, so a central line is used whenever possible."""
    drug, patient = named.drug, named.profile.patient
    if drug is None or patient.line != "peripheral":
        return
    entry = f"drugs.{named.profile.drug}"
    others = sorted(name for name, other in named.library.drugs.items()
                    if other.peripheral_max_conc_mcg_ml is not None
                    and other.conc_mcg_ml <= other.peripheral_max_conc_mcg_ml)
    use = (f"use a peripheral entry ({', '.join(others)}) or a central line" if others
           else "use a central line")
    allowed = drug.peripheral_max_conc_mcg_ml
    if allowed is None:
        yield Refusal(named.library_file, f"{entry}.peripheral_max_conc_mcg_ml", MISSING,
                      f"on a peripheral line ([patient] line = \"peripheral\") the entry must "
                      f"say what it allows there; {use}")
    elif drug.conc_mcg_ml > allowed:
        yield Refusal(named.library_file, f"{entry}.conc_mcg_ml", drug.conc_mcg_ml,
                      f"{drug.conc_mcg_ml:g} mcg/mL is above the {allowed:g} mcg/mL this entry "
                      f"allows on a peripheral line ([patient] line = \"peripheral\"): "
                      f"extravasation of a concentrated vasopressor causes necrosis; {use}")
    if drug.dose_unit is DoseUnit.MCG_KG_MIN and patient.weight_kg is None:
        return
    hard_max_mcg_min = drug.mcg_min(drug.hard_max, patient.weight_kg)
    if hard_max_mcg_min > drug.peripheral_max_dose_mcg_min:
        yield Refusal(named.library_file, f"{entry}.hard_max", drug.hard_max,
                      f"{hard_max_mcg_min:g} mcg/min is above the "
                      f"{drug.peripheral_max_dose_mcg_min:g} mcg/min this entry allows on a "
                      f"peripheral line ([patient] line = \"peripheral\"); {use}")


def port_is_a_serial_url(named: Named) -> Iterator[Refusal]:
    pump = named.profile.pump
    if pump.driver not in SERIAL_DRIVERS or pump.port is None:
        return
    if "://" not in pump.port:
        if not pump.port.startswith("/"):
            yield named.refusal("pump.port", pump.port,
                                "a device path must be absolute (/dev/ttyUSB0), or a pyserial "
                                "URL (socket://host:port, rfc2217://host:port)")
        return
    import serial

    try:
        serial.serial_for_url(pump.port, do_not_open=True)
    except (ValueError, serial.SerialException) as exc:
        yield named.refusal("pump.port", pump.port, f"not a serial URL pyserial knows: {exc}")


MQTT_FILES = ("ca_file", "cert_file", "key_file", "password_file")


def mqtt_files_exist(named: Named) -> Iterator[Refusal]:
    mqtt = named.profile.mqtt
    for key in MQTT_FILES:
        name = getattr(mqtt, key)
        if name is not None and not named.path(name).is_file():
            yield named.refusal(f"mqtt.{key}", name,
                                f"file not found: {named.path(name)} (relative paths start at "
                                "the profile's folder); telemetry would be silently dead")


def replay_record_exists(named: Named) -> Iterator[Refusal]:
    record = named.profile.pressure.record
    if record is None:
        return
    header = named.path(record + ".hea")
    if not _exists(header):
        yield named.refusal("pressure.record", record,
                            f"no WFDB record: {header} not found (give the path without "
                            "extension, relative to the profile's folder)")


def journal_folder_is_writable(named: Named) -> Iterator[Refusal]:
    """The journal can be created: checked without creating anything."""
    value = named.profile.journal
    path = named.path(value)
    try:
        if path.is_dir():
            yield named.refusal("journal", value, f"{path} is a folder, not a journal file")
            return
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            yield named.refusal("journal", value, f"{path} is not writable by this user")
            return
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            yield named.refusal("journal", value, f"cannot make {path.parent}: {ancestor} "
                                "is a file, not a folder")
        elif not os.access(ancestor, os.W_OK | os.X_OK):
            yield named.refusal("journal", value, f"cannot make the journal in {path.parent}: "
                                f"{ancestor} is not writable by this user")
    except (OSError, ValueError) as exc:
        yield named.refusal("journal", value, f"not a usable path: {exc}")


RULES: list[Rule] = [
    drug_in_library,
    syringe_in_catalogue,
    weight_for_weight_based_dosing,
    peripheral_line_fits_the_entry,
    port_is_a_serial_url,
    mqtt_files_exist,
    replay_record_exists,
    journal_folder_is_writable,
]


def serial_device_present(named: Named) -> Iterator[Refusal]:
    pump = named.profile.pump
    if pump.driver in SERIAL_DRIVERS and pump.port and "://" not in pump.port \
            and not _exists(Path(pump.port)):
        yield named.refusal("pump.port", pump.port,
                            "no such device: is the pump's serial adapter plugged in? "
                            "(ls /dev/serial/by-id/)")


def i2c_bus_present(named: Named) -> Iterator[Refusal]:
    pressure = named.profile.pressure
    if pressure.source == "ads1115" and not _exists(Path(f"/dev/i2c-{pressure.i2c_bus}")):
        yield named.refusal("pressure.i2c_bus", pressure.i2c_bus,
                            f"no I2C bus {pressure.i2c_bus}: is this a Pi with I2C enabled? "
                            "use source = \"sim\" or \"replay\" to try the rig without a "
                            "transducer")


def gpio_chip_present(named: Named) -> Iterator[Refusal]:
    pump = named.profile.pump
    if pump.driver == "gpio-stepper" and pump.gpio.pin_factory != "mock" \
            and not _exists(Path("/dev/gpiochip0")):
        yield named.refusal("pump.gpio.pin_factory", pump.gpio.pin_factory,
                            "no GPIO chip (/dev/gpiochip0): is this a Raspberry Pi? "
                            "pin_factory = \"mock\" tries the rig without one")


PRESENCE: list[Rule] = [serial_device_present, i2c_bus_present, gpio_chip_present]


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return data


def _refusals(path: Path | str, exc: ValidationError, data: Any) -> list[Refusal]:
    refusals = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = (err.get("ctx") or {}).get("key")
        if key:
            loc = (*loc, *key.split("."))
        refusals.append(Refusal(str(path), ".".join(str(p) for p in loc) or "<file>",
                                _lookup(data, loc) if loc else "<whole file>", err["msg"]))
    return refusals


def _parse(model: type[M], data: dict[str, Any], path: Path | str) -> tuple[M | None,
                                                                            list[Refusal]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _refusals(path, exc, data)


class UnreadableFileError(ConfigError):
    """A settings file that cannot be read as TOML; ``reason`` says why, without the path."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UnreadableFileError(path, "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UnreadableFileError(path, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UnreadableFileError(path, "not UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise UnreadableFileError(path, f"cannot be read: {exc}") from None


def _file_refusal(exc: UnreadableFileError) -> Refusal:
    return Refusal(str(exc.path), "<file>", "<whole file>", exc.reason)


def _load_named(
    model: type[M], key: str, data: dict[str, Any], base: Path, profile_file: str
) -> tuple[M | None, str, list[Refusal]]:
    """An included file (``key`` of the profile), or the embedded default when not named."""
    relative = data.get(key)
    if relative is None:
        return model(), EMBEDDED, []
    if not isinstance(relative, str):
        return None, "", []  # the profile's own validation refuses the key
    path = Path(relative) if Path(relative).is_absolute() else base / relative
    if not relative or path.is_dir():
        return None, str(path), [Refusal(profile_file, key, relative,
                                         f"{path} is a folder: name the TOML file")]
    if not _exists(path):
        return None, str(path), [Refusal(
            profile_file, key, relative,
            f"file not found: {path} (paths resolve relative to the profile's folder; "
            f"keep it beside the profile, or {_init_rig_hint(data)})")]
    try:
        data = load_toml(path)
    except UnreadableFileError as exc:
        return None, str(path), [_file_refusal(exc)]
    parsed, refusals = _parse(model, data, path)
    return parsed, str(path), refusals


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect_rig` found: the config when nothing was refused, and the notices."""

    config: RigConfig | None
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[Refusal] = field(default_factory=list)


def _resolved(named: Named, source: Path | None) -> RigConfig:
    profile = named.profile
    mqtt = profile.mqtt.model_copy(update={
        key: str(named.path(name)) for key in MQTT_FILES
        if (name := getattr(profile.mqtt, key)) is not None})
    pressure = profile.pressure if profile.pressure.record is None else \
        profile.pressure.model_copy(update={"record": str(named.path(profile.pressure.record))})
    assert named.drug is not None and named.syringe is not None  # the rules refused otherwise
    return RigConfig(
        profile=profile.model_copy(update={"mqtt": mqtt, "pressure": pressure}),
        drug=named.drug, syringe=named.syringe, source=source,
        journal_path=named.path(profile.journal),
    )


def inspect_rig(path: Path | None) -> Inspection:
    """Every refusal a profile (``None``: the embedded defaults) and what it names earn.

    Opens and creates nothing; reads the profile, its drug library and syringe catalogue.
    """
    if path is None:
        data: dict[str, Any] = {}
        base, where = Path.cwd(), EMBEDDED
    else:
        base, where = path.parent, str(path)
        try:
            data = load_toml(path)
        except UnreadableFileError as exc:
            return Inspection(None, [_file_refusal(exc)])
    profile, refusals = _parse(RigProfile, data, where)
    library, library_file, found = _load_named(DrugLibrary, "drug_library", data, base, where)
    refusals += found
    catalogue, catalogue_file, found = _load_named(
        SyringeCatalogue, "syringe_catalogue", data, base, where)
    refusals += found
    if profile is None or library is None or catalogue is None:
        return Inspection(None, refusals)
    named = Named(profile, where, base, library, library_file, catalogue, catalogue_file)
    refusals = [refusal for rule in RULES for refusal in rule(named)]
    if refusals:
        return Inspection(None, refusals)
    warnings = [refusal for rule in PRESENCE for refusal in rule(named)]
    return Inspection(_resolved(named, path), [], warnings)


def notices(config: RigConfig) -> list[str]:
    """What an operator must be told about a profile that loads (S6: an older key's reading)."""
    patient = config.profile.patient
    if not patient.read_from_target:
        return []
    return [f"patient.target_map_mmhg = {patient.target_map_mmhg:g} is the older key: read as "
            f"the set-point, so the MAP floor is {patient.floor_mmhg:g} mmHg and the lower "
            f"limit {patient.lower_limit_mmhg:g} (S6); set floor_mmhg instead"]


def load_rig(path: Path | None, *, hardware: bool = False) -> RigConfig:
    """Load and validate a rig profile; ``None`` gives the embedded simulation defaults.

    With ``hardware`` the devices the profile names must be present too (``vasopilot run``).
    """
    found = inspect_rig(path)
    refusals = found.refusals + (found.warnings if hardware else [])
    if refusals:
        raise ProfileError(refusals, str(path or EMBEDDED))
    assert found.config is not None
    return found.config


__all__ = [
    "PRESENCE", "RULES", "Inspection", "Named", "ProfileError", "Refusal", "RigConfig",
    "inspect_rig", "load_rig", "load_toml", "notices",
]
