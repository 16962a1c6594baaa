"""The ``vasopilot`` command. Each module of this package adds one subcommand.

A module here exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
handler taking the parsed namespace and returning an exit code. Modules are found by name, so
a new subcommand is a new file and nothing else (modules starting with ``_`` are helpers).

Exit codes, the same in every subcommand: 0 done, 2 a bad argument, file or device (one line
on stderr, no traceback), 130 Ctrl-C, 141 the reader of our output went away (``| head``).
``vasopilot cmd`` and ``vasopilot alarm`` add 1 for a command the rig refused.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from vasopilot import __version__
from vasopilot.cli._args import USAGE_ERROR, OneLineParser
from vasopilot.core.errors import VasopilotError

BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a bad argument already reported
        return done.code if isinstance(done.code, int) else 0
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read our output has gone: say nothing, and let nothing at exit try again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except VasopilotError as exc:
        print(f"vasopilot: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:
        # A file or device the command was pointed at: name it, as for a refused profile.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vasopilot: {where}{exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
