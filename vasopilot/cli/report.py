"""``vasopilot report``: redraw a run's plot from its journal."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report", help="plot a run (MAP, dose, alarms) from its journal",
        description="Draw the last run in a journal as a PNG: MAP, dose and alarms over time. "
        "The run starts at the last fresh start in the journal (restarts are part of it).")
    parser.add_argument("journal", type=Path, help="journal file (SQLite)")
    parser.add_argument("-o", "--out", type=Path, metavar="OUT.png",
                        help="output file; default: next to the journal, with .png")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from vasopilot.core.events import RunStarted
    from vasopilot.journal import JournalReader
    from vasopilot.report import plot_run, run_title

    journal: Path = args.journal
    with JournalReader(journal) as reader:
        events = list(reader.iter_events(after_seq=max(reader.current_run_seq() - 1, 0)))
    runs = [e for e in events if isinstance(e, RunStarted)]
    title = run_title(runs[-1] if runs else None, journal.name)
    out = plot_run(events, args.out or journal.with_suffix(".png"), title)
    print(out)
    return 0
