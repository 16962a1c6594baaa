"""The telemetry publisher: one aiomqtt client on its own thread and event loop.

The rig loop never waits for it. Views are taken on the loop's thread by a snapshot action
handed to :meth:`RigLoop.submit`, and come back through a thread-safe queue; events are read
from the journal (a read-only connection, so only committed events are seen, in ``seq``
order), which doubles as the buffer while the broker is away. On every (re)connection the
retained topics are published again and events resume after the last one the broker
acknowledged: at-least-once on the wire, and every payload carries its ``seq`` so a subscriber
keeps each event exactly once (:class:`SeqFilter`).

Commands (MQTT v5, see :mod:`.commands`): the rig subscribes to ``cmd/+`` with *retain as
published* and a clean session, so commands sent while it was offline are dropped by the broker
rather than acted on late, and a retained one is recognised however it is delivered. Replies go
to ``reply/<sender>`` with the request's Correlation Data.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from safety.supervisor import Supervisor
from vasopilot.core.clock import Clock, MonotonicClock
from vasopilot.core.config import MqttSettings
from vasopilot.core.errors import ConfigError, JournalError, JournalUnavailable
from vasopilot.core.events import BeatSummary, Event, ModeChanged, RunStarted
from vasopilot.core.types import Beat, CommandRefusal
from vasopilot.journal import JournalReader
from vasopilot.runtime import RigLoop
from vasopilot.telemetry.commands import (
    UNKNOWN_SENDER,
    Burst,
    Checked,
    CommandGate,
    Incoming,
    RefusalLog,
    Refused,
    act,
    utc_now,
)
from vasopilot.telemetry.homeassistant import DISCOVERY_PREFIX, discovery
from vasopilot.telemetry.payloads import (
    NAME_RE,
    OFFLINE,
    ONLINE,
    BeatPayload,
    CommandReply,
    EventPayload,
    StatePayload,
    topic,
)
from vasopilot.telemetry.state import alarms_payload, state_payload

EVENT_PAGE = 200


def client_kwargs(settings: MqttSettings, client_id: str | None) -> dict[str, Any]:
    """The aiomqtt ``Client`` arguments for ``settings`` (broker, credentials, TLS)."""
    kwargs: dict[str, Any] = {
        "hostname": settings.host, "port": settings.port,
        "username": settings.username, "password": settings.password,
        "identifier": client_id, "timeout": 5.0, "keepalive": 10,
        "protocol": aiomqtt.ProtocolVersion.V5,
    }
    if settings.tls:
        kwargs["tls_params"] = aiomqtt.TLSParameters(
            ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file)
    return kwargs


class SeqFilter:
    """Keeps each journal event once, in order, from an at-least-once stream."""

    def __init__(self, after_seq: int = 0) -> None:
        self.last_seq = after_seq

    def accept(self, payload: EventPayload) -> bool:
        if payload.seq <= self.last_seq:
            return False
        self.last_seq = payload.seq
        return True


class Telemetry:
    """Publishes one rig under ``vasopilot/<rig_id>/`` until closed.

    ``journal`` is the rig's journal file; events after ``after_seq`` (default: the journal's
    end at start) are published. ``weight_kg`` gives mcg/kg/min. ``backoff_s`` is the first and
    the largest wait between reconnection attempts, ``poll_s`` how often the journal and the
    rig loop are looked at (seconds of ``clock``, real time). ``sink`` journals remote commands
    and their refusals (the journal's ``append``; commands are refused without one); ``wall``
    is the wall clock commands' ``issued_at`` is checked against; ``warn`` reports a broker
    that cannot be reached (default: a line on stderr); ``refusals`` batches refusals into
    journal rows.
    """

    def __init__(
        self,
        settings: MqttSettings,
        rig_id: str,
        journal: Path | str,
        *,
        weight_kg: float | None = None,
        after_seq: int | None = None,
        clock: Clock | None = None,
        backoff_s: tuple[float, float] = (0.2, 5.0),
        poll_s: float = 0.1,
        sink: Callable[[Event], Event] | None = None,
        wall: Callable[[], datetime] = utc_now,
        warn: Callable[[str], None] | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        client_id = settings.client_id or f"vasopilot-{rig_id}"[:32]
        for what, name in (("rig id", rig_id), ("client id", client_id)):
            if not NAME_RE.match(name):
                raise ConfigError(f"MQTT {what} {name!r}: use a-z, 0-9 and -, at most 32")
        self.settings = settings
        self.rig_id = rig_id
        self._reader = JournalReader(journal)
        self._weight_kg = weight_kg
        self._clock = clock or MonotonicClock()
        self._backoff_s = backoff_s
        self._poll_s = poll_s
        self._client_id = client_id
        self._sink = sink
        self._warn = warn or _stderr
        self._gate = CommandGate(rig_id, own_username=settings.username, clock=self._clock,
                                 wall=wall, rate_per_s=settings.command_rate_per_s)
        self._refusals = refusals or RefusalLog()
        self._refusals_lock = threading.Lock()  # the MQTT and the rig loop threads both add
        self._loop: RigLoop | None = None
        self._snapshots: queue.SimpleQueue[StatePayload] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[tuple[str, CommandReply, bytes | None]] = \
            queue.SimpleQueue()
        self._beats: queue.SimpleQueue[Beat] = queue.SimpleQueue()
        self._snapshot_pending = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mode = "unknown"
        self._last_vitals: Beat | BeatSummary | None = None
        self._state: StatePayload | None = None
        self._state_sent_s: float | None = None
        self.acked_seq = self._reader.last_seq() if after_seq is None else after_seq
        self.connections = 0
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._drain_timeout_s = 5.0

    # -- called from the rig's side ----------------------------------------------------------

    def bind_loop(self, loop: RigLoop) -> None:
        """Start taking views of ``loop`` (and accept commands for its supervisor)."""
        self._loop = loop
        self._mode = loop.controller.mode

    def offer_beat(self, beat: Beat) -> None:
        """Hand over one beat (never blocks); published on ``beats`` if enabled."""
        if self.settings.publish_beats:
            self._beats.put(beat)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"telemetry-{self.rig_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self, drain_timeout_s: float = 5.0) -> None:
        """Publish what the journal still holds (up to ``drain_timeout_s``), then ``offline``."""
        self._drain_timeout_s = drain_timeout_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(drain_timeout_s + 5.0)
        self._reader.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the telemetry thread ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        wait_s = self._backoff_s[0]
        while not self._stop.is_set():
            try:
                await self._session()
                return
            except aiomqtt.MqttError as exc:
                if self.connected.is_set() or self.last_error is None:
                    self._warn(f"telemetry: cannot reach the MQTT broker {self.settings.host}:"
                               f"{self.settings.port} ({exc}); events wait in the journal, "
                               "retrying")
                self.connected.clear()
                self.last_error = str(exc)
            self._journal_refusals()
            await self._clock.sleep_async(wait_s)
            wait_s = min(wait_s * 2, self._backoff_s[1])

    async def _session(self) -> None:
        status = topic(self.rig_id, "status")
        will = aiomqtt.Will(status, OFFLINE, qos=1, retain=True)
        async with aiomqtt.Client(**client_kwargs(self.settings, self._client_id),
                                  will=will, clean_start=True) as client:
            await client.publish(status, ONLINE, qos=1, retain=True)
            if self.settings.home_assistant:
                await client.publish(f"{DISCOVERY_PREFIX}/device/{self.rig_id}/config",
                                     discovery(self.rig_id, self.settings.state_interval_s),
                                     qos=1, retain=True)
            if self._state is not None:
                await self._publish_state(client, self._state)
            if self.last_error is not None:
                self._warn(f"telemetry: connected to the MQTT broker {self.settings.host}:"
                           f"{self.settings.port}")
            self.connections += 1
            listener = None
            if self.settings.remote_commands:
                # Retain as published: a retained command keeps its flag even when the broker
                # forwards it live, so it is refused however it arrives.
                await client.subscribe(topic(self.rig_id, "cmd/+"), options=SubscribeOptions(
                    qos=1, retainAsPublished=True))
                listener = asyncio.create_task(self._listen(client))
            self.connected.set()
            try:
                await self._publish_until_stopped(client, listener)
                await self._drain(client)
                await client.publish(status, OFFLINE, qos=1, retain=True)
            finally:
                if listener is not None:
                    listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await listener

    async def _publish_until_stopped(self, client: aiomqtt.Client,
                                     listener: asyncio.Task[None] | None) -> None:
        while not self._stop.is_set():
            if listener is not None and listener.done():
                listener.result()
            await self._publish_events(client)
            await self._publish_pending(client)
            self._journal_refusals()
            self._request_snapshot()
            await self._clock.sleep_async(self._poll_s)

    async def _drain(self, client: aiomqtt.Client) -> None:
        deadline_s = self._clock.now_s() + self._drain_timeout_s
        while self._clock.now_s() < deadline_s and await self._publish_events(client):
            pass
        await self._publish_pending(client)
        self._journal_refusals(everything=True)

    async def _publish_events(self, client: aiomqtt.Client) -> int:
        events = self._reader.since(self.acked_seq, EVENT_PAGE)
        for event in events:
            assert event.seq is not None
            self._note(event)
            payload = EventPayload(rig_id=self.rig_id, seq=event.seq, event=event)
            await client.publish(topic(self.rig_id, "events"), payload.model_dump_json(), qos=1)
            self.acked_seq = event.seq
        if events:
            # A dose change or an alarm shows in the retained state at once, not a second later.
            self._request_snapshot(force=True)
        return len(events)

    def _note(self, event: Event) -> None:
        if isinstance(event, BeatSummary):
            self._last_vitals = event
        elif isinstance(event, ModeChanged | RunStarted):
            self._mode = event.mode

    async def _publish_pending(self, client: aiomqtt.Client) -> None:
        while not self._replies.empty():
            sender, reply, correlation = self._replies.get_nowait()
            properties = None
            if correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = correlation
            await client.publish(topic(self.rig_id, f"reply/{sender}"), reply.model_dump_json(),
                                 qos=1, properties=properties)
        while not self._beats.empty():
            beat = self._beats.get_nowait()
            self._last_vitals = beat
            await client.publish(topic(self.rig_id, "beats"), BeatPayload(
                rig_id=self.rig_id, t_s=beat.t_s, map_mmhg=beat.map_mmhg,
                sbp_mmhg=beat.sbp_mmhg, dbp_mmhg=beat.dbp_mmhg, hr_bpm=beat.hr_bpm,
                quality=beat.quality).model_dump_json(), qos=0)
        latest: StatePayload | None = None
        while not self._snapshots.empty():
            latest = self._snapshots.get_nowait()
        if latest is None:
            return
        now_s = self._clock.now_s()
        due = (self._state_sent_s is None
               or now_s - self._state_sent_s >= self.settings.state_interval_s)
        if due or latest.changed_from(self._state):
            await self._publish_state(client, latest)
            self._state_sent_s = now_s

    async def _publish_state(self, client: aiomqtt.Client, state: StatePayload) -> None:
        if self._state is None or state.alarms != self._state.alarms or self._state_sent_s is None:
            await client.publish(topic(self.rig_id, "alarms"),
                                 alarms_payload(state).model_dump_json(), qos=1, retain=True)
        self._state = state
        await client.publish(topic(self.rig_id, "state"), state.model_dump_json(), qos=1,
                             retain=True)

    def _request_snapshot(self, *, force: bool = False) -> None:
        loop = self._loop
        if loop is None or (self._snapshot_pending.is_set() and not force):
            return
        self._snapshot_pending.set()
        loop.submit(self._snapshot)

    def _snapshot(self, now_s: float) -> None:
        """Runs on the rig loop's thread: the view is taken between two steps."""
        self._snapshot_pending.clear()
        loop = self._loop
        assert loop is not None
        self._snapshots.put(state_payload(
            loop.supervisor.view(now_s), rig_id=self.rig_id, wall=self._clock.wall_label(),
            mode=loop.controller.mode if self._mode == "unknown" else self._mode,
            weight_kg=self._weight_kg, last_beat=self._last_vitals,
            remote_commands=self.settings.remote_commands, last_seq=self.acked_seq))

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            raw = message.payload
            props = message.properties
            expiry = getattr(props, "MessageExpiryInterval", None)
            correlation = getattr(props, "CorrelationData", None)
            checked = self._gate.check(Incoming(
                topic=str(message.topic),
                payload=raw if isinstance(raw, bytes) else str(raw).encode(),
                retained=bool(message.retain),
                expiry_s=None if expiry is None else float(expiry),
                correlation=None if correlation is None else bytes(correlation)))
            loop = self._loop
            if isinstance(checked, Checked) and (loop is None or self._sink is None):
                checked = Refused(checked.sender, CommandRefusal.NOT_READY, CommandReply(
                    rig_id=self.rig_id, request_id=checked.command.request_id,
                    command=checked.command.command, accepted=False,
                    reason="the rig loop is not running", code=CommandRefusal.NOT_READY),
                    checked.correlation)
            if isinstance(checked, Refused):
                self._refused(checked)
                continue
            assert loop is not None
            loop.submit(functools.partial(self._act, checked, loop.supervisor))

    def _refused(self, refused: Refused) -> None:
        with self._refusals_lock:
            self._refusals.add(refused, self._clock.now_s())
        if refused.sender != UNKNOWN_SENDER:
            self._replies.put((refused.sender, refused.reply, refused.correlation))

    def _act(self, checked: Checked, supervisor: Supervisor, now_s: float) -> None:
        """Runs on the rig loop's thread."""
        assert self._sink is not None
        reply = act(checked, supervisor, now_s, rig_id=self.rig_id, gate_clock=self._clock,
                    seen=self._reader.has_request_id, sink=self._sink)
        if not reply.accepted and reply.code in set(CommandRefusal):
            self._refused(Refused(checked.sender, CommandRefusal(reply.code), reply,
                                  checked.correlation))
        else:
            self._replies.put((checked.sender, reply, checked.correlation))
        if reply.code == CommandRefusal.JOURNAL:
            # the sender has its answer; the loop's journal guard must hear of the fault too
            raise JournalUnavailable(reply.reason)

    def _journal_refusals(self, *, everything: bool = False) -> None:
        """Hand closed refusal bursts to the rig loop, which journals them at its time."""
        loop, sink = self._loop, self._sink
        if loop is None or sink is None:
            return
        with self._refusals_lock:
            closed = self._refusals.due(self._clock.now_s(), everything=everything)
        for burst in closed:
            loop.submit(functools.partial(self._journal_burst, sink, burst))

    def _journal_burst(self, sink: Callable[[Event], Event], burst: Burst, now_s: float) -> None:
        """Runs on the rig loop's thread; a journal that fails is the supervisor's alarm, not
        a reason to stop the loop."""
        try:
            sink(burst.event(now_s))
        except JournalError as exc:
            self._warn(f"telemetry: {burst.count} refused command(s) from {burst.sender} "
                       f"not journaled: {exc}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
