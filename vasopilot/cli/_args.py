"""Argument types and the parser class shared by every subcommand.

Every bad argument ends the same way in every subcommand: one line on stderr naming the
argument and what was wrong with it, exit code 2, before any file is touched.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

USAGE_ERROR = 2
N = TypeVar("N", int, float)


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message.rstrip("\n"), file=sys.stderr)
        raise SystemExit(status)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _checked(parse: Callable[[str], N], ok: Callable[[N], bool],
             wanted: str) -> Callable[[str], N]:
    def check(text: str) -> N:
        value = parse(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return check


positive_float = _checked(_number, lambda v: v > 0, "a finite positive number")
nonnegative_float = _checked(_number, lambda v: v >= 0, "a finite number >= 0")
positive_int = _checked(_integer, lambda v: v >= 1, "a whole number >= 1")
nonnegative_int = _checked(_integer, lambda v: v >= 0, "a whole number >= 0")


def mode_name(text: str) -> str:
    """A control mode of :data:`vasopilot.simulate.MODES`, looked up only when parsing."""
    from vasopilot.simulate import MODES

    if text not in MODES:
        raise argparse.ArgumentTypeError(f"unknown mode {text!r} (have {', '.join(sorted(MODES))})")
    return text


def make_folder(path: Path, option: str) -> None:
    """Make the folder an output goes to before any work, so a bad one costs nothing."""
    from vasopilot.core.errors import ConfigError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot make the folder: "
                          f"{exc.strerror or exc}") from exc
