"""``vasopilot pump status --rig PROFILE [--json]``: what a pump is doing, read without changing it.

For a person checking a pump after a crash: any driver of a profile (sim, new-era, harvard,
gpio-stepper, bridge). The serial drivers connect as they always do (the NE-1000 takes the
profile's safe-mode setting, an idle pump the profile's bore) and never touch a running pump's
rate; the bridge is only read (no host-loss policy is written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class PumpReport(BaseModel):
    """The ``--json`` contract: exactly these keys (the bridge adds ``host_lost``, ``boot_id``)."""

    model_config = ConfigDict(extra="forbid")

    running: bool
    rate_ml_h: float
    volume_ml: float
    alarm: str | None


class BridgeReport(PumpReport):
    host_lost: bool
    boot_id: int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pump", help="read a pump's state", description="Talk to the pump of a rig profile.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status", help="print what the pump is doing, without changing it",
        description="Read the pump of a profile: running, rate (mL/h), volume delivered by its "
        "counter (mL), alarm; for the firmware bridge also whether it has lost its host and "
        "its boot id. Nothing is commanded.")
    status.add_argument("--rig", type=Path, required=True, help="rig profile (config/*.toml)")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=run_status)


def read_report(rig: Path) -> PumpReport:
    from vasopilot.core.clock import MonotonicClock
    from vasopilot.core.types import PumpState
    from vasopilot.rig import open_pump
    from vasopilot.settings import load_rig

    config = load_rig(rig)
    clock = MonotonicClock()
    settings = config.profile.pump
    if settings.driver == "bridge":
        from drivers.pump.bridge import BridgePump

        assert settings.port is not None
        bridge = BridgePump(settings.port, clock=clock, syringe=config.syringe,
                            mechanics=settings.mechanics, baud=settings.baud,
                            timeout_s=settings.bridge.reply_timeout_s,
                            max_attempts=settings.bridge.max_attempts, configure=False)
        try:
            status = bridge.status()
            state = bridge.bridge_state()
        finally:
            bridge.close()
        return BridgeReport(running=status.state is PumpState.INFUSING,
                            rate_ml_h=status.rate_ml_h, volume_ml=status.delivered_ml,
                            alarm=status.alarm, host_lost=state.host_lost,
                            boot_id=state.boot_id)
    pump = open_pump(config, clock)
    try:
        status = pump.status()
    finally:
        pump.close()
    return PumpReport(running=status.state is PumpState.INFUSING, rate_ml_h=status.rate_ml_h,
                      volume_ml=status.delivered_ml, alarm=status.alarm)


def run_status(args: argparse.Namespace) -> int:
    report = read_report(args.rig)
    if args.json:
        print(report.model_dump_json())
        return 0
    for key, value in report.model_dump().items():
        print(f"{key:>10}: {value}")
    return 0
