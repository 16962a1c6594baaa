"""Every subcommand, every bad input: one line on stderr, exit 2, no traceback, nothing written.

The subcommands are discovered from the parser, so a new one is walked without a change here;
only a new required argument without choices needs a good value in the ``good`` fixture
(the test says which).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vasopilot.cli import BROKEN_PIPE, build_parser, main
from vasopilot.core.clock import VirtualClock
from vasopilot.journal import Journal

REPO = Path(__file__).resolve().parents[1]
BAD_NUMBERS = ("nan", "inf", "-1", "x")


@dataclass(frozen=True)
class Leaf:
    """A runnable subcommand: its words, and the parsers from the top down to it."""

    words: tuple[str, ...]
    parsers: tuple[argparse.ArgumentParser, ...]

    @property
    def name(self) -> str:
        return " ".join(self.words)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction[
        argparse.ArgumentParser]]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = (),
           parsers: tuple[argparse.ArgumentParser, ...] = ()) -> Iterator[Leaf]:
    subs = _subparsers(parser)
    if not subs and words:
        yield Leaf(words, parsers)
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*words, name), (*parsers, sub))


LEAVES = list(leaves(build_parser()))


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                  argparse._SubParsersAction))]


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


@pytest.fixture
def good(tmp_path: Path) -> dict[str, str]:
    """A good value for every required argument (a bad one is the case under test)."""
    journal = tmp_path / "journal.sqlite"
    with Journal(journal, VirtualClock()):
        pass
    return {
        "rig": str(REPO / "config" / "sim.toml"),
        "record": str(tmp_path / "no-record"),
        "journal": str(journal),
        "broker": "mqtt://operator@127.0.0.1:1",
        "code": "MAP_LOW",
        "answer": "fluid given",
        "dose_mcg_min": "5",
        "target_map_mmhg": "65",
        "rate": "1",
        "port": str(tmp_path / "no-such-port"),
        "dir": str(tmp_path / "rig-set"),
    }


def _fill(leaf: Leaf, good: dict[str, str], skip: argparse.Action | None) -> list[list[str]]:
    """Per level of ``leaf``: its word, then good values for its required arguments."""
    levels = []
    for word, parser in zip(leaf.words, leaf.parsers, strict=True):
        level = [word]
        for action in _arguments(parser):
            if action is skip or not (action.required or action.nargs == "?"):
                continue
            if action.choices is not None:
                value = str(next(iter(action.choices)))
            else:
                assert action.dest in good, f"{leaf.name}: add a good {action.dest} to `good`"
                value = good[action.dest]
            level += [action.option_strings[0], value] if action.option_strings else [value]
        levels.append(level)
    return levels


def bad_argvs(leaf: Leaf, good: dict[str, str], not_a_dir: Path) -> Iterator[list[str]]:
    """Argument lists for ``leaf`` that each hold one bad thing."""
    flat = [w for level in _fill(leaf, good, None) for w in level]
    yield [*flat, "--no-such-option"]
    yield [*leaf.words, "--no-such-option"]
    for depth, parser in enumerate(leaf.parsers):
        for action in _arguments(parser):
            if not _takes_value(action):
                continue
            values: tuple[str, ...] = ()
            if action.choices is not None:
                values = ("no-such-choice",)
            elif action.type is Path:
                values = (str(not_a_dir / "x"),)
            elif action.type not in (None, str):
                values = BAD_NUMBERS
            levels = _fill(leaf, good, action)
            if action.option_strings:
                # an option given without its value
                yield [w for i, level in enumerate(levels) for w in
                       ([*level, action.option_strings[0]] if i == depth else level)]
            for value in values:
                extra = [action.option_strings[0], value] if action.option_strings else [value]
                yield [w for i, level in enumerate(levels) for w in
                       (level + extra if i == depth else level)]


def test_the_walk_finds_every_subcommand() -> None:
    names = {leaf.name for leaf in LEAVES}
    assert {"sim", "run", "beats", "emulate", "report", "journal tail", "bench closed-loop",
            "cmd set-dose", "monitor", "schema"} <= names


@pytest.mark.timeout(120)
@pytest.mark.parametrize("leaf", LEAVES, ids=[leaf.name for leaf in LEAVES])
def test_every_bad_argument_is_one_line_and_exit_2(
    leaf: Leaf, good: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("not a folder\n")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("VASOPILOT_MQTT_PASSWORD", raising=False)
    cases = list(bad_argvs(leaf, good, not_a_dir))
    assert cases
    for argv in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, f"vasopilot {' '.join(argv)}: exit {code}, stderr {err!r}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"vasopilot {' '.join(argv)}: stderr {err!r}"
        assert "Traceback" not in err
        assert list(work.iterdir()) == [], f"vasopilot {' '.join(argv)} wrote files"


@pytest.mark.parametrize("hours", ["nan", "inf", "-1", "0"])
def test_sim_refuses_hours_before_touching_the_last_run(
    hours: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    previous = {name: f"last run's {name}".encode() for name in
                ("sim-resuscitate-seed1.sqlite", "sim-resuscitate-seed1.png")}
    for name, data in previous.items():
        (tmp_path / name).write_bytes(data)
    assert main(["sim", "--hours", hours, "--out", str(tmp_path)]) == 2
    assert "--hours" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == previous


def test_an_unknown_mode_is_exit_2_in_every_subcommand_that_takes_one(
    good: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    with_mode = [leaf for leaf in LEAVES
                 if any(a.dest == "mode" for a in _arguments(leaf.parsers[-1]))]
    assert {leaf.name for leaf in with_mode} >= {"sim", "run"}
    for leaf in with_mode:
        flat = [w for level in _fill(leaf, good, None) for w in level]
        assert main([*flat, "--mode", "bogus"]) == 2
        assert "unknown mode 'bogus'" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has read its lines and left
    try:
        done = subprocess.run([sys.executable, "-m", "vasopilot", "schema"], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == BROKEN_PIPE
    assert done.stderr == b""
