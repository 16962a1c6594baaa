"""``vasopilot alarm ack|silence CODE --rig FILE``: a person at the bench acts on an alarm.

Talks to the running ``vasopilot run`` of that profile through its local control socket (next
to its journal; see :mod:`vasopilot.local_control`), so no broker, TLS or remote commands are
needed. Exit 0 done, 1 refused by the rig (no such alarm, journal fault), 2 no rig running or
a bad argument.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safety.alarms import AlarmCode

ACTIONS = {"ack": "acknowledge", "silence": "silence"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "alarm", help="acknowledge or silence an alarm of the rig running here",
        description="Acknowledge or silence (for at most the profile's silence_max_s) an "
        "active alarm of the rig that `vasopilot run --rig FILE` runs on this machine. The "
        "rig journals it as an operator action by local:<your user>. Exit 0 done, 1 refused, "
        "2 no rig running or an error.")
    actions = parser.add_subparsers(dest="alarm_action", metavar="ACTION", required=True)
    for verb, command in ACTIONS.items():
        sub = actions.add_parser(verb, help=f"{command} an active alarm")
        sub.add_argument("code", metavar="CODE", choices=[code.value for code in AlarmCode],
                         help=f"alarm code: {', '.join(code.value for code in AlarmCode)}")
        sub.add_argument("--rig", type=Path, required=True,
                         help="the running rig's profile (its journal names the socket)")
        sub.set_defaults(func=run, command=command)


def run(args: argparse.Namespace) -> int:
    from vasopilot.local_control import LocalRequest, send, socket_path
    from vasopilot.settings import load_rig

    config = load_rig(args.rig)
    reply = send(socket_path(config.journal_path),
                 LocalRequest(command=args.command, code=AlarmCode(args.code)), profile=args.rig)
    print(f"{'done' if reply.accepted else 'refused'}: {reply.reason}")
    return 0 if reply.accepted else 1
