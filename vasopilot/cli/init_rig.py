"""``vasopilot init-rig KIND DIR``: write a complete, commented profile set for one kind of rig.

The set is the profile, the drug library and the syringe catalogue it names, side by side, so a
copied folder keeps working (paths in a profile resolve relative to the profile). Every key is
written with a comment from the settings model: what it is, and its bound. The profiles in
``config/`` are this command's output (``tests/test_init_rig.py`` holds them to it).
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vasopilot.core.config import (
    SERIAL_DRIVERS,
    Bound,
    DrugLibrary,
    Matches,
    RigProfile,
    SyringeCatalogue,
)
from vasopilot.core.errors import ConfigError

LIBRARY_FILE = "drug-library.toml"
CATALOGUE_FILE = "syringes.toml"


@dataclass(frozen=True)
class Kind:
    """One kind of rig: its profile file name, what its header says, and its settings."""

    file: str
    header: str
    settings: dict[str, Any]


_ADS1115 = {"source": "ads1115", "fs_hz": 250.0}

KINDS: dict[str, Kind] = {
    "sim": Kind("sim.toml", "A simulated rig: the physics twin of a syringe pump and a virtual "
                "patient (vasopilot sim uses the same values when no profile is given).",
                {"rig_id": "sim-rig", "pump": {"driver": "sim"}, "pressure": {"source": "sim"}}),
    "newera": Kind("bench-newera.toml", "A New Era NE-1000 (or WPI Aladdin) on a USB-RS-232 "
                   "adapter, with an arterial-line transducer on an ADS1115. Edit: port, "
                   "address, syringe, patient.",
                   {"rig_id": "bench-newera",
                    "pump": {"driver": "new-era", "port": "/dev/ttyUSB0", "baud": 19200},
                    "pressure": _ADS1115}),
    "harvard": Kind("bench-harvard.toml", "A Harvard Apparatus Pump 11 Elite on RS-232 "
                    "(115200 baud) with an arterial-line transducer on an ADS1115.",
                    {"rig_id": "bench-harvard",
                     "pump": {"driver": "harvard", "port": "/dev/ttyUSB0", "baud": 115200},
                     "pressure": _ADS1115}),
    "stepper": Kind("bench-stepper.toml", "A lead-screw syringe pump driven by an "
                    "A4988/DRV8825/TMC2209 from the Pi's GPIO header, with an ADS1115 "
                    "transducer. Pi 5: pin_factory = \"lgpio\" (pigpio does not run there).",
                    {"rig_id": "bench-stepper",
                     "pump": {"driver": "gpio-stepper",
                              "gpio": {"ms_pins": [5, 6, 13], "end_of_travel_pin": 19,
                                       "plunger_pin": 26}},
                     "pressure": _ADS1115}),
    "bridge": Kind("bench-bridge.toml", "A step-timing microcontroller (RP2040 Pico, the "
                   "firmware bridge, flashed with make firmware) on USB, driving the lead-screw "
                   "pump, with an ADS1115 transducer. If the Pi dies the Pico keeps the last "
                   "rate and sounds its alarm (S12).",
                   {"rig_id": "bench-bridge",
                    "pump": {"driver": "bridge", "port": "/dev/ttyACM0", "baud": 115200},
                    "pressure": _ADS1115}),
}


def profile_for(kind: str, journal: str | None = None) -> RigProfile:
    settings = dict(KINDS[kind].settings)
    settings.update(drug_library=LIBRARY_FILE, syringe_catalogue=CATALOGUE_FILE,
                    journal=journal or f"{settings['rig_id']}-journal.sqlite")
    return RigProfile.model_validate(settings, strict=False)


def _relevant(table: str, key: str, profile: RigProfile) -> bool:
    """Keys of the other kinds stay out of a profile (their defaults apply and are unused)."""
    driver, source = profile.pump.driver, profile.pressure.source
    if table == "pump":
        if key in ("port", "baud"):
            return driver in SERIAL_DRIVERS
        if key == "address":
            return driver in ("new-era", "harvard")
        if key == "safe_mode_timeout_s":
            return driver == "new-era"
        if key == "mechanics":
            # the bridge's microcontroller steps the same lead screw
            return driver in ("sim", "gpio-stepper", "bridge")
        if key == "gpio":
            return driver == "gpio-stepper"
        if key == "bridge":
            return driver == "bridge"
    if table == "pressure":
        if key in ("record", "channel"):
            return source == "replay"
        if key == "mode":
            return source == "sim"
        if key.startswith(("i2c_", "adc_", "sensitivity", "excitation", "amplifier")):
            return source == "ads1115"
    return True


def toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() and key.isascii() \
        else json.dumps(key)


def toml_value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="#   ")


def _hex(value: int) -> str:
    return f"0x{value:02X}"


def _comment(model: type[BaseModel], key: str) -> str:
    info = model.model_fields[key]
    bounds = [m.func.describe() for m in info.metadata if isinstance(getattr(m, "func", None),
                                                                     Bound)]
    patterns = [m.func.why for m in info.metadata if isinstance(getattr(m, "func", None),
                                                                Matches)]
    return "; ".join([info.description or key, *bounds, *patterns])


def render(model: BaseModel, table: str = "", profile: RigProfile | None = None) -> list[str]:
    """``model`` as TOML lines: every key with its comment, sub-tables after the scalars."""
    lines: list[str] = []
    later: list[tuple[str, BaseModel]] = []
    cls = type(model)
    for key in cls.model_fields:
        if profile is not None and not _relevant(table, key, profile):
            continue
        value = getattr(model, key)
        path = f"{table}.{toml_key(key)}" if table else toml_key(key)
        if isinstance(value, BaseModel):
            later.append((path, value))
            continue
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel)
                                                     for v in value.values()):
            later += [(f"{path}.{toml_key(name)}", entry) for name, entry in value.items()]
            continue
        lines += _wrapped(_comment(cls, key))
        lines.append(f"# {key} is not set" if value is None else
                     f"{key} = {_hex(value) if key == 'i2c_address' else toml_value(value)}")
    for path, sub in later:
        lines += ["", f"[{path}]", *render(sub, path, profile)]
    return lines


def profile_set(kind: str, journal: str | None = None) -> dict[str, str]:
    """The files of ``kind``'s set, by name: profile, drug library, syringe catalogue."""
    spec = KINDS[kind]
    profile = profile_for(kind, journal)
    return {
        spec.file: "\n".join([
            *_wrapped(spec.header),
            "# Written by `vasopilot init-rig`; check an edited copy with `vasopilot check --rig`.",
            "# Paths are relative to this file's folder.",
            *render(profile, profile=profile)]) + "\n",
        LIBRARY_FILE: "\n".join([
            "# Drug library (dose error reduction software, S1): doses in each entry's",
            "# dose_unit, intervals in seconds.",
            *render(DrugLibrary())]) + "\n",
        CATALOGUE_FILE: "\n".join([
            "# Syringe catalogue: inner diameters from the makers' data sheets; compliance of "
            "syringe plus line.",
            *render(SyringeCatalogue())]) + "\n",
    }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init-rig",
        help="write a complete, commented profile set for a kind of rig",
        description="Write a rig profile with its drug library and syringe catalogue into DIR "
        "(created if needed). Existing files are never overwritten without --force.",
    )
    parser.add_argument("kind", choices=sorted(KINDS), metavar="KIND",
                        help=f"kind of rig: {', '.join(sorted(KINDS))}")
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder to write the set into")
    parser.add_argument("--name", help="profile file name (default: the kind's, e.g. "
                        f"{KINDS['newera'].file})")
    parser.add_argument("--journal", help="journal path in the profile (default: "
                        "RIG_ID-journal.sqlite beside the profile)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = profile_set(args.kind, args.journal)
    if args.name:
        if Path(args.name).name != args.name or args.name in (LIBRARY_FILE, CATALOGUE_FILE):
            raise ConfigError(f"--name {args.name!r}: a file name, other than {LIBRARY_FILE} "
                              f"and {CATALOGUE_FILE}")
        files = {args.name if name == KINDS[args.kind].file else name: text
                 for name, text in files.items()}
    targets = {args.dir / name: text for name, text in files.items()}
    present = [str(path) for path in targets if path.exists()]
    if present and not args.force:
        raise ConfigError(f"init-rig: {', '.join(present)} already exist(s); nothing written "
                          "(--force overwrites)")
    try:
        args.dir.mkdir(parents=True, exist_ok=True)
        for path, text in targets.items():
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"init-rig: cannot write into {args.dir}: "
                          f"{exc.strerror or exc}") from None
    profile = next(iter(targets))
    print(f"wrote {', '.join(str(p) for p in targets)}; check it with: "
          f"vasopilot check --rig {profile}")
    return 0
