"""``vasopilot check --rig FILE [--json]``: validate a profile and say what a run would open.

Touches no hardware and creates nothing: the profile, its drug library and syringe catalogue
are read, every rule of :mod:`vasopilot.settings` is applied, and devices the profile names are
looked for. An absent device (serial adapter, I2C bus, GPIO chip) is a warning here, so a
profile can be prepared on a machine without the rig; ``vasopilot run`` refuses on it.

Exit 0 with what would be opened, or 2 with every refusal found. ``--json`` prints one object:
``{"ok": true, "rig": RIG_ID, "profile": FILE, "opens": {...}, "warnings": [...]}`` or
``{"ok": false, "profile": FILE, "refusals": [{"file", "key", "value", "reason"}, ...],
"warnings": []}``; a value is null when the key is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vasopilot.core.config import SERIAL_DRIVERS

if TYPE_CHECKING:
    from vasopilot.settings import RigConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a rig profile and what it names, without opening anything",
        description="Validate a rig profile with its drug library, syringe catalogue and the "
        "files it names, and print what `vasopilot run` would open (exit 0) or every refusal "
        "(exit 2). Opens no hardware and creates no file; an absent device is a warning.",
    )
    parser.add_argument("--rig", type=Path, required=True, help="rig profile (TOML)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def opens(config: RigConfig) -> dict[str, Any]:
    """What ``vasopilot run`` would open or create for ``config``."""
    profile = config.profile
    pump, pressure, mqtt = profile.pump, profile.pressure, profile.mqtt
    pump_opens: dict[str, Any] = {"driver": pump.driver, "syringe": config.syringe.name}
    if pump.driver in SERIAL_DRIVERS:
        pump_opens.update(port=pump.port, baud=pump.baud, address=pump.address)
    if pump.driver == "gpio-stepper":
        pump_opens.update(pin_factory=pump.gpio.pin_factory, step_pin=pump.gpio.step_pin)
    pressure_opens: dict[str, Any] = {"source": pressure.source}
    if pressure.source == "ads1115":
        pressure_opens.update(i2c_bus=pressure.i2c_bus, i2c_address=pressure.i2c_address,
                              fs_hz=pressure.fs_hz)
    elif pressure.source == "replay":
        pressure_opens.update(record=pressure.record, channel=pressure.channel)
    broker = None
    if mqtt.enabled:
        broker = {"url": f"{'mqtts' if mqtt.tls else 'mqtt'}://{mqtt.host}:{mqtt.port}",
                  "rig_id": mqtt.rig_id or profile.rig_id, "ca_file": mqtt.ca_file,
                  "remote_commands": mqtt.remote_commands}
    return {
        "pump": pump_opens,
        "pressure": pressure_opens,
        "journal": str(config.journal_path),
        "mqtt": broker,
        "drug": {"entry": profile.drug, "conc_mcg_ml": config.drug.conc_mcg_ml,
                 "dose_unit": config.drug.dose_unit.value, "hard_max": config.drug.hard_max},
    }


def run(args: argparse.Namespace) -> int:
    from vasopilot.settings import inspect_rig, notices

    found = inspect_rig(args.rig)
    warnings = [w.as_json() for w in found.warnings]
    if found.config is None:
        if args.json:
            print(json.dumps({"ok": False, "profile": str(args.rig),
                              "refusals": [r.as_json() for r in found.refusals],
                              "warnings": warnings}))
        else:
            for refusal in found.refusals:
                print(f"vasopilot check: refused: {refusal.line()}", file=sys.stderr)
        return 2
    what = opens(found.config)
    if args.json:
        print(json.dumps({"ok": True, "rig": found.config.profile.rig_id,
                          "profile": str(args.rig), "opens": what, "warnings": warnings}))
        return 0
    print(f"{args.rig}: ok (rig {found.config.profile.rig_id})")
    for part, value in what.items():
        text = "off" if value is None else value if isinstance(value, str) else \
            ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"  {part:<9} {text}")
    for warning in found.warnings:
        print(f"  warning: {warning.line()}")
    for notice in notices(found.config):
        print(f"  note: {notice}")
    return 0
