"""``vasopilot monitor``: a live terminal dashboard of one rig or all rigs on a broker."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vasopilot.core.config import MqttSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "monitor", help="live terminal dashboard of rigs publishing over MQTT",
        description="Subscribe to vasopilot/v1/<rig>/{status,state,alarms} and show dose, "
        "rate, MAP trend, alarms and link state. The password comes from --password-file or "
        "VASOPILOT_MQTT_PASSWORD. Ctrl-C to quit.")
    parser.add_argument("--broker", required=True, metavar="URL",
                        help="mqtts://user@host:8883?ca=ca.pem (mqtt:// for loopback or with "
                        "?insecure=true)")
    parser.add_argument("--password-file", metavar="FILE", help="file holding the password")
    parser.add_argument("--rig", default="+", help="one rig id (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vasopilot.telemetry.url import settings_from_url, with_password

    settings = with_password(settings_from_url(args.broker), password_file=args.password_file)
    asyncio.run(_watch(settings, args.rig, f"{settings.host}:{settings.port}"))
    return 0


async def _watch(settings: MqttSettings, rig: str, label: str) -> None:
    import aiomqtt
    from rich.live import Live

    from vasopilot.core.clock import MonotonicClock
    from vasopilot.telemetry.dashboard import RigBoard, render
    from vasopilot.telemetry.payloads import topic
    from vasopilot.telemetry.publisher import client_kwargs

    clock = MonotonicClock()
    boards: dict[str, RigBoard] = {}
    connected = False
    with Live(render(boards, label, connected), refresh_per_second=4) as live:
        wait_s = 0.5
        while True:
            try:
                async with aiomqtt.Client(**client_kwargs(settings, None)) as client:
                    connected, wait_s = True, 0.5
                    for leaf in ("status", "state", "alarms"):
                        await client.subscribe(topic(rig, leaf), qos=1)
                    live.update(render(boards, label, connected, width=live.console.width))
                    async for message in client.messages:
                        *_, rig_id, leaf = str(message.topic).split("/")
                        raw = message.payload
                        data = raw if isinstance(raw, bytes) else str(raw).encode()
                        boards.setdefault(rig_id, RigBoard(rig_id)).on_message(leaf, data)
                        live.update(render(boards, label, connected, width=live.console.width))
            except aiomqtt.MqttError:
                connected = False
                live.update(render(boards, label, connected, width=live.console.width))
                await clock.sleep_async(wait_s)
                wait_s = min(wait_s * 2, 10.0)
