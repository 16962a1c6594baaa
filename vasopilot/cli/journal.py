"""``vasopilot journal tail``: read a journal from the shell, optionally following it live."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from vasopilot.cli._args import nonnegative_int, positive_float
from vasopilot.core.clock import Clock, MonotonicClock
from vasopilot.core.errors import JournalError
from vasopilot.core.events import Event

DEFAULT_PROFILE = Path("config/sim.toml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "journal", help="read the event journal",
        description="Read the event journal (SQLite) that a rig writes.")
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail", help="print the latest events",
        description="Print the latest events: seq, wall time (UTC), kind and a one-line summary.")
    tail.add_argument(
        "journal", nargs="?", type=Path,
        help=f"journal file; default: the journal named by {DEFAULT_PROFILE} "
        "(only when run from the repository folder)")
    tail.add_argument("-n", type=nonnegative_int, default=20, metavar="N",
                      help="how many events to print (default 20)")
    tail.add_argument("--kind", action="append", metavar="KIND",
                      help="only events of this kind, e.g. dose.applied or alarm.raised "
                      "(repeat for several)")
    tail.add_argument("--json", action="store_true", help="one event as JSON per line")
    tail.add_argument("--follow", action="store_true",
                      help="keep printing new events as they are journaled (Ctrl-C ends)")
    tail.add_argument("--interval", type=positive_float, default=0.5, metavar="S",
                      help="seconds between looks at the journal with --follow (default 0.5)")
    tail.set_defaults(func=run_tail)


def default_journal() -> Path:
    """The journal of the simulation profile, when it is there to be read."""
    from vasopilot.settings import load_rig

    if not DEFAULT_PROFILE.is_file():
        raise JournalError(f"no journal named and no {DEFAULT_PROFILE} here: name the journal "
                           "file (vasopilot journal tail PATH)")
    return load_rig(DEFAULT_PROFILE).journal_path


def format_event(event: Event, as_json: bool) -> str:
    if as_json:
        return event.model_dump_json()
    from vasopilot.journal import summary_line

    wall = (event.wall or "").replace("T", " ").removesuffix("+00:00")
    return f"{event.seq or 0:>7}  {wall:<23}  {event.kind:<15}  {summary_line(event)}"


HEADER = f"{'seq':>7}  {'wall (UTC)':<23}  {'kind':<15}  summary"


def follow(
    reader_since: Callable[[int], list[Event]],
    emit: Callable[[Event], None],
    clock: Clock,
    *,
    after_seq: int,
    interval_s: float,
    keep_going: Callable[[], bool],
) -> int:
    """Emit each event journaled after ``after_seq`` as it appears; returns the last seq seen.

    Looks every ``interval_s`` seconds of ``clock`` while ``keep_going()`` says so.
    """
    while keep_going():
        for event in reader_since(after_seq):
            emit(event)
            after_seq = event.seq or after_seq
        clock.sleep(interval_s)
    return after_seq


def run_tail(args: argparse.Namespace) -> int:
    from vasopilot.journal import JournalReader

    path: Path = args.journal or default_journal()
    kinds = set(args.kind) if args.kind else None

    def emit(event: Event) -> None:
        if kinds is None or event.kind in kinds:
            print(format_event(event, args.json), flush=True)

    with JournalReader(path) as reader:
        # Fix the boundary first so that an event committed meanwhile is printed exactly once.
        last_seq = reader.last_seq()
        events = [e for e in reader.tail(args.n, kinds) if (e.seq or 0) <= last_seq]
        if not args.json:
            print(HEADER)
        for event in events:
            emit(event)
        if args.follow:
            follow(reader.since, emit, MonotonicClock(), after_seq=last_seq,
                   interval_s=args.interval, keep_going=lambda: True)
    return 0
