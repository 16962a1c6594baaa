"""The ``vasopilot`` command. Each module of this package adds one subcommand.

A module here exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
handler taking the parsed namespace and returning an exit code. Modules are found by name, so
a new subcommand is a new file and nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from vasopilot import __version__
from vasopilot.core.errors import VasopilotError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vasopilot",
        description="Norepinephrine syringe-pump control for bench and research rigs "
        "(not a certified medical device).",
    )
    parser.add_argument("--version", action="version", version=f"vasopilot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except VasopilotError as exc:
        print(f"vasopilot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
