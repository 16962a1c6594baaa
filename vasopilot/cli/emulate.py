"""``vasopilot emulate new-era|harvard``: a virtual serial pump on a pseudo-terminal.

The emulator prints its device path (and, with ``--link``, keeps a symlink there) so the
production drivers, nesp-style tools or a terminal program can talk to it. It runs on the wall
clock, driven by the simulated syringe mechanics, until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from pathlib import Path

KINDS = ("new-era", "harvard")
DEFAULT_BAUD = {"new-era": 19200, "harvard": 115200}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="emulate a serial syringe pump on a pseudo-terminal",
        description="Run a pump emulator (NE-1000 or Pump 11 Elite) on a pseudo-terminal, "
        "driven by the simulated syringe mechanics, and print the device path. A pty does "
        "not enforce the baud rate: --baud is accepted so commands written for the real "
        "pump work unchanged.",
    )
    parser.add_argument("kind", choices=KINDS, help="which pump to emulate")
    parser.add_argument("--link", type=Path, default=None,
                        help="also make a symlink to the device here (kept across restarts)")
    parser.add_argument("--address", type=int, default=0, help="pump address 0-99 (default 0)")
    parser.add_argument("--baud", type=int, default=None,
                        help="nominal baud rate (default: the pump's factory setting)")
    parser.add_argument("--syringe", default="bd-plastipak-50",
                        help="syringe from the default catalogue (default bd-plastipak-50)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until ``stop`` is set, for tests)."""
    from vasopilot.core.clock import MonotonicClock
    from vasopilot.core.config import SyringeCatalogue
    from vasopilot.core.errors import ConfigError
    from vasopilot.rig.sim import emulator_port

    if not 0 <= args.address <= 99:
        raise ConfigError(f"--address must be 0-99, got {args.address}")
    syringes = SyringeCatalogue().syringes
    if args.syringe not in syringes:
        raise ConfigError(f"--syringe {args.syringe!r} is not in the catalogue "
                          f"({', '.join(sorted(syringes))})")
    syringe = syringes[args.syringe]
    baud = args.baud or DEFAULT_BAUD[args.kind]
    port = emulator_port(args.kind, MonotonicClock(), syringe, args.address, args.link)
    # Ctrl-C is the normal way out, even while the banner is still being printed.
    with port, contextlib.suppress(KeyboardInterrupt):
        print(port.device_path, flush=True)
        where = f" (link {port.path})" if args.link is not None else ""
        print(f"{args.kind} emulator at address {args.address}, nominal {baud} baud, "
              f"{syringe.name}{where}; Ctrl-C to stop", flush=True)
        (stop or threading.Event()).wait()
    return 0
