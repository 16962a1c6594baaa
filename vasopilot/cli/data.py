"""``vasopilot data fetch``: download the real arterial-pressure records into a cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "data", help="the real arterial-pressure records the tests and benchmarks use",
        description="The real arterial-pressure records (PhysioNet MIMIC and MIMIC-III "
        "excerpts) that the record tests and benchmarks read.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch", help="download the records (with their citation) into a cache",
        description="Download the records with wfdb into DIR (default: the cache, "
        "$XDG_CACHE_HOME/vasopilot/records or ~/.cache/vasopilot/records), with their "
        "citation in CITATION.txt. Files already there are kept. The tests look in "
        "$VASOPILOT_RECORDS, then ../shared/data/abp beside the clone, then the cache.")
    fetch.add_argument("--dir", type=Path, default=None, help="download here instead")
    fetch.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from vasopilot import records

    dest: Path = args.dir or records.cache_dir()
    count = records.fetch(dest, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{dest}: {count} file(s) downloaded, all {len(records.RECORD_SETS)} record sets "
          "present; cite them as CITATION.txt there says")
    return 0
