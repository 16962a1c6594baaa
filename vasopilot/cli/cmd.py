"""``vasopilot cmd``: send one remote command to a rig over MQTT and print its answer (S15).

The command goes to ``vasopilot/v1/<rig>/cmd/<user>`` (the broker's ACL lets each user write
only under their own name, and the rig journals that name as the sender) with a fresh request
id, the issue time, and MQTT v5 Response Topic, Correlation Data and a message expiry. The
broker does not tell a publisher that its ACL dropped a message, so silence is the only sign
of a refusal by the broker: after ``--timeout`` seconds without a reply the command says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vasopilot.cli._args import nonnegative_float, positive_float
from vasopilot.core.types import VolumeAnswer

if TYPE_CHECKING:
    from vasopilot.core.config import MqttSettings
    from vasopilot.telemetry.payloads import CommandReply

# Longer than any broker round trip; a command older than MAX_AGE_S is refused by the rig anyway.
MAX_TIMEOUT_S = 60.0
# CLI verb -> (payload command, positional argument and its payload field)
VERBS: dict[str, tuple[str, tuple[str, str, Callable[[str], Any]] | None]] = {
    "set-dose": ("set_dose", ("dose_mcg_min", "dose in mcg/min", nonnegative_float)),
    "set-target": ("set_target", ("target_map_mmhg",
                                  "MAP set-point in mmHg (65-90): the floor is 5 below it",
                                  positive_float)),
    "start-weaning": ("start_weaning", None),
    "stop-weaning": ("stop_weaning", None),
    "acknowledge": ("acknowledge", ("code", "alarm code", str)),
    "silence": ("silence", ("code", "alarm code", str)),
    "stop": ("stop", None),
    "volume-assessed": ("volume_assessed", (
        "answer", "what was done about volume status: assessed, 'fluid given' or "
        "'not indicated'", VolumeAnswer)),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cmd", help="send a remote command to a rig over MQTT and print its answer",
        description="Send one command to a rig that has remote commands on, and print the "
        "rig's accept or refusal. The password comes from --password-file or the "
        "VASOPILOT_MQTT_PASSWORD environment variable, never the command line. Exit 0 "
        "accepted, 1 refused, 2 no reply or an error.")
    parser.add_argument("--broker", required=True, metavar="URL",
                        help="mqtts://user@host:8883?ca=ca.pem (mqtt:// only to loopback)")
    parser.add_argument("--rig", required=True, help="the rig id")
    parser.add_argument("--user", help="broker user (default: the URL's)")
    parser.add_argument("--password-file", metavar="FILE", help="file holding the password")
    parser.add_argument("--timeout", type=positive_float, default=5.0, metavar="S",
                        help="seconds to wait for the rig's reply (default 5)")
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for verb, (_, argument) in VERBS.items():
        sub = verbs.add_parser(verb, help=verb.replace("-", " "))
        if argument is not None:
            name, help_text, kind = argument
            sub.add_argument(name, type=kind, help=help_text)
        if verb == "set-dose":
            sub.add_argument("--confirm-soft-limit", action="store_true",
                             help="confirm a dose over the soft limit (S2)")
        if verb == "stop":
            sub.add_argument("--reason", default="", help="why (journaled)")
        if verb == "set-target":
            sub.add_argument("--confirm-below-usual", action="store_true",
                             help="confirm a floor more than 40 mmHg below the usual SBP")
    parser.set_defaults(func=run)


def body(args: argparse.Namespace, request_id: str, issued_at: str) -> dict[str, Any]:
    """The command payload for parsed ``args``."""
    command, argument = VERBS[args.verb]
    fields: dict[str, Any] = {"command": command, "request_id": request_id,
                              "issued_at": issued_at}
    if argument is not None:
        fields[argument[0]] = getattr(args, argument[0])
    if args.verb == "set-dose" and args.confirm_soft_limit:
        fields["confirm_soft_limit"] = True
    if args.verb == "set-target" and args.confirm_below_usual:
        fields["confirm_below_usual"] = True
    if args.verb == "stop" and args.reason:
        fields["reason"] = args.reason
    return fields


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import secrets

    from pydantic import ValidationError

    from vasopilot.core.errors import ConfigError
    from vasopilot.telemetry.commands import utc_now
    from vasopilot.telemetry.payloads import COMMAND_ADAPTER, NAME_RE
    from vasopilot.telemetry.url import settings_from_url, with_password

    if args.timeout > MAX_TIMEOUT_S:
        raise ConfigError(f"--timeout must be at most {MAX_TIMEOUT_S:g} s, got {args.timeout:g}")
    settings = settings_from_url(args.broker)
    if args.user:
        settings = settings.model_copy(update={"username": args.user})
    if not settings.username:
        raise ConfigError("vasopilot cmd: no user: give --user or mqtts://user@host")
    if not NAME_RE.match(args.rig):
        raise ConfigError(f"--rig {args.rig!r}: use a-z, 0-9 and -, at most 32")
    settings = with_password(settings, password_file=args.password_file)
    request_id = f"cmd-{secrets.token_hex(8)}"
    issued_at = utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = body(args, request_id, issued_at)
    # The rig's own model, so a command it would refuse (a dose or target out of range, an
    # empty alarm code) never leaves this machine.
    try:
        COMMAND_ADAPTER.validate_json(json.dumps(payload))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"][1:])
        raise ConfigError(f"{args.verb}: {field}: {error['msg']}") from None
    reply = asyncio.run(_exchange(settings, args.rig, payload, args.timeout))
    if reply is None:
        print(f"vasopilot cmd: no reply in {args.timeout:g} s: not authorised, or the rig is "
              "offline", file=sys.stderr)
        return 2
    if args.json:
        print(reply.model_dump_json())
    elif reply.accepted:
        dose = "" if reply.dose_mcg_min is None else f" (dose {reply.dose_mcg_min:.2f} mcg/min)"
        print(f"accepted {args.verb} {request_id}: {reply.reason}{dose}")
    else:
        print(f"refused {args.verb} {request_id} [{reply.code}]: {reply.reason}")
    return 0 if reply.accepted else 1


async def _exchange(settings: MqttSettings, rig: str, payload: dict[str, Any],
                    timeout_s: float) -> CommandReply | None:
    """Publish ``payload`` and wait up to ``timeout_s`` for the reply that echoes it."""
    import asyncio
    import json
    import secrets

    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from pydantic import ValidationError

    from vasopilot.core.errors import VasopilotError
    from vasopilot.telemetry.commands import MAX_AGE_S
    from vasopilot.telemetry.payloads import CommandReply, topic
    from vasopilot.telemetry.publisher import client_kwargs

    user = settings.username
    assert user is not None
    reply_topic = topic(rig, f"reply/{user}")
    correlation = secrets.token_bytes(16)
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ResponseTopic = reply_topic
    properties.CorrelationData = correlation
    properties.MessageExpiryInterval = int(MAX_AGE_S)
    try:
        async with aiomqtt.Client(**client_kwargs(settings, f"cmd-{secrets.token_hex(6)}"),
                                  clean_start=True) as client:
            await client.subscribe(reply_topic, qos=1)
            await client.publish(topic(rig, f"cmd/{user}"), json.dumps(payload), qos=1,
                                 properties=properties)
            try:
                async with asyncio.timeout(timeout_s):
                    async for message in client.messages:
                        echoed = getattr(message.properties, "CorrelationData", None)
                        raw = message.payload
                        data = raw if isinstance(raw, bytes) else str(raw).encode()
                        try:
                            reply = CommandReply.model_validate_json(data)
                        except ValidationError:
                            continue
                        if echoed == correlation or reply.request_id == payload["request_id"]:
                            return reply
            except TimeoutError:
                return None
    except aiomqtt.MqttError as exc:
        raise VasopilotError(f"broker {settings.host}:{settings.port}: {exc}") from None
    return None
