"""``vasopilot schema``: the JSON Schemas of the MQTT payloads, by topic."""

from __future__ import annotations

import argparse

TOPICS = ["state", "alarms", "events", "beats", "cmd", "reply"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema", help="print the JSON Schemas of the MQTT payloads",
        description="Print the JSON Schema of every payload published under "
        "vasopilot/v1/<rig_id>/ (or of one topic), as one JSON object keyed by topic.")
    parser.add_argument("topic", nargs="?", choices=TOPICS, help="only this topic")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from vasopilot.telemetry.payloads import schemas

    found = schemas()
    print(json.dumps(found[args.topic] if args.topic else found, indent=2))
    return 0
