"""``vasopilot firmware flash --port PORT``: put the bridge firmware on a Pico with ``mpremote``.

The Pico must run MicroPython (drag its UF2 onto the board in BOOTSEL mode first) and boot with
GP22 grounded, so the bridge's ``main.py`` leaves the REPL to ``mpremote`` (the firmware turns
Ctrl-C off). The files keep their package paths on the board, so the firmware imports
``firmware_bridge.protocol`` exactly as the host does; ``main.py`` goes to the root.
``--dry-run`` prints the command instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

from vasopilot.core.errors import VasopilotError

ROOT = Path(__file__).resolve().parents[2]
# (file in this repository, path on the board)
FIRMWARE_FILES: tuple[tuple[str, str], ...] = (
    ("firmware_bridge/__init__.py", "firmware_bridge/__init__.py"),
    ("firmware_bridge/protocol.py", "firmware_bridge/protocol.py"),
    ("firmware_bridge/firmware/__init__.py", "firmware_bridge/firmware/__init__.py"),
    ("firmware_bridge/firmware/step_pio.py", "firmware_bridge/firmware/step_pio.py"),
    ("firmware_bridge/firmware/logic.py", "firmware_bridge/firmware/logic.py"),
    ("firmware_bridge/firmware/hal_rp2.py", "firmware_bridge/firmware/hal_rp2.py"),
    ("firmware_bridge/firmware/main.py", "main.py"),
)
_MKDIRS = ("import os\n"
           "for d in ('firmware_bridge', 'firmware_bridge/firmware'):\n"
           "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n")


def flash_command(port: str) -> list[str]:
    """The one ``mpremote`` command line that creates the folders, copies every file, resets."""
    command = [sys.executable, "-m", "mpremote", "connect", port, "exec", _MKDIRS]
    for local, remote in FIRMWARE_FILES:
        command += ["+", "fs", "cp", str(ROOT / local), f":{remote}"]
    return [*command, "+", "reset"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("firmware", help="the firmware bridge's Pico firmware",
                                   description=__doc__.splitlines()[0] if __doc__ else None)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    flash = actions.add_parser("flash", help="copy the bridge firmware to a Pico (mpremote)",
                               description="Copy the bridge firmware to a Pico running "
                               "MicroPython, booted with GP22 grounded, then reset it.")
    flash.add_argument("--port", required=True, help="the Pico's serial port, e.g. /dev/ttyACM0")
    flash.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    flash.set_defaults(func=run_flash)


def run_flash(args: argparse.Namespace) -> int:
    if not args.port.strip():
        raise VasopilotError("--port must name the Pico's serial port, e.g. /dev/ttyACM0")
    command = flash_command(args.port)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    if importlib.util.find_spec("mpremote") is None:
        raise VasopilotError("mpremote is not installed (pip install mpremote)")
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines()
                or ["no output"])[-1]
        raise VasopilotError(f"mpremote failed (exit {result.returncode}: {said}); is GP22 "
                             f"grounded and {args.port} the Pico?")
    print(result.stdout, end="")
    print(f"bridge firmware flashed to {args.port}; remove the GP22 jumper before use")
    return 0
