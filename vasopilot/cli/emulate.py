"""``vasopilot emulate new-era|harvard|bridge|balance``: a virtual device on a pseudo-terminal.

The emulator prints its device path (and, with ``--link``, keeps a symlink there) so the
production drivers, nesp-style tools or a terminal program can talk to it. It runs on the wall
clock, driven by the simulated syringe mechanics, until interrupted. ``bridge`` is the Pico's
firmware logic behind a simulated HAL, speaking the bridge protocol. The balance (MT-SICS)
weighs the outflow of a simulated pump running at ``--rate`` mL/h.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vasopilot.cli._args import positive_float, positive_int

if TYPE_CHECKING:
    from drivers.sim.pty_port import PtyPort
    from vasopilot.core.config import SyringeSpec

KINDS = ("new-era", "harvard", "bridge", "balance")
DEFAULT_BAUD = {"new-era": 19200, "harvard": 115200, "bridge": 115200, "balance": 9600}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="emulate a serial syringe pump, the firmware bridge or an MT-SICS balance on a "
        "pseudo-terminal",
        description="Run a pump emulator (NE-1000, Pump 11 Elite, or the firmware bridge's "
        "Pico) on a pseudo-terminal, "
        "driven by the simulated syringe mechanics, and print the device path. A pty does "
        "not enforce the baud rate: --baud is accepted so commands written for the real "
        "pump work unchanged.",
    )
    parser.add_argument("kind", choices=KINDS, help="which device to emulate")
    parser.add_argument("--link", type=Path, default=None,
                        help="also make a symlink to the device here (kept across restarts)")
    parser.add_argument("--address", type=int, default=0, help="pump address 0-99 (default 0)")
    parser.add_argument("--baud", type=positive_int, default=None,
                        help="nominal baud rate (default: the pump's factory setting)")
    parser.add_argument("--syringe", default="bd-plastipak-50",
                        help="syringe from the default catalogue (default bd-plastipak-50)")
    parser.add_argument("--rate", type=positive_float, default=1.0,
                        help="balance: the simulated pump's rate into the beaker, mL/h "
                        "(default 1)")
    parser.add_argument("--readability-mg", type=positive_float, default=0.01,
                        help="balance: readability in mg (default 0.01; 0.1 for an analytical "
                        "balance)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until ``stop`` is set, for tests)."""
    from vasopilot.core.clock import MonotonicClock
    from vasopilot.core.config import BALANCE_BAUDS, PUMP_BAUDS, SyringeCatalogue
    from vasopilot.core.errors import ConfigError
    from vasopilot.rig.sim import emulator_port

    if not 0 <= args.address <= 99:
        raise ConfigError(f"--address must be 0-99, got {args.address}")
    syringes = SyringeCatalogue().syringes
    if args.syringe not in syringes:
        raise ConfigError(f"--syringe {args.syringe!r} is not in the catalogue "
                          f"({', '.join(sorted(syringes))})")
    syringe = syringes[args.syringe]
    if args.link is not None and not args.link.parent.is_dir():
        raise ConfigError(f"--link {args.link}: no folder {args.link.parent} to make the "
                          "link in")
    baud = args.baud or DEFAULT_BAUD[args.kind]
    bauds = BALANCE_BAUDS if args.kind == "balance" else PUMP_BAUDS[args.kind]
    if baud not in bauds:
        raise ConfigError(f"--baud {baud} is not a rate the {args.kind} speaks (one of "
                          f"{', '.join(map(str, bauds))})")
    if args.kind == "balance":
        port = _balance_port(args, syringe)
    else:
        port = emulator_port(args.kind, MonotonicClock(), syringe, args.address, args.link)
    # Ctrl-C is the normal way out, even while the banner is still being printed.
    with port, contextlib.suppress(KeyboardInterrupt):
        print(port.device_path, flush=True)
        where = f" (link {port.path})" if args.link is not None else ""
        if args.kind == "balance":
            print(f"MT-SICS balance emulator, {args.readability_mg:g} mg, weighing "
                  f"{args.rate:g} mL/h from a {syringe.name}, nominal {baud} baud 8N1{where}; "
                  "Ctrl-C to stop", flush=True)
        else:
            at = "" if args.kind == "bridge" else f" at address {args.address}"
            print(f"{args.kind} emulator{at}, nominal {baud} baud, "
                  f"{syringe.name}{where}; Ctrl-C to stop", flush=True)
        (stop or threading.Event()).wait()
    return 0


def _balance_port(args: argparse.Namespace, syringe: SyringeSpec) -> PtyPort:
    from pydantic import ValidationError

    from vasopilot.core.clock import MonotonicClock
    from vasopilot.core.config import BalanceEmulatorSettings
    from vasopilot.core.errors import ConfigError, PumpRefusedError
    from vasopilot.rig.bench import balance_emulator_port

    try:
        settings = BalanceEmulatorSettings(readability_mg=args.readability_mg)
    except ValidationError:
        raise ConfigError(f"--readability-mg must be 0.001-1 mg, got {args.readability_mg}") \
            from None
    try:
        return balance_emulator_port(MonotonicClock(), syringe, rate_ml_h=args.rate,
                                     settings=settings, link=args.link)
    except PumpRefusedError as exc:
        raise ConfigError(f"--rate {args.rate:g} mL/h: {exc}") from None
